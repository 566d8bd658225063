"""Optimal stopping against brute force."""

from __future__ import annotations

import numpy as np
import pytest

import kdmft


@pytest.mark.parametrize("P, g, T, s2", [(100, 0.01, 0.05, 0.0), (60, 0.0, 0.02, 0.3), (200, 0.01, 0.1, 0.2)])
def test_optimal_stopping_matches_dense_grid(P, g, T, s2):
    p = kdmft.Problem.power_law(100, 0.5, P, weight_decay=g, temperature=T, label_noise_var=s2)
    res = kdmft.optimal_stopping(p, t_min=1e-2, t_max=1e4)
    assert res.status == "interior" and res.has_optimum
    grid = np.logspace(-2, 4, 3001)  # spacing 0.46 % in t
    curve = kdmft.learning_curve(p, grid).test_error.values
    i = int(np.argmin(curve))
    assert res.t_star == pytest.approx(grid[i], rel=0.01)
    assert res.test_error <= curve[i] * (1 + 1e-12)
    assert res.test_error == pytest.approx(curve[i], rel=1e-5)


@pytest.mark.parametrize("P, g, T", [(100, 0.0, 0.0), (200, 0.1, 0.1)], ids=["gradient-flow", "plateau"])
def test_monotone_curves_have_no_optimum(P, g, T):
    """Noiseless gradient flow keeps improving; with strong decay the curve saturates on a plateau
    whose last digits wiggle at the solver's accuracy: neither has an early-stopping optimum."""
    p = kdmft.Problem.power_law(100, 0.5, P, weight_decay=g, temperature=T)
    res = kdmft.optimal_stopping(p, t_min=1e-2, t_max=1e4)
    assert res.status == "decreasing" and not res.has_optimum and res.t_star == pytest.approx(1e4)


def test_bad_window():
    with pytest.raises(kdmft.InvalidParameterError, match="t_min"):
        kdmft.optimal_stopping(kdmft.Problem.power_law(10, 0.5, 10), t_min=5.0, t_max=1.0)


def test_power_law_fit_recovers_exponent_and_detects_window():
    """A pure power law on [1e1, 1e4] bent by a plateau below and a crossover above: the automatic
    window finds the straight part and the slope; a wrong exponent lies outside the interval."""
    rng = np.random.default_rng(3)
    x = np.logspace(-1, 6, 141)
    y = 2.0 * x**-0.6 * (1 + 10 / x) * (1 + x / 1e5) ** 0.6 * np.exp(0.01 * rng.standard_normal(x.size))
    fit = kdmft.fit_power_law(x, y, max_rms=0.02)
    assert fit.slope_ci[0] < -0.6 < fit.slope_ci[1]
    assert not (fit.slope_ci[0] < -0.5 < fit.slope_ci[1])
    assert fit.window[0] >= 10 and fit.window[1] <= 1.5e5 and np.log10(fit.window[1] / fit.window[0]) >= 1.5
    # over the whole range the curvature biases the slope away from -0.6
    whole = kdmft.fit_power_law(x, y, window=(x[0], x[-1]))
    assert abs(whole.slope + 0.6) > 0.05
    assert fit.predict(1e3) == pytest.approx(2.0 * 1e3**-0.6 * 1.01 * 1.01, rel=0.05)


def test_power_law_fit_bad_input():
    with pytest.raises(kdmft.InvalidParameterError, match="x, y"):
        kdmft.fit_power_law([1, 2], [1, 2])
    with pytest.raises(kdmft.InvalidParameterError, match="window"):
        kdmft.fit_power_law(np.arange(1, 10), np.arange(1, 10), window=(5, 1))


def test_stopping_window_of_output_times():
    from kdmft.analysis import DEFAULT_WINDOW, stopping_window

    assert stopping_window([0.0, 0.5, 3.0, np.inf]) == (0.5, 3.0)
    assert stopping_window([1.0]) == DEFAULT_WINDOW and stopping_window([0.0, np.inf]) == DEFAULT_WINDOW
    assert stopping_window([1.0, 1.0], t_max=10.0) == (DEFAULT_WINDOW[0], 10.0)
    with pytest.raises(kdmft.InvalidParameterError, match="stopping window"):
        stopping_window([1.0, 2.0], t_min=3.0)
