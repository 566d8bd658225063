"""Time-domain solver: Laplace solver agreement (contract), convergence order, closed forms,
the fast closure against a brute-force causal solve of the same discrete equations."""

from __future__ import annotations

import numpy as np
import pytest

import kdmft
from kdmft.errors import InvalidParameterError
from kdmft.results import PARTS
from kdmft.theory import stationary_errors
from kdmft.theory import timedomain as td
from kdmft.theory.laplace import laplace_parts

CONTRACT_TIMES = np.array([0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0])


def _max_rel(a: dict, b: dict, keys=PARTS) -> float:
    out = 0.0
    for k in keys:
        ref = np.asarray(b[k])
        mask = ref > 1e-12
        if mask.any():
            out = max(out, float(np.max(np.abs(np.asarray(a[k])[mask] / ref[mask] - 1))))
    return out


def _laplace(p: kdmft.Problem, t):
    return laplace_parts(p.eigenvalues, p.task_power, p.samples, p.weight_decay, p.temperature,
                         p.effective_noise_var, t)[0]


def _timedomain(p: kdmft.Problem, t, dt, P=None):
    return td.timedomain_parts(p.eigenvalues, p.task_power, p.samples if P is None else P, p.weight_decay,
                               p.temperature, p.effective_noise_var, t, dt=dt, estimate_error=False)[0]


@pytest.mark.parametrize("gTs", [(0.0, 0.1, 0.0), (0.1, 0.05, 0.1)], ids=["langevin", "decay-noise"])
def test_contract_paper_setting_agrees_with_laplace(gTs):
    """λ_k = k^-3/2, N = P = 100, dt = 1e-2: every part within 1e-2 of Laplace on [0.1, 10]."""
    g, T, s2 = gTs
    p = kdmft.Problem.power_law(100, 0.5, 100, weight_decay=g, temperature=T, label_noise_var=s2)
    ds = kdmft.learning_curve(p, CONTRACT_TIMES, method="time-domain", dt=1e-2)
    ref = kdmft.learning_curve(p, CONTRACT_TIMES)
    for k in ("test_error", "train_error") + PARTS:
        r = ref[k].values
        mask = r > 1e-12
        dev = np.abs(ds[k].values[mask] / r[mask] - 1)
        assert np.all(dev < 1e-2), (k, dev.max())
    # The solver's own error estimate (Richardson with 2 dt) bounds the true deviation.
    true_dev = np.abs(ds.test_error.values - ref.test_error.values)
    assert np.all(true_dev <= 2 * ds.test_error_err.values + 1e-9)


def test_contract_fails_for_wrong_samples():
    """Companion: the same 1e-2 measure catches P = 110 instead of 100."""
    p = kdmft.Problem.power_law(100, 0.5, 100, weight_decay=0.1, temperature=0.05, label_noise_var=0.1)
    wrong = _timedomain(p, CONTRACT_TIMES, 1e-2, P=110)
    assert _max_rel(wrong, _laplace(p, CONTRACT_TIMES)) > 1e-2


def test_second_order_convergence():
    """Halving dt divides the deviation from the Laplace solver by about 4 (second order)."""
    p = kdmft.Problem.power_law(40, 0.5, 30, weight_decay=0.2, temperature=0.1, label_noise_var=0.2,
                                task_exponent=0.3)
    t = np.array([0.5, 1.0, 3.0])
    ref = _laplace(p, t)
    devs = []
    for dt in (0.04, 0.02, 0.01):
        v = _timedomain(p, t, dt)
        devs.append(max(float(np.max(np.abs(v[k] - ref[k]))) for k in PARTS))
    ratios = np.array(devs[:-1]) / np.array(devs[1:])
    assert np.all((ratios > 3.2) & (ratios < 4.8)), (devs, ratios)


@pytest.mark.parametrize("P", [30, 60], ids=["P<N", "P>N"])
def test_long_time_meets_ridge_closed_forms(P):
    """With g > 0 the curve relaxes to the static ridge / posterior formulas (independent check)."""
    p = kdmft.Problem.power_law(45, 0.5, P, weight_decay=1.0, temperature=0.1, label_noise_var=0.3)
    v = _timedomain(p, np.array([25.0]), 0.05)
    stat = stationary_errors(p.eigenvalues, p.task_power, P, 1.0, 0.1, 0.3)
    for k in PARTS:
        assert v[k][0] == pytest.approx(stat[k], rel=2e-3, abs=1e-9), k
    wrong = stationary_errors(p.eigenvalues, p.task_power, P + 5, 1.0, 0.1, 0.3)
    assert abs(v["bias"][0] / wrong["bias"] - 1) > 2e-3


def _brute_force_diagonal(lam, v, P, g, T, s2, dt, n):
    """The discrete two-time equations solved by plain causal forward substitution (O(n^4))."""
    r, kappa = td.response_sequences(lam, P, g, dt, n)
    gam = -kappa.copy()
    gam[0] += 1.0
    conv = lambda a, b: np.convolve(a, b)[:n]  # noqa: E731
    h = np.array([conv(gam, r[k]) for k in range(lam.size)])          # (g * r_k)
    W = P * (h.T * lam**2) @ h                                          # W_pq
    src_g = dt * g * np.ones(n)
    src_g[0] *= 0.5
    a = np.array([conv(r[k], np.r_[1.0, np.zeros(n - 1)] + src_g) for k in range(lam.size)])
    B = (a.T * lam * v) @ a
    e = dt * np.ones(n)
    e[0] *= 0.5
    # r~ = 2 R̂ / (1 + ζ): r~_j = 2 r_j - r~_{j-1}
    rt = np.zeros_like(r)
    for j in range(n):
        rt[:, j] = 2 * r[:, j] - (rt[:, j - 1] if j else 0)
    Th = np.zeros((n, n))
    for i in range(1, n):
        for j in range(1, n):
            m = min(i, j)
            for q in range(m):
                Th[i, j] += 2 * dt * T * np.sum(lam * rt[:, i - 1 - q] * rt[:, j - 1 - q])
    ones = np.outer(e, e)

    def solve(S):
        X = np.zeros((n, n))
        for i in range(n):
            for j in range(n):
                acc = S[i, j]
                for a_ in range(i + 1):
                    for b_ in range(j + 1):
                        if a_ == i and b_ == j:
                            continue
                        acc += W[i - a_, j - b_] * X[a_, b_]
                X[i, j] = acc / (1 - W[0, 0])
        return X

    Wones = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            Wones[i, j] = np.sum(W[: i + 1, : j + 1][::-1, ::-1] * ones[: i + 1, : j + 1])
    bias = solve(B)
    noise = solve(s2 * Wones)
    therm = solve(Th)
    return {"bias": np.diag(bias) / dt**2, "noise_variance": np.diag(noise) / dt**2,
            "thermal_variance": np.diag(therm) / dt**2}


def test_fast_closure_equals_brute_force_causal_solve():
    """The ζ-transform solve of the 2-D closure is the causal time-stepping solution (to 1e-7)."""
    lam = np.array([1.0, 0.4, 0.15, 0.05])
    v = np.array([1.0, 0.5, 2.0, 1.0])
    P, g, T, s2, dt, n = 3, 0.3, 0.2, 0.4, 0.1, 12
    bf = _brute_force_diagonal(lam, v, P, g, T, s2, dt, n)
    r, kappa = td.response_sequences(lam, P, g, dt, n)
    fast = td.closure_diagonals(lam, v, P, s2, td.constant_protocol(g, T, dt, n), r, kappa)
    for k, ref in bf.items():
        np.testing.assert_allclose(fast[k][1:], ref[1:], rtol=1e-7, atol=1e-10, err_msg=k)


def test_response_recursion_is_crank_nicolson_without_memory():
    """Σλ -> 0 removes the memory kernel: r is the Crank-Nicolson decay ((1 - x)/(1 + x))^j."""
    lam = np.array([1e-9, 3e-10])
    g, dt = 0.5, 0.05
    r, kappa = td.response_sequences(lam, 1, g, dt, 30)
    x = g * dt / 2
    q = (1 - x) / (1 + x)
    expect = dt / (2 * (1 + x)) * np.r_[1.0, (1 + q) * q ** np.arange(29)]
    np.testing.assert_allclose(r[0], expect, rtol=1e-6)
    np.testing.assert_allclose(r[0, 1:] / dt, np.exp(-g * dt * np.arange(1, 30)), rtol=2 * x**2 * 30)
    assert np.max(np.abs(kappa)) < 1e-8


def test_invalid_steps_are_rejected():
    p = kdmft.Problem.power_law(20, 0.5, 20, temperature=0.1)
    with pytest.raises(InvalidParameterError, match="dt"):
        kdmft.learning_curve(p, [1.0], method="time-domain", dt=0.0)
    with pytest.raises(InvalidParameterError, match="dt"):
        kdmft.learning_curve(p, [1e4], method="time-domain", dt=1e-3)   # n_t above MAX_STEPS
    with pytest.raises(InvalidParameterError, match="method"):
        kdmft.learning_curve(p, [1.0], method="laplace", dt=0.01)


def test_same_dataset_layout_and_infinite_time():
    p = kdmft.Problem.power_law(30, 0.5, 40, weight_decay=0.5, temperature=0.1)
    a = kdmft.learning_curve(p, [0.0, 0.5, np.inf], method="time-domain", dt=0.02)
    b = kdmft.learning_curve(p, [0.0, 0.5, np.inf])
    assert set(a.data_vars) == set(b.data_vars)
    assert a.attrs["method"] == "time-domain" and a.attrs["dt"] == 0.02
    np.testing.assert_allclose(a.test_error.values, b.test_error.values, rtol=5e-3)


def test_unresolved_stiff_modes_raise_instead_of_wrong_numbers():
    """P λ_1 dt = 1000: the Richardson estimate exceeds 1e-2, so ConvergenceError (the value was 2 % off)."""
    p = kdmft.Problem.power_law(10, 0.5, 100_000, temperature=0.01, label_noise_var=0.1)
    t = [0.1, 1.0]
    with pytest.raises(kdmft.ConvergenceError, match="dt"):
        kdmft.learning_curve(p, t, method="time-domain", dt=1e-2)
    ok = kdmft.learning_curve(p, t, method="time-domain", dt=1e-3)   # resolved: passes and is right
    ref = kdmft.learning_curve(p, t)
    assert np.max(np.abs(ok.test_error.values / ref.test_error.values - 1)) < 1e-3


def test_output_time_before_two_steps_is_refused():
    p = kdmft.Problem.power_law(100, 0.5, 100, temperature=0.1, weight_decay=0.01)
    with pytest.raises(InvalidParameterError, match="dt"):
        kdmft.learning_curve(p, [0.1, 1.0, 10.0], method="time-domain", dt=0.5)


def test_early_times_are_checked_on_a_finer_grid():
    """Times within 8 steps of 0 were unchecked and came back 53-63 % low; now refined or refused."""
    p = kdmft.Problem.power_law(10, 0.5, 200, lambda1=500.0, temperature=0.1)
    t = [0.03, 0.05]
    with pytest.raises(kdmft.ConvergenceError):
        kdmft.learning_curve(p, t, method="time-domain", dt=0.01)
    ok = kdmft.learning_curve(p, t, method="time-domain", dt=1e-5)
    assert np.allclose(ok.test_error.values, kdmft.learning_curve(p, t).test_error.values, rtol=1e-3)
    q = kdmft.Problem.power_law(100, 0.5, 100, temperature=0.05, weight_decay=0.1)   # resolved: refined, right
    early = kdmft.learning_curve(q, [0.03, 0.05], method="time-domain", dt=0.01)
    assert np.allclose(early.test_error.values, kdmft.learning_curve(q, [0.03, 0.05]).test_error.values, rtol=1e-3)


def test_tiny_dt_is_refused_before_allocating():
    from kdmft.schedules import Schedule, parse_shape

    p = kdmft.Problem.power_law(10, 0.5, 20, temperature=0.1)
    sched = Schedule(temperature=parse_shape("exponential:rate=0.2", "t"))
    for kw in ({}, {"schedule": sched}):
        with pytest.raises(InvalidParameterError, match="dt"):
            kdmft.learning_curve(p, [1.0], method="time-domain", dt=1e-300, **kw)
