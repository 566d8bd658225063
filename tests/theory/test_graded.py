"""Graded (non-uniform) time grid: constant protocols against the Laplace solver, learning-rate and
temperature schedules against the uniform time-domain grid and against the exact scheduled
simulation over a horizon the uniform grid refuses; each comparison rejects a wrong parameter."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import kdmft
from kdmft.errors import ConvergenceError, InvalidParameterError
from kdmft.results import PARTS
from kdmft.schedules import Schedule, Shape
from kdmft.simulate import simulate_schedule
from kdmft.theory.graded import graded_parts, time_map
from kdmft.theory.laplace import laplace_parts
from kdmft.theory.timedomain import timedomain_parts

OBS = ("test_error", "train_error", "bias", "noise_variance", "thermal_variance")


def _graded(p: kdmft.Problem, t, schedule=None, **kw):
    return graded_parts(p.eigenvalues, p.task_power, p.samples, p.weight_decay, p.temperature,
                        p.effective_noise_var, np.asarray(t, float), schedule=schedule, **kw)


@pytest.mark.parametrize("P,g,T,s2", [(100, 0.1, 0.05, 0.1), (100, 0.0, 0.1, 0.0), (50, 0.01, 0.1, 0.3)])
def test_constant_protocol_equals_laplace(P, g, T, s2):
    """Without a schedule the graded quadrature reproduces the Laplace thermal parts from 0.1 to 1e4."""
    p = kdmft.Problem.power_law(100, 0.5, P, weight_decay=g, temperature=T, label_noise_var=s2)
    t = np.geomspace(0.1, 1e4, 13)
    gv, ge = _graded(p, t)
    lv, _ = laplace_parts(p.eigenvalues, p.task_power, P, g, T, p.effective_noise_var, t)
    for k in PARTS:
        np.testing.assert_allclose(gv[k], lv[k], rtol=1e-7, atol=1e-12, err_msg=k)
        assert np.all(ge[k] <= 1e-6 * np.abs(gv[k]) + 1e-10), k


def test_time_map_integrates_the_learning_rate():
    """τ(t) = ∫η: closed forms for warm-up, cosine and step factors, to 1e-10."""
    t = np.array([0.3, 1.0, 2.5, 7.0, 100.0])
    warm = time_map(Schedule(learning_rate=Shape("warmup", {"duration": 2.0, "start": 0.2})), 100.0)(t)
    exact = np.where(t < 2, 0.2 * t + 0.8 * t**2 / 4, 0.2 * 2 + 0.8 * 1 + (t - 2))
    np.testing.assert_allclose(warm, exact, rtol=1e-10)
    step = time_map(Schedule(learning_rate=Shape("step", {"at": [1.0, 5.0], "values": [2.0, 0.5, 1.0]})), 100.0)(t)
    exact = np.select([t < 1, t < 5], [2 * t, 2 + 0.5 * (t - 1)], 4 + (t - 5))
    np.testing.assert_allclose(step, exact, rtol=1e-10)
    cos = time_map(Schedule(learning_rate=Shape("cosine", {"duration": 4.0, "floor": 0.2})), 100.0)(t)
    d = np.minimum(t, 4.0)
    exact = 0.2 * t + 0.8 * (0.5 * d + 0.5 * 4 / np.pi * np.sin(np.pi * d / 4))
    np.testing.assert_allclose(cos, exact, rtol=1e-10)


SCHEDULES = {
    "anneal": Schedule(temperature=Shape("exponential", {"rate": 0.5})),
    "warmup-step": Schedule(learning_rate=Shape("warmup", {"duration": 2.0, "start": 0.1}),
                            temperature=Shape("step", {"at": [1.0, 3.0], "values": [1.0, 0.3, 0.05]})),
    "cosine": Schedule(learning_rate=Shape("cosine", {"duration": 4.0, "floor": 0.1}),
                       temperature=Shape("cosine", {"duration": 3.0})),
    "callable": Schedule(learning_rate=lambda x: 1 + 0.5 * np.sin(x), temperature=lambda x: np.exp(-x) * (1 + x)),
    "decay-exponential": Schedule(weight_decay=Shape("exponential", {"rate": 0.5, "floor": 0.2})),
    "decay-step-warmup": Schedule(learning_rate=Shape("warmup", {"duration": 2.0, "start": 0.1}),
                                  weight_decay=Shape("step", {"at": [1.0, 3.0], "values": [1.0, 0.3, 0.05]}),
                                  temperature=Shape("exponential", {"rate": 0.3})),
    "decay-cosine": Schedule(weight_decay=Shape("cosine", {"duration": 4.0, "floor": 0.1}),
                             temperature=Shape("cosine", {"duration": 3.0})),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedules_agree_with_uniform_grid(name):
    """Graded vs the uniform time-domain grid (dt = 0.005, an independent discretisation) on [0.5, 5]:
    agreement within three times the uniform grid's own error estimate (its largest over the times:
    the estimate of one time can vanish where the error changes sign)."""
    g = 0.3 if name.startswith("decay") else 0.1
    p = kdmft.Problem.power_law(60, 0.5, 60, weight_decay=g, temperature=0.05, label_noise_var=0.1)
    t = np.array([0.5, 1.0, 2.0, 3.5, 5.0])
    s = SCHEDULES[name]
    gv, _ = _graded(p, t, s)
    uv, ue = timedomain_parts(p.eigenvalues, p.task_power, 60, g, 0.05, p.effective_noise_var, t, dt=0.005,
                              protocol=s.protocol_sampler(g, 0.05))
    for k in PARTS:
        assert np.all(_off(gv, uv, ue, k) <= 1), (name, k)


def _off(gv, uv, ue, k):
    """|graded - uniform| in units of the tolerance 3 max_t(error estimate) + 1e-6 |value| + 1e-9."""
    return np.abs(gv[k] - uv[k]) / (3 * ue[k].max() + 1e-6 * np.abs(uv[k]) + 1e-9)


@pytest.mark.parametrize("name", ["anneal", "decay-exponential"])
def test_uniform_grid_comparison_rejects_wrong_rate(name):
    """The same measure rejects a graded run whose rate is 1.2 times the true one (temperature
    annealing; weight-decay decay, which acts through the bias and the variances)."""
    g = 0.3 if name.startswith("decay") else 0.1
    p = kdmft.Problem.power_law(60, 0.5, 60, weight_decay=g, temperature=0.05, label_noise_var=0.1)
    t = np.array([0.5, 1.0, 2.0, 3.5, 5.0])
    s = SCHEDULES[name]
    uv, ue = timedomain_parts(p.eigenvalues, p.task_power, 60, g, 0.05, p.effective_noise_var, t, dt=0.005,
                              protocol=s.protocol_sampler(g, 0.05))
    role = "temperature" if name == "anneal" else "weight_decay"
    shape = getattr(s, role)
    wrong = Schedule(**{role: Shape("exponential", {**shape.params, "rate": 1.2 * shape.params["rate"]})})
    bad, _ = _graded(p, t, wrong)
    assert any(np.any(_off(bad, uv, ue, k) > 1) for k in ("bias", "thermal_variance"))


LONG = Schedule(learning_rate=Shape("warmup", {"duration": 5.0}),
                temperature=Shape("exponential", {"rate": 0.01, "floor": 0.02}))
LONG_T = np.array([10.0, 100.0, 1e3, 1e4])
#: Weight decay 0.05 stepped down to 0.03 at t = 100 (gauge spread 2.0 over [0, 3000]).
LONG_G = Schedule(learning_rate=LONG.learning_rate, temperature=LONG.temperature,
                  weight_decay=Shape("step", {"at": [100.0], "values": [1.0, 0.6]}))
LONG_G_T = np.array([10.0, 100.0, 300.0, 3e3])


@pytest.fixture(scope="module")
def long_sim():
    """Exact scheduled simulation to t = 1e4, N = 60, P = 30 (null-space growth: the late error is
    the integral of the temperature), 300 data sets."""
    p = kdmft.Problem.power_law(60, 0.5, 30, temperature=0.1, label_noise_var=0.1)
    return p, simulate_schedule(p, LONG_T, LONG, 300, 3)


@pytest.fixture(scope="module")
def long_sim_g():
    """The same with a weight-decay step (g = 0.05 -> 0.03 at t = 100), to t = 3000."""
    p = kdmft.Problem.power_law(60, 0.5, 30, weight_decay=0.05, temperature=0.1, label_noise_var=0.1)
    return p, simulate_schedule(p, LONG_G_T, LONG_G, 300, 3)


def _long_theory(p, schedule, times=LONG_T):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return kdmft.learning_curve(p, times, method="time-domain", grid="graded", schedule=schedule)


@pytest.mark.parametrize("case", ["temperature", "weight-decay"])
def test_long_horizon_matches_exact_simulation(long_sim, long_sim_g, case):
    """t up to 1e4 (5e5 steps of dt = 0.02, refused by the uniform grid) against the exact scheduled
    simulation: within the finite-size budget 2/N + 4 SE for every part."""
    p, sim = long_sim if case == "temperature" else long_sim_g
    times, s = (LONG_T, LONG) if case == "temperature" else (LONG_G_T, LONG_G)
    th = _long_theory(p, s, times)
    budget = 2.0 / 60
    for k in OBS:
        dev = np.abs(th[k].values - sim[k].values)
        assert np.all(dev < budget * sim[k].values + 4 * sim[k + "_se"].values + 1e-12), (k, dev / sim[k].values)
    with pytest.raises(InvalidParameterError, match="dt"):
        kdmft.learning_curve(p, times, method="time-domain", dt=0.01, schedule=s)


@pytest.mark.parametrize("wrong", ["rate", "floor", "P"])
def test_long_horizon_comparison_rejects_wrong_parameter(long_sim, wrong):
    p, sim = long_sim
    s = LONG
    if wrong == "rate":
        s = Schedule(learning_rate=LONG.learning_rate, temperature=Shape("exponential", {"rate": 0.013, "floor": 0.02}))
    elif wrong == "floor":
        s = Schedule(learning_rate=LONG.learning_rate, temperature=Shape("exponential", {"rate": 0.01, "floor": 0.026}))
    else:
        p = kdmft.Problem.power_law(60, 0.5, 27, temperature=0.1, label_noise_var=0.1)
    th = _long_theory(p, s)
    dev = np.abs(th.test_error.values - sim.test_error.values)
    assert np.any(dev > 2.0 / 60 * sim.test_error.values + 4 * sim.test_error_se.values)


@pytest.mark.parametrize("values", [[1.0, 0.8], [0.8, 0.6]], ids=["after", "before"])
def test_long_horizon_weight_decay_comparison_rejects_wrong_step(long_sim_g, values):
    """The weight-decay comparison rejects a wrong factor after (0.8 for 0.6) or before the step."""
    p, sim = long_sim_g
    s = Schedule(learning_rate=LONG.learning_rate, temperature=LONG.temperature,
                 weight_decay=Shape("step", {"at": [100.0], "values": values}))
    th = _long_theory(p, s, LONG_G_T)
    dev = np.abs(th.test_error.values - sim.test_error.values)
    assert np.any(dev > 2.0 / 60 * sim.test_error.values + 4 * sim.test_error_se.values)


def test_bad_input_and_unresolvable_schedule():
    p = kdmft.Problem.power_law(40, 0.5, 40, temperature=0.1)
    with pytest.raises(InvalidParameterError, match="dt"):
        kdmft.learning_curve(p, [1.0], method="time-domain", grid="graded", dt=0.01)
    with pytest.raises(InvalidParameterError, match="grid"):
        kdmft.learning_curve(p, [1.0], method="time-domain", grid="fine")
    with pytest.raises(InvalidParameterError, match="method"):
        kdmft.learning_curve(p, [1.0], grid="graded")
    with pytest.raises(InvalidParameterError, match="schedule.weight_decay"):   # gauge spread 0.5 * 1e3 / 2
        kdmft.learning_curve(kdmft.Problem.power_law(40, 0.5, 40, weight_decay=1.0), [1e3], method="time-domain",
                             grid="graded", schedule=Schedule(weight_decay=Shape("step", {"at": [500.0],
                                                                                        "values": [1.0, 0.0]})))
    with pytest.raises(InvalidParameterError, match="per_decade"):
        _graded(p, [1.0], per_decade=2)
    # A temperature oscillating a thousand times faster than the grid: refused, not returned.
    fast = Schedule(temperature=lambda x: 1.0 + 0.9 * np.sin(300.0 * x))
    with pytest.raises(ConvergenceError, match="temperature schedule"):
        kdmft.learning_curve(p, [1e3], method="time-domain", grid="graded", schedule=fast)
    # A constant weight-decay factor is a constant g: accepted and equal to scaling g.
    half = Schedule(weight_decay=Shape("constant", {"value": 0.5}))
    p1 = kdmft.Problem.power_law(40, 0.5, 40, weight_decay=0.2, temperature=0.1)
    p2 = kdmft.Problem.power_law(40, 0.5, 40, weight_decay=0.1, temperature=0.1)
    a = kdmft.learning_curve(p1, [1.0, 50.0], method="time-domain", grid="graded", schedule=half)
    b = kdmft.learning_curve(p2, [1.0, 50.0])
    np.testing.assert_allclose(a.test_error.values, b.test_error.values, rtol=1e-7)
    assert a.attrs["grid"] == "graded" and "dt" not in a.attrs


# -- regressions from a breaker's report ----------------------------------------------------------
def test_early_schedule_change_is_kept_at_very_long_horizons():
    """An exponential decay of g with rate 1 seen from t = 1e6 and 1e8: the bias must reach the
    g = 0 limit (before, cells starting at 1e-9 t dropped the early decay: -81 % at t = 1e10 with
    an error estimate of 2e-10)."""
    p = kdmft.Problem.power_law(100, 1.0, 50, weight_decay=1.0)
    s = Schedule(weight_decay=Shape("exponential", {"rate": 1.0}))
    ds = kdmft.learning_curve(p, [1e6, 1e8], method="time-domain", grid="graded", schedule=s)
    limit = kdmft.learning_curve(kdmft.Problem.power_law(100, 1.0, 50), [np.inf]).test_error.values
    np.testing.assert_allclose(ds.test_error.values, limit[0], rtol=2e-5)
    g1 = kdmft.learning_curve(p, [1e8]).test_error.values[0]     # the check can fail: g = 1 kept is far off
    assert abs(g1 / limit[0] - 1) > 0.1


def test_annealed_heat_in_the_null_space_stays_and_matches_simulation():
    """P < N, g = 0, T(t) = T e^{-t}: the heat trapped in the null space is constant from t = 1e4 to
    1e15 (before: 4e-3 at 1e10 with a 3e-8 error estimate; cells started at 1e-9 t, and increments
    of Q were differences of accumulated values of ~1e11) and matches the exact simulation, which
    no longer depends on the other times requested."""
    p = kdmft.Problem.power_law(60, 0.5, 30, temperature=0.1)
    s = Schedule(temperature=Shape("exponential", {"rate": 1.0}))
    th = kdmft.learning_curve(p, [100.0, 1e4, 1e8, 1e12, 1e15], method="time-domain", grid="graded", schedule=s)
    np.testing.assert_allclose(th.thermal_variance.values, th.thermal_variance.values[1], rtol=1e-4)
    np.testing.assert_allclose(th.thermal_variance.values[1:], th.thermal_variance.values[1], rtol=1e-6)
    alone = simulate_schedule(p, [100.0], s, 200, 0)
    both = simulate_schedule(p, [100.0, 1e8], s, 200, 0)
    np.testing.assert_allclose(both.thermal_variance.values[0], alone.thermal_variance.values[0], rtol=1e-4)
    dev = abs(th.thermal_variance.values[2] - both.thermal_variance.values[1])
    assert dev < 2 / 60 * both.thermal_variance.values[1] + 4 * both.thermal_variance_se.values[1]


def test_cyclic_and_vanishing_learning_rates():
    """η = 1 + sin(t)/2 to t = 1e5 equals the constant protocol at the exact τ = t + (1 - cos t)/2;
    η = e^{-t} (underflowing to 0 after t ~ 745) equals it at τ = 1 - e^{-t}."""
    p = kdmft.Problem.power_law(100, 0.5, 100, temperature=0.1, label_noise_var=0.1)
    t = np.array([3e4, 1e5])
    cyc = kdmft.learning_curve(p, t, method="time-domain", grid="graded", schedule=Schedule(
        learning_rate=lambda x: 1 + 0.5 * np.sin(x)))
    ref = kdmft.learning_curve(p, t + 0.5 * (1 - np.cos(t)))
    np.testing.assert_allclose(cyc.test_error.values, ref.test_error.values, rtol=1e-8)
    dec = kdmft.learning_curve(p, [2.0, 800.0], method="time-domain", grid="graded",
                               schedule=Schedule(learning_rate=Shape("exponential", {"rate": 1.0})))
    ref = kdmft.learning_curve(p, [1 - np.exp(-2.0), 1.0])
    np.testing.assert_allclose(dec.test_error.values, ref.test_error.values, rtol=1e-7)


def test_graded_grid_refuses_what_it_cannot_verify():
    p = kdmft.Problem.power_law(40, 0.5, 40, weight_decay=0.1, temperature=0.1)
    for t in (1e-60, 1e16):
        with pytest.raises(InvalidParameterError, match="times"):
            kdmft.learning_curve(p, [t], method="time-domain", grid="graded")
    with pytest.raises(InvalidParameterError, match="times"):   # τ(1e-30) = 5e-61 under a warm-up from 0
        kdmft.learning_curve(p, [1e-30], method="time-domain", grid="graded",
                             schedule=Schedule(learning_rate=Shape("warmup", {"duration": 1.0})))
    with pytest.raises(InvalidParameterError, match="complex"):
        kdmft.learning_curve(p, [1.0], method="time-domain", grid="graded",
                             schedule=Schedule(temperature=lambda x: (1 + 1j) * np.ones_like(x)))



@pytest.mark.parametrize("t", [1e4, 1e8])
def test_late_changes_are_resolved_at_any_horizon(t):
    """A weight-decay step 100 time units before t (g 0.05 -> 0.075) reaches the ridge value of
    g = 0.075 whatever t (before: 0.0095 for 0.0573 at t = 1e8, error estimate 1.6e-10), and a
    temperature step 0.01 before t gives the same parts at t = 1e4 and t = 1.4e8."""
    p = kdmft.Problem.power_law(100, 1.0, 40, weight_decay=0.05)
    ds = kdmft.learning_curve(p, [t], method="time-domain", grid="graded",
                              schedule=Schedule(weight_decay=Shape("step", {"at": [t - 100], "values": [1, 1.5]})))
    ridge = kdmft.learning_curve(kdmft.Problem.power_law(100, 1.0, 40, weight_decay=0.075), [np.inf])
    np.testing.assert_allclose(ds.test_error.values, ridge.test_error.values, rtol=1e-5)
    q = kdmft.Problem.power_law(100, 1.0, 40, weight_decay=0.05, temperature=0.02, label_noise_var=0.1,
                                task_exponent=1.0)
    step = {"values": [1, 0.5]}
    near = kdmft.learning_curve(q, [1e4], method="time-domain", grid="graded",
                                schedule=Schedule(temperature=Shape("step", {**step, "at": [1e4 - 0.01]})))
    far = kdmft.learning_curve(q, [1.4251e8], method="time-domain", grid="graded",
                               schedule=Schedule(temperature=Shape("step", {**step, "at": [1.4251e8 - 0.01]})))
    for k in ("thermal_variance", "train_thermal_variance"):
        np.testing.assert_allclose(far[k].values, near[k].values, rtol=1e-5)
