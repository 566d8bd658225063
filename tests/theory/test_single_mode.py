"""Effective single-mode processes: the mode sum reproduces E(t), the distribution of w_k(t)
matches exact microscopic samples (mean, variance, two-time covariance, Gaussian shape), and
each check is shown to fail on a wrong parameter."""

from __future__ import annotations

import functools
import json
import math
import subprocess
import sys

import numpy as np
import pytest

import kdmft
from kdmft.errors import InvalidParameterError
from kdmft.io import read_netcdf
from kdmft.schedules import Schedule, parse_shape
from kdmft.simulate import simulate_modes
from kdmft.theory.single_mode import compare_modes, mode_process, sample_modes

TIMES = [0.5, 2.0, 4.0]
MODES = [1, 4, 16]


def _problem(P=60, N=60):
    return kdmft.Problem.power_law(N, 0.5, P, weight_decay=0.1, temperature=0.1, label_noise_var=0.2)


@functools.cache
def _simulation():
    return simulate_modes(_problem(), MODES, TIMES, realizations=2000, seed=3)


def _mode_sum(p: kdmft.Problem, proc) -> np.ndarray:
    """Σ_k λ_k [v_k a_k² + c_k(t,t)]: E(t) for the teacher w̄_k² = v_k."""
    a = 1.0 - proc.mean_factor.values
    lam, v = p.eigenvalues, p.task_power
    return np.sum(lam[:, None] * (v[:, None] * a**2 + proc.variance.values), axis=0)


def test_mode_sum_is_the_test_error():
    """Summed over all modes the single-mode processes give the Laplace E(t) (to the dt² error)."""
    p = kdmft.Problem.power_law(40, 0.5, 30, weight_decay=0.05, temperature=0.05, label_noise_var=0.1,
                                task_exponent=0.5)
    proc = mode_process(p, np.arange(1, 41), TIMES, dt=0.02)
    ref = kdmft.learning_curve(p, TIMES).test_error.values
    assert np.max(np.abs(_mode_sum(p, proc) / ref - 1)) < 2e-3
    # Companion: the same measure rejects the process of P = 36 instead of 30.
    wrong = mode_process(kdmft.Problem.power_law(40, 0.5, 36, weight_decay=0.05, temperature=0.05,
                                                 label_noise_var=0.1, task_exponent=0.5),
                         np.arange(1, 41), TIMES, dt=0.02)
    assert np.max(np.abs(_mode_sum(p, wrong) / ref - 1)) > 1e-2


def test_mode_sum_with_schedule_matches_scheduled_theory():
    """Under an annealing schedule the mode sum equals the scheduled time-domain E(t)."""
    p = kdmft.Problem.power_law(30, 0.5, 40, weight_decay=0.05, temperature=0.2, label_noise_var=0.1)
    sched = Schedule(temperature=parse_shape("exponential:rate=0.5", "t"))
    proc = mode_process(p, np.arange(1, 31), TIMES, dt=0.02, schedule=sched)
    ref = kdmft.learning_curve(p, TIMES, method="time-domain", dt=0.02, schedule=sched).test_error.values
    assert np.max(np.abs(_mode_sum(p, proc) / ref - 1)) < 1e-3
    const = kdmft.learning_curve(p, TIMES).test_error.values
    assert np.max(np.abs(_mode_sum(p, proc) / const - 1)) > 2e-2   # the schedule matters


def _within(theory, sample, se, rel):
    return np.abs(theory - sample) <= 4.0 * se + rel * np.abs(theory)


def test_distribution_matches_simulation():
    """Mean, variance and Gaussian shape of w_k(t) at N = P = 60 (finite-size budget 3/N)."""
    c = compare_modes(mode_process(_problem(), MODES, TIMES, dt=0.02), _simulation())
    rel = 3.0 / 60
    assert np.all(_within(c.theory_mean.values, c.sample_mean.values, c.sample_mean_se.values, rel))
    assert np.all(_within(c.theory_variance.values, c.sample_variance.values, c.sample_variance_se.values, rel))
    assert np.all(c.ks_pvalue.values > 1e-3)


def test_distribution_check_fails_for_wrong_samples():
    """Companion: the theory of P = 45 (data 60) fails the same tolerances."""
    c = compare_modes(mode_process(_problem(P=45), MODES, TIMES, dt=0.02), _simulation())
    rel = 3.0 / 60
    ok_mean = _within(c.theory_mean.values, c.sample_mean.values, c.sample_mean_se.values, rel)
    ok_var = _within(c.theory_variance.values, c.sample_variance.values, c.sample_variance_se.values, rel)
    assert not (np.all(ok_mean) and np.all(ok_var))


def test_two_time_covariance_matches_simulation():
    """Cov[w_k(t), w_k(s)] between the first and last time, against the simulated residuals."""
    proc = mode_process(_problem(), MODES, TIMES, dt=0.02)
    sim = _simulation()
    resid = sim.amplitude.values - sim.teacher.values[:, :, None] * proc.mean_factor.values[None]
    R = resid.shape[0]
    for i in range(len(MODES)):
        x, y = resid[:, i, 0], resid[:, i, -1]
        cov = np.cov(x, y)
        se = math.sqrt((cov[0, 0] * cov[1, 1] + cov[0, 1] ** 2) / R)
        th = float(proc.covariance.values[i, 0, -1])
        assert abs(th - cov[0, 1]) <= 4 * se + 0.05 * abs(th), (MODES[i], th, cov[0, 1], se)
        assert th > 8 * se   # correlated: the check is not trivially passed by zero


def test_random_teacher_simulation_reproduces_the_test_error():
    """All modes with w̄ ~ N(0, diag v): mean of Σ λ_k (w_k - w̄_k)² equals kdmft.simulate (same X)."""
    p = kdmft.Problem.power_law(20, 0.5, 30, weight_decay=0.05, temperature=0.1, label_noise_var=0.2)
    t = [0.3, 3.0]
    sim = simulate_modes(p, np.arange(1, 21), t, realizations=1500, seed=5, teacher="random")
    err = np.sum(p.eigenvalues[None, :, None] * (sim.amplitude.values - sim.teacher.values[..., None]) ** 2,
                 axis=1)
    mean, se = err.mean(axis=0), err.std(axis=0, ddof=1) / math.sqrt(err.shape[0])
    ref = kdmft.simulate(p, t, realizations=1500, seed=5).test_error.values
    assert np.all(np.abs(mean - ref) < 4 * se)
    wrong = kdmft.simulate(kdmft.Problem.power_law(20, 0.5, 24, weight_decay=0.05, temperature=0.1,
                                                   label_noise_var=0.2), t, realizations=1500, seed=5)
    assert np.any(np.abs(mean - wrong.test_error.values) > 4 * se)


def test_dmft_samples_have_the_process_covariance():
    proc = mode_process(_problem(), MODES, TIMES, dt=0.02)
    s = sample_modes(proc, 20000, seed=1)
    c = compare_modes(proc, s)
    assert np.allclose(c.sample_variance.values, c.theory_variance.values, rtol=0.05)
    assert np.all(c.ks_pvalue.values > 1e-3)
    emp = np.cov(s.amplitude.values[:, 2, :].T)
    assert np.allclose(emp, proc.covariance.values[2], rtol=0.06, atol=0.01 * emp.max())


def test_time_zero_and_seed_reproducibility():
    proc = mode_process(_problem(), [2], [0.0, 1.0], dt=0.02)
    assert proc.mean_factor.values[0, 0] == 0.0 and proc.variance.values[0, 0] == 0.0
    a = simulate_modes(_problem(), [2], [0.0, 1.0], realizations=40, seed=7)
    b = simulate_modes(_problem(), [2], [0.0, 1.0], realizations=40, seed=7)
    assert np.all(a.amplitude.values[:, :, 0] == 0.0)
    assert np.array_equal(a.amplitude.values, b.amplitude.values)
    assert a.attrs["seed"] == 7 and "kdmft_version" in a.attrs


@pytest.mark.parametrize("kwargs, name", [
    ({"modes": [0]}, "modes"), ({"modes": [61]}, "modes"), ({"modes": [1, 1]}, "modes"),
    ({"modes": [1.5]}, "modes"), ({"times": [1.0, np.inf]}, "times"), ({"times": [-1.0]}, "times"),
    ({"dt": 0.0}, "dt"), ({"dt": 1e-4}, "dt")])
def test_bad_input(kwargs, name):
    args = {"modes": [1], "times": [1.0], "dt": 0.02, **kwargs}
    with pytest.raises(InvalidParameterError, match=name):
        mode_process(_problem(), args["modes"], args["times"], dt=args["dt"])


def test_bad_teacher():
    with pytest.raises(InvalidParameterError, match="teacher"):
        simulate_modes(_problem(), [1], [1.0], realizations=4, teacher=np.ones(3))
    with pytest.raises(InvalidParameterError, match="teacher"):
        simulate_modes(_problem(), [1], [1.0], realizations=4, teacher="typical")


def test_cli_modes_json_and_errors(tmp_path):
    base = [sys.executable, "-m", "kdmft", "modes", "--modes", "30", "--alpha", "0.5", "--samples", "40",
            "--temperature", "0.1", "--weight-decay", "0.1"]
    r = subprocess.run(base + ["--times", "0.5,2", "--mode-index", "1,3", "--dt", "0.02", "--realizations", "200",
                               "--format", "json", "--out", str(tmp_path / "m.nc"), "--plot", str(tmp_path / "m.png")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["modes"] == [1, 3] and d["times"] == [0.5, 2.0]
    proc = mode_process(kdmft.Problem.power_law(30, 0.5, 40, weight_decay=0.1, temperature=0.1), [1, 3],
                        [0.5, 2.0], dt=0.02)
    assert np.allclose(d["theory_variance"], proc.variance.values, rtol=1e-12)
    ds = read_netcdf(tmp_path / "m.nc")
    assert ds.attrs["seed"] == 0 and "kdmft_version" in ds.attrs and "covariance" in ds
    assert (tmp_path / "m.png").stat().st_size > 0
    r = subprocess.run(base + ["--times", "1", "--mode-index", "31", "--out", str(tmp_path / "bad.nc")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--mode-index" in r.stderr
    assert not (tmp_path / "bad.nc").exists()


def test_unresolved_stiff_modes_raise_and_tiny_dt_is_refused():
    """Pλ_1 dt = 1000: the variance of mode 1 was 9x too small with exit 0; now ConvergenceError."""
    p = kdmft.Problem.power_law(10, 0.5, 200, lambda1=500.0, temperature=0.1)
    with pytest.raises(kdmft.ConvergenceError, match="mode 1"):
        mode_process(p, [1, 5, 10], [0.1, 1.0], dt=0.01)
    with pytest.raises(InvalidParameterError, match="dt"):
        mode_process(p, [1], [1.0], dt=1e-20)
    with pytest.raises(InvalidParameterError, match="dt"):
        mode_process(p, [1], [0.05, 1.0], dt=0.01)      # fewer than 8 steps before t = 0.05


def test_cli_modes_output_paths_are_checked_first(tmp_path):
    base = [sys.executable, "-m", "kdmft", "modes", "--modes", "20", "--alpha", "0.5", "--samples", "20",
            "--temperature", "0.1", "--times", "1", "--mode-index", "1", "--dt", "0.02", "--realizations", "20"]
    (tmp_path / "adir").mkdir()
    for extra, flag in ((["--out", str(tmp_path / "adir")], "--out"),
                        (["--out", str(tmp_path / "ok.nc"), "--plot", str(tmp_path / "adir")], "--plot"),
                        (["--out", str(tmp_path / "ok.nc"), "--plot", str(tmp_path / "ok.nc")], "--plot")):
        r = subprocess.run(base + extra, capture_output=True, text=True, timeout=300)
        assert r.returncode == 2 and flag in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert not (tmp_path / "ok.nc").exists()
