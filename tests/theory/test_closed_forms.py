"""Closed forms of THEORY.md section 5 against their defining equations and brute force."""

from __future__ import annotations

import numpy as np
import pytest

import kdmft
from kdmft.theory import initial_errors, ridge_kappa, stationary_errors

LAM = np.arange(1, 101) ** -1.5


@pytest.mark.parametrize("P", [40, 100, 250])
@pytest.mark.parametrize("g", [0.0, 1e-4, 0.5])
def test_ridge_kappa_solves_its_equation(P, g):
    k = ridge_kappa(LAM, P, g)
    if g == 0 and P >= LAM.size:
        assert k == 0.0
    elif g == 0:
        assert np.sum(LAM / (k + P * LAM)) == pytest.approx(1.0, rel=1e-13)
    else:
        assert k == pytest.approx(g + k * np.sum(LAM / (P * LAM + k)), rel=1e-13)


def test_initial_errors():
    v = np.arange(1, 101) ** -0.3
    e = initial_errors(LAM, v, 0.2)
    assert e["bias"] == pytest.approx(np.sum(LAM * v))
    assert e["train_noise_variance"] == 0.2 and e["noise_variance"] == 0.0


def test_ols_limits_above_threshold():
    """g = 0, P > N: noise σ² N/(P-N), thermal T N/(P-N), train σ²(1 - N/P) + T N/P, bias 0."""
    N, P, s2, T = 100, 250, 0.3, 0.07
    e = stationary_errors(LAM, np.ones(N), P, 0.0, T, s2)
    assert e["bias"] == 0.0
    assert e["noise_variance"] == pytest.approx(s2 * N / (P - N))
    assert e["thermal_variance"] == pytest.approx(T * N / (P - N))
    assert e["train_bias"] + e["train_noise_variance"] == pytest.approx(s2 * (1 - N / P))
    assert e["train_thermal_variance"] == pytest.approx(T * N / P)


def test_ridge_limit_against_brute_force_average():
    """t -> inf with g > 0 is ridge regression + posterior variance; average over data sets."""
    N, P, g, T, s2 = 60, 90, 0.3, 0.05, 0.2
    lam = np.arange(1, N + 1) ** -1.5
    v = np.arange(1, N + 1) ** -0.5
    rng = np.random.default_rng(0)
    vals = []
    for _ in range(3000):
        X = rng.standard_normal((P, N)) * np.sqrt(lam)
        Hi = np.linalg.inv(X.T @ X + g * np.eye(N))
        bias = g * g * np.trace(Hi @ np.diag(lam) @ Hi @ np.diag(v))
        noise = s2 * np.trace(Hi @ X.T @ X @ Hi @ np.diag(lam))
        thermal = T * np.trace(np.diag(lam) @ Hi)
        vals.append([bias, noise, thermal])
    vals = np.array(vals)
    mean, se = vals.mean(0), vals.std(0) / np.sqrt(len(vals))
    e = stationary_errors(lam, v, P, g, T, s2)
    th = np.array([e["bias"], e["noise_variance"], e["thermal_variance"]])
    tol = 3 * se + (2.0 / N) * mean  # finite-size budget of THEORY.md section 7
    assert np.all(np.abs(th - mean) <= tol)
    wrong = stationary_errors(lam, v, int(0.8 * P), g, T, s2)
    wth = np.array([wrong["bias"], wrong["noise_variance"], wrong["thermal_variance"]])
    assert np.any(np.abs(wth - mean) > tol)


def test_learning_curve_uses_closed_forms_at_the_ends():
    p = kdmft.Problem.power_law(100, 0.5, 70, weight_decay=0.2, temperature=0.1, label_noise_var=0.3)
    ds = kdmft.learning_curve(p, [0.0, np.inf])
    e = stationary_errors(p.eigenvalues, p.task_power, 70, 0.2, 0.1, 0.3)
    assert ds.bias.values[1] == e["bias"]
    assert ds.test_error.values[1] == pytest.approx(e["bias"] + e["noise_variance"] + e["thermal_variance"])
    assert ds.train_error.values[0] == pytest.approx(p.signal_power + 0.3)
