"""Laplace-domain solver: exact limits, invariants, an independent thermal route, self-checks."""

from __future__ import annotations

import numpy as np
import pytest

import kdmft
from kdmft.errors import ConvergenceError
from kdmft.results import PARTS
from kdmft.theory import laplace, stationary_errors
from kdmft.theory.contour import TalbotRule
from kdmft.theory.resolvent import solve_kappa


def _problem(N=100, P=100, g=0.1, T=0.05, s2=0.1, alpha=0.5, beta=0.0):
    return kdmft.Problem.power_law(N, alpha, P, weight_decay=g, temperature=T, label_noise_var=s2,
                                   task_exponent=beta)


def test_t_zero_is_exact_and_continuous():
    p = _problem(beta=0.7)
    ds = kdmft.learning_curve(p, [0.0, 1e-9])
    assert ds.test_error.values[0] == pytest.approx(p.signal_power, rel=1e-15)
    assert ds.train_error.values[0] == pytest.approx(p.signal_power + p.label_noise_var, rel=1e-15)
    np.testing.assert_allclose(ds.test_error.values[1], ds.test_error.values[0], rtol=1e-6)
    np.testing.assert_allclose(ds.train_error.values[1], ds.train_error.values[0], rtol=1e-6)


@pytest.mark.parametrize("P", [50, 100, 200], ids=lambda P: f"P{P}")
@pytest.mark.parametrize("g", [1e-3, 0.3], ids=lambda g: f"g{g}")
def test_long_time_limit_meets_static_formulas(P, g):
    """t -> inf of the dynamical solver equals the ridge / posterior closed forms (1e-6)."""
    p = _problem(P=P, g=g, T=0.05, s2=0.1, beta=0.4)
    t_far = 60.0 / g  # every mode has relaxed: e^{-2 g t} < 1e-50
    ds = kdmft.learning_curve(p, [t_far, np.inf])
    for k in PARTS:
        a, b = ds[k].values
        assert a == pytest.approx(b, rel=1e-6, abs=1e-12), k


@pytest.mark.parametrize("P", [50, 100, 200], ids=lambda P: f"P{P}")
def test_tiny_weight_decay_long_times_stay_right(P):
    """g = 1e-3 at t = 1e4 ... 1e7: finite, positive, monotone into the static value."""
    p = _problem(P=P, g=1e-3, T=0.05, s2=0.1)
    t = np.array([10.0, 1e4, 1e5, 1e6, 1e7])
    ds = kdmft.learning_curve(p, t)
    stat = stationary_errors(p.eigenvalues, p.task_power, P, 1e-3, 0.05, 0.1)
    te = ds.test_error.values
    assert np.all(np.isfinite(te)) and np.all(te > 0)
    total = stat["bias"] + stat["noise_variance"] + stat["thermal_variance"]
    np.testing.assert_allclose(te[1:], total, rtol=1e-6)  # e^{-2 g t} <= e^{-20} from t = 1e4
    assert abs(te[0] - total) > 1e-3 * total  # ... but not at t = 10: the check has teeth


def test_gradient_flow_below_threshold_long_times():
    """g = 0, P < N: bias and noise tend to the ridgeless values; thermal grows like 2 T κ0 t."""
    P, N, T = 60, 100, 0.05
    p = _problem(N=N, P=P, g=0.0, T=T, s2=0.1)
    t = np.array([1e5, 2e5, 1e8])
    ds = kdmft.learning_curve(p, t)
    stat = stationary_errors(p.eigenvalues, p.task_power, P, 0.0, T, 0.1)
    np.testing.assert_allclose(ds.bias.values[-1], stat["bias"], rtol=1e-6)
    np.testing.assert_allclose(ds.noise_variance.values[-1], stat["noise_variance"], rtol=1e-6)
    kappa0 = kdmft.theory.ridge_kappa(p.eigenvalues, P, 0.0)
    slope = (ds.thermal_variance.values[1] - ds.thermal_variance.values[0]) / 1e5
    assert slope == pytest.approx(2 * T * kappa0, rel=1e-4)


def test_array_of_times_equals_loop_and_keeps_order():
    p = _problem(P=80, beta=0.3)
    t = [7.0, 0.2, np.inf, 0.0, 7.0, 3e3, 0.05]
    ds = kdmft.learning_curve(p, t)
    np.testing.assert_array_equal(ds.time.values, t)
    for i, ti in enumerate(t):
        one = kdmft.learning_curve(p, [ti])
        for k in ("test_error", "train_error", "thermal_variance"):
            np.testing.assert_allclose(ds[k].values[i], one[k].values[0], rtol=1e-9, atol=1e-14)


def test_thermal_single_inversion_equals_theory_md_route():
    """thermal(t) = 2T ∫_0^t D(τ) dτ with D the diagonal double inverse of Σ λ R1 R2 / den.

    THEORY.md section 4 route, computed here independently of the solver's shortcut
    T L^{-1}[R_u(z)/z](2t) (double Talbot per τ, Gauss-Legendre in τ).
    """
    N, P, g, T = 50, 40, 0.05, 0.2
    p = _problem(N=N, P=P, g=g, T=T, s2=0.0)
    lam = p.eigenvalues
    t_end = 3.0
    x, w = np.polynomial.legendre.leggauss(40)
    taus = 0.5 * t_end * (x + 1)

    def D(tau):
        rule = TalbotRule.for_window(24, tau, 0.6)
        zf = rule.z_full
        kap = solve_kappa(rule.z + g, lam, P)
        kf = np.concatenate([kap, np.conj(kap[1:])])
        G = (zf + g) / kf
        R = 1.0 / (zf[:, None] + g + P * lam[None, :] * G[:, None])
        S = (R * lam**2) @ R.T
        num = (R * lam) @ R.T
        F = num / (1 - P * np.outer(G, G) * S)
        cf = np.concatenate([rule.c, np.conj(rule.c[1:])]) * np.exp(zf * tau)
        return float((cf @ F @ cf).real)

    integral = 0.5 * t_end * sum(wi * D(ti) for wi, ti in zip(w, taus, strict=True))
    ds = kdmft.learning_curve(p, [t_end])
    assert ds.thermal_variance.values[0] == pytest.approx(2 * T * integral, rel=1e-7)


def test_population_limit():
    """P ≫ N: DMFT tends to the population formulas of THEORY.md section 5 (error O(N/P))."""
    N, P, T = 20, 40000, 0.1
    p = _problem(N=N, P=P, g=0.0, T=T, s2=0.0)
    # times before the slowest mode has decayed by more than e^{-3} (the relative error of
    # the population formula grows like (N/P) * 2 P λ_k t with the depth of the decay)
    t = np.array([1e-5, 1e-4, 1e-3, 3e-3])
    ds = kdmft.learning_curve(p, t)
    pop = kdmft.theory.population_curve(p.eigenvalues, p.task_power, P, T, t)
    np.testing.assert_allclose(ds.bias.values, pop["bias"], rtol=5e-3)
    np.testing.assert_allclose(ds.thermal_variance.values, pop["thermal_variance"], rtol=5e-3)
    # and the formulas are far off when P ~ N, so the comparison above is not vacuous
    ts = t * P / N  # same P t, so the same population prediction up to the 1/P prefactor
    small = kdmft.learning_curve(p.replace(samples=N), ts)
    pop_small = kdmft.theory.population_curve(p.eigenvalues, p.task_power, N, T, ts)
    assert np.max(np.abs(small.thermal_variance.values / pop_small["thermal_variance"] - 1)) > 0.05


def test_spectral_rescaling_invariance():
    """(c λ, v/c, g, T) at time t equals (λ, v, g/c, T) at time c t (change of variables)."""
    c = 7.0
    base = _problem(P=70, g=0.2, T=0.03, s2=0.05, beta=0.5)
    scaled = base.replace(eigenvalues=c * base.eigenvalues, task_power=base.task_power / c)
    ref = base.replace(weight_decay=0.2 / c)
    t = np.array([0.01, 0.3, 4.0, 50.0])
    a = kdmft.learning_curve(scaled, t)
    b = kdmft.learning_curve(ref, c * t)
    for k in ("test_error", "train_error", "bias", "noise_variance", "thermal_variance"):
        np.testing.assert_allclose(a[k].values, b[k].values, rtol=1e-8)


@pytest.mark.parametrize("P", [2000, 20000, 40000])
def test_large_n_long_time_limit(P):
    N = 20000
    p = _problem(N=N, P=P, g=1e-3, T=0.01, s2=0.1, alpha=0.5)
    ds = kdmft.learning_curve(p, [1e6, np.inf])
    for k in ("test_error", "train_error"):
        a, b = ds[k].values
        assert a == pytest.approx(b, rel=1e-6)


def test_disagreeing_resolutions_raise(monkeypatch):
    """The self-check: if the two contour rules disagree, no number is returned."""
    monkeypatch.setattr(laplace, "NODES", (24, 5))
    with pytest.raises(ConvergenceError, match="could not be verified"):
        kdmft.learning_curve(_problem(), [1.0, 10.0])


def test_error_estimates_are_reported_and_small():
    ds = kdmft.learning_curve(_problem(g=1e-3, P=100), np.logspace(-2, 5, 30))
    rel = ds.test_error_err.values / ds.test_error.values
    assert np.all(rel < 1e-6)
    assert np.all(ds.test_error_err.values > 0)


def test_bad_inputs():
    p = _problem()
    for bad in ([-1.0], [np.nan], [], [[1.0, 2.0]], "abc", [-np.inf]):
        with pytest.raises(kdmft.InvalidParameterError, match="times"):
            kdmft.learning_curve(p, bad)
    with pytest.raises(kdmft.InvalidParameterError, match="method"):
        kdmft.learning_curve(p, [1.0], method="nope")
    with pytest.raises(kdmft.InvalidParameterError, match="problem"):
        kdmft.learning_curve("not a problem", [1.0])


def test_divergence_at_infinity_is_inf_with_warning():
    p = _problem(P=60, g=0.0, T=0.1, s2=0.1)
    with pytest.warns(kdmft.DivergenceWarning, match="thermal"):
        ds = kdmft.learning_curve(p, [np.inf])
    assert np.isinf(ds.thermal_variance.values[0]) and np.isinf(ds.test_error.values[0])
    assert np.isfinite(ds.train_error.values[0])
    p2 = _problem(P=100, N=100, g=0.0, T=0.0, s2=0.1)
    with pytest.warns(kdmft.DivergenceWarning, match="label-noise"):
        ds2 = kdmft.learning_curve(p2, [np.inf])
    assert np.isinf(ds2.noise_variance.values[0])
    assert ds2.train_error.values[0] == 0.0
