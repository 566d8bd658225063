"""Schedules: shapes and parsing; the exact scheduled reference, Euler-Maruyama, and the
scheduled time-domain theory against each other, each with a wrong-parameter companion."""

from __future__ import annotations

import numpy as np
import pytest

import kdmft
from kdmft.errors import InvalidParameterError
from kdmft.schedules import Schedule, Shape, parse_shape, schedule_from_dict
from kdmft.simulate import simulate_em, simulate_schedule

OBS = ("test_error", "train_error", "bias", "noise_variance", "thermal_variance")


# -- shapes ------------------------------------------------------------------------------------
def test_builtin_shapes_values():
    t = np.array([0.0, 0.5, 1.0, 2.0, 4.0])
    np.testing.assert_allclose(Shape("exponential", {"rate": 2.0, "floor": 0.1})(t),
                               0.1 + 0.9 * np.exp(-2 * t))
    np.testing.assert_allclose(Shape("step", {"at": [1.0, 3.0], "values": [1, 0.5, 0.2]})(t),
                               [1, 1, 0.5, 0.5, 0.2])
    np.testing.assert_allclose(Shape("cosine", {"duration": 2.0})(t), [1, 0.5 * (1 + np.cos(np.pi / 4)), 0.5, 0, 0])
    np.testing.assert_allclose(Shape("warmup", {"duration": 2.0, "start": 0.2})(t), [0.2, 0.4, 0.6, 1, 1])
    np.testing.assert_allclose(Shape("callable", func=lambda x: 1 / (1 + x))(t), 1 / (1 + t))


@pytest.mark.parametrize("bad", [
    ("exponential", {}), ("exponential", {"rate": -1}), ("step", {"at": [2, 1], "values": [1, 1, 1]}),
    ("step", {"at": [1], "values": [1]}), ("cosine", {"duration": 0}), ("wobble", {}),
    ("warmup", {"duration": 1, "tilt": 2})], ids=lambda b: b[0] + str(sorted(b[1])))
def test_bad_shapes_raise(bad):
    with pytest.raises(InvalidParameterError):
        Shape(*bad)


def test_learning_rate_must_stay_positive_and_callables_are_checked():
    with pytest.raises(InvalidParameterError, match="learning_rate"):
        Schedule(learning_rate=Shape("step", {"at": [1.0], "values": [1.0, 0.0]}))   # η = 0 after t = 1
    Schedule(learning_rate=Shape("warmup", {"duration": 1.0}))   # η(0) = 0 but η > 0 for t > 0: allowed
    s = Schedule(temperature=lambda t: 1.0 - t)                          # negative after t = 1
    with pytest.raises(InvalidParameterError, match="temperature"):
        s.factor("temperature", np.array([0.0, 2.0]))


def test_parse_cli_spec_and_toml_table():
    assert parse_shape("step:at=1/3,values=1/0.5/0.1").params == {"at": [1.0, 3.0], "values": [1.0, 0.5, 0.1]}
    assert parse_shape("exponential:rate=0.5").params == {"rate": 0.5, "floor": 0.0}
    s = schedule_from_dict({"temperature": {"shape": "exponential", "rate": 0.5}})
    assert s.temperature.kind == "exponential" and s.learning_rate is None and not s.is_constant
    for bad in ({"temp": {"shape": "constant"}}, {"temperature": {"rate": 1}}):
        with pytest.raises(InvalidParameterError):
            schedule_from_dict(bad)
    with pytest.raises(InvalidParameterError):
        parse_shape("exponential:rate")


# -- simulations -------------------------------------------------------------------------------
def _p(N=30, P=30, **kw):
    base = {"weight_decay": 0.1, "temperature": 0.05, "label_noise_var": 0.1}
    base.update(kw)
    return kdmft.Problem.power_law(N, 0.5, P, **base)


def test_exact_reference_reduces_to_exact_simulation():
    """No schedule: identical to simulate (same data sets); a constant η = 2 is time doubled."""
    p = _p()
    t = np.array([0.1, 1.0, 3.0])
    a = kdmft.simulate(p, t, 64, 5)
    b = simulate_schedule(p, t, None, 64, 5, cells=500)
    c = simulate_schedule(p, t / 2, Schedule(learning_rate=Shape("constant", {"value": 2.0})), 64, 5, cells=500)
    for k in OBS:
        np.testing.assert_allclose(b[k].values, a[k].values, rtol=1e-10)
        np.testing.assert_allclose(c[k].values, a[k].values, rtol=1e-8)


ANNEAL = Schedule(learning_rate=Shape("warmup", {"duration": 0.5, "start": 0.3}),
                  weight_decay=Shape("step", {"at": [1.0], "values": [1.0, 3.0]}),
                  temperature=Shape("exponential", {"rate": 1.0}))


def _z(a, b, k):
    return np.abs(a[k].values - b[k].values) / np.hypot(a[k + "_se"].values, b[k + "_se"].values)


@pytest.mark.parametrize("schedule", [None, ANNEAL], ids=["constant", "scheduled"])
def test_euler_maruyama_matches_exact_reference(schedule):
    """Paired (same X) comparison within 4.5 standard errors; EM's O(dt) bias is far below that."""
    p = _p()
    t = np.array([0.3, 1.5])
    em = simulate_em(p, t, 192, 2, dt=2e-3, schedule=schedule)
    ref = simulate_schedule(p, t, schedule, 192, 2, cells=1000)
    for k in OBS:
        assert np.all(_z(em, ref, k) < 4.5), (k, _z(em, ref, k))


def test_euler_maruyama_comparison_catches_wrong_schedule():
    p = _p()
    t = np.array([1.5])
    em = simulate_em(p, t, 192, 2, dt=2e-3, schedule=ANNEAL)
    wrong = Schedule(learning_rate=ANNEAL.learning_rate, weight_decay=ANNEAL.weight_decay,
                     temperature=Shape("exponential", {"rate": 3.0}))
    ref = simulate_schedule(p, t, wrong, 192, 2, cells=1000)
    assert _z(em, ref, "thermal_variance").max() > 4.5


def test_euler_maruyama_rejects_unstable_step():
    with pytest.raises(InvalidParameterError, match="dt"):
        simulate_em(_p(), [0.5], 4, 0, dt=0.1)


def test_scheduled_theory_matches_scheduled_simulation():
    """Time-domain DMFT with a schedule vs the exact reference at N = P = 60 (finite-size 2/N + 4 SE),
    and the same measure rejects the theory run with a wrong annealing rate."""
    p = _p(60, 60, temperature=0.1, label_noise_var=0.2)
    t = np.array([0.5, 2.0, 5.0])
    sim = simulate_schedule(p, t, ANNEAL, 160, 4, cells=1500)
    th = kdmft.learning_curve(p, t, method="time-domain", dt=0.02, schedule=ANNEAL)
    budget = 2.0 / 60
    for k in OBS:
        dev = np.abs(th[k].values - sim[k].values)
        assert np.all(dev < budget * sim[k].values + 4 * sim[k + "_se"].values), (k, dev / sim[k].values)
    wrong = Schedule(learning_rate=ANNEAL.learning_rate, weight_decay=ANNEAL.weight_decay,
                     temperature=Shape("exponential", {"rate": 3.0}))
    bad = kdmft.learning_curve(p, t, method="time-domain", dt=0.02, schedule=wrong)
    dev = np.abs(bad.test_error.values - sim.test_error.values)
    assert np.any(dev > budget * sim.test_error.values + 4 * sim.test_error_se.values)


def test_warmup_from_zero_and_repeated_keys():
    """The CLI help's warm-up from η(0) = 0 runs (η > 0 for t > 0); a repeated key is an error."""
    s = Schedule(learning_rate=parse_shape("warmup:duration=1", "--lr-schedule"))
    p = kdmft.Problem.power_law(20, 0.5, 40, temperature=0.05)
    th = kdmft.learning_curve(p, [1.0, 5.0], method="time-domain", dt=0.01, schedule=s).test_error.values
    sim = simulate_schedule(p, [1.0, 5.0], s, 400, 0)
    assert np.all(np.abs(th / sim.test_error.values - 1) < 2 / 20 * 2)   # finite size at N = 20
    const = kdmft.learning_curve(p, [1.0], method="time-domain", dt=0.01).test_error.values
    assert th[0] > const[0] * 1.05   # the warm-up learns less by t = 1
    with pytest.raises(InvalidParameterError, match="repeated"):
        parse_shape("warmup:duration=1,duration=2", "--lr-schedule")
    with pytest.raises(InvalidParameterError, match="learning_rate"):
        Schedule(learning_rate=parse_shape("cosine:duration=1,floor=0", "--lr-schedule"))
