"""Problem definition and validation (THEORY.md section 2)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import kdmft
from kdmft import InvalidParameterError, Problem


def test_power_law_problem():
    p = Problem.power_law(5, 0.5, 3, lambda1=2.0, task_exponent=1.0, weight_decay=0.1, temperature=0.2)
    k = np.arange(1, 6)
    np.testing.assert_allclose(p.eigenvalues, 2.0 * k**-1.5)
    np.testing.assert_allclose(p.task_power, 1.0 / k)
    assert (p.modes, p.samples, p.weight_decay, p.temperature) == (5, 3, 0.1, 0.2)
    assert p.signal_power == pytest.approx(np.sum(2.0 * k**-2.5))
    assert p.attrs()["alpha"] == 0.5


def test_teacher_tail_finite_and_infinite():
    p = Problem.power_law(10, 0.5, 5, teacher_modes=30, task_exponent=0.5)
    k = np.arange(11, 31)
    assert p.teacher_tail == pytest.approx(np.sum(k**-2.0), rel=1e-13)
    q = Problem.power_law(10, 0.5, 5, teacher_modes=math.inf, task_exponent=0.5)
    kmax = 2_000_000  # direct sum plus the integral of k^-2 beyond kmax (error ~ kmax^-2)
    assert q.teacher_tail == pytest.approx(np.sum(np.arange(11, kmax) ** -2.0) + 1 / (kmax - 0.5), rel=1e-9)
    assert q.effective_noise_var == q.teacher_tail
    big = Problem.power_law(10, 0.5, 5, teacher_modes=10**9)  # beyond direct summation: zeta
    inf = Problem.power_law(10, 0.5, 5, teacher_modes=math.inf)
    assert inf.teacher_tail - big.teacher_tail == pytest.approx(2 / np.sqrt(1e9), rel=1e-3)


def test_bayesian_dictionary():
    g, T = kdmft.bayesian_to_langevin(prior_var=4.0, noise_var=0.5)
    assert (g, T) == (0.125, 0.5)
    assert kdmft.langevin_to_bayesian(g, T) == (4.0, 0.5)
    p = Problem.power_law(5, 1.0, 5).with_bayesian(prior_var=2.0, noise_var=0.1)
    assert p.weight_decay == pytest.approx(0.05) and p.temperature == pytest.approx(0.1)


@pytest.mark.parametrize("kwargs, name", [
    ({"modes": 0}, "modes"), ({"modes": -3}, "modes"), ({"modes": 2.5}, "modes"), ({"modes": True}, "modes"),
    ({"alpha": 0.0}, "alpha"), ({"alpha": -1.0}, "alpha"), ({"alpha": math.nan}, "alpha"),
    ({"samples": 0}, "samples"), ({"samples": 1.5}, "samples"),
    ({"weight_decay": -0.1}, "weight_decay"), ({"temperature": -1e-9}, "temperature"),
    ({"label_noise_var": -1.0}, "label_noise_var"), ({"temperature": math.inf}, "temperature"),
    ({"lambda1": 0.0}, "lambda1"), ({"task_exponent": math.nan}, "task_exponent"),
    ({"teacher_modes": 5}, "teacher_modes"), ({"teacher_modes": 12.5}, "teacher_modes"),
])
def test_bad_power_law_parameters(kwargs, name):
    args = {"modes": 10, "alpha": 0.5, "samples": 5} | kwargs
    with pytest.raises(InvalidParameterError) as exc:
        Problem.power_law(**args)
    msg = str(exc.value)
    assert msg.startswith(name) and "must be" in msg and "\n" not in msg


@pytest.mark.parametrize("lam, v, name", [
    ([1.0, np.nan], [1.0, 1.0], "eigenvalues"), ([1.0, -0.1], [1, 1], "eigenvalues"),
    ([1.0, 0.0], [1, 1], "eigenvalues"), ([], [], "eigenvalues"), ([[1.0]], [1.0], "eigenvalues"),
    ([1.0, 0.5], [1.0], "task_power"), ([1.0, 0.5], [1.0, -1.0], "task_power"),
    ([1.0, 0.5], [1.0, np.inf], "task_power"),
])
def test_bad_arrays(lam, v, name):
    with pytest.raises(InvalidParameterError, match=name):
        Problem(np.array(lam, dtype=float), np.array(v, dtype=float), 3)


def test_problem_is_immutable_and_replace_validates():
    p = Problem.power_law(4, 0.5, 2)
    with pytest.raises(ValueError):
        p.eigenvalues[0] = 3.0
    with pytest.raises(InvalidParameterError, match="samples"):
        p.replace(samples=-1)


@pytest.mark.parametrize("kw, name", [({"weight_decay": 1e300}, "weight_decay"), ({"temperature": 1e51}, "temperature"),
                                      ({"label_noise_var": 1e60}, "label_noise_var"), ({"alpha": 1e300}, "alpha"),
                                      ({"lambda1": 1e300}, "lambda1")])
def test_magnitudes_beyond_float_safety_are_refused(kw, name):
    """g = 1e300 gave NaN inside the solver; such magnitudes are usage errors naming the parameter."""
    args = {"modes": 10, "alpha": 0.5, "samples": 10} | kw
    with pytest.raises(kdmft.InvalidParameterError, match=name):
        kdmft.Problem.power_law(args.pop("modes"), args.pop("alpha"), args.pop("samples"), **args)


def test_largest_accepted_weight_decay_freezes_learning():
    p = kdmft.Problem.power_law(10, 0.5, 10, weight_decay=1e50)
    ds = kdmft.learning_curve(p, [1.0, np.inf])
    assert np.allclose(ds.test_error.values, p.signal_power, rtol=1e-12)


def test_non_numeric_arrays_are_typed():
    with pytest.raises(kdmft.InvalidParameterError, match="eigenvalues"):
        kdmft.Problem(["a"], 1.0, 10)
