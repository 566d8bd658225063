"""Sweeps: grid and file contract, resume after interruption, serial == Dask, seeds, t* per point."""

from __future__ import annotations

import logging
import math
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import kdmft
from kdmft import sweep as sw
from kdmft.io import read_netcdf

TIMES = np.array([0.05, 0.3, 2.0, 12.0, 80.0])


def small_config(**kw) -> sw.SweepConfig:
    base = dict(problem={"modes": 40, "alpha": 0.5, "samples": [20, 40], "temperature": [0.05, 0.2],
                         "weight_decay": 0.0}, times=TIMES, serial=True)
    base.update(kw)
    return sw.SweepConfig(**base)


class Interrupt(Exception):
    pass


def counting(monkeypatch) -> list:
    calls: list = []
    real = sw.compute_point

    def wrapper(spec):
        calls.append(spec.problem)
        return real(spec)

    monkeypatch.setattr(sw, "compute_point", wrapper)
    return calls


def test_dimensions_variables_and_values():
    cfg = small_config(problem={"modes": 40, "alpha": 0.5, "samples": [20, 40], "temperature": 0.1,
                                "label_noise_var": [0.0, 0.2], "weight_decay": 0.01})
    ds = sw.run_sweep(cfg, cache=False)
    assert list(ds.test_error.dims) == ["samples", "label_noise_var", "time"]
    assert list(ds.t_opt.dims) == ["samples", "label_noise_var"]
    for k in ("test_error", "train_error", "bias", "noise_variance", "thermal_variance", "t_opt",
              "test_error_opt", "stopping_status"):
        assert k in ds
    assert ds.attrs["temperature"] == 0.1 and ds.attrs["kdmft_version"] == kdmft.__version__
    # every point equals the single-problem API
    for P in (20, 40):
        for s2 in (0.0, 0.2):
            p = kdmft.Problem.power_law(40, 0.5, P, temperature=0.1, weight_decay=0.01, label_noise_var=s2)
            ref = kdmft.learning_curve(p, TIMES)
            got = ds.sel(samples=P, label_noise_var=s2)
            np.testing.assert_allclose(got.test_error.values, ref.test_error.values, rtol=1e-12)
            np.testing.assert_allclose(got.thermal_variance.values, ref.thermal_variance.values, rtol=1e-12)


def test_t_opt_against_brute_force_and_no_optimum_is_nan():
    """t* of every point against a dense grid (0.2 % spacing); monotone curves give NaN + status."""
    cfg = small_config(problem={"modes": 60, "alpha": 0.5, "samples": 60, "temperature": [0.0, 0.05],
                                "weight_decay": 0.0}, times=np.logspace(-2, 3, 6))
    ds = sw.run_sweep(cfg, cache=False)
    grid = np.logspace(-2, 3, 2501)
    p = kdmft.Problem.power_law(60, 0.5, 60, temperature=0.05)
    curve = kdmft.learning_curve(p, grid).test_error.values
    i = int(np.argmin(curve))
    pt = ds.sel(temperature=0.05)
    assert int(pt.stopping_status) == 0
    assert float(pt.t_opt) == pytest.approx(grid[i], rel=0.005)
    assert float(pt.test_error_opt) <= curve[i] * (1 + 1e-12)
    # the same tolerance catches a wrong t*: the optimum of T = 0.1 is elsewhere
    other = kdmft.optimal_stopping(p.replace(temperature=0.1), t_min=1e-2, t_max=1e3)
    assert other.t_star != pytest.approx(grid[i], rel=0.005)
    # at t* the bias falls as fast as the variance grows, and B + V = E
    assert float(pt.bias_rate_opt) / float(pt.variance_rate_opt) == pytest.approx(1.0, abs=1e-3)
    assert float(pt.bias_opt + pt.variance_opt) == pytest.approx(float(pt.test_error_opt), rel=1e-9)
    gf = ds.sel(temperature=0.0)  # noiseless gradient flow keeps improving
    assert int(gf.stopping_status) == sw.STATUS_CODES["decreasing"]
    assert math.isnan(float(gf.t_opt)) and math.isnan(float(gf.test_error_opt))


def test_resume_computes_only_missing_points_and_gives_identical_results(tmp_path, monkeypatch):
    out = tmp_path / "s.nc"
    cfg = small_config(out=str(out))

    def stop_after_two(done, total):
        if done == 2:
            raise Interrupt

    calls = counting(monkeypatch)
    with pytest.raises(Interrupt):
        sw.run_sweep(cfg, progress=stop_after_two)
    assert not out.exists()  # no partial output file
    assert len(calls) == 2 and sw.cache_status(cfg) == (2, 4)
    calls.clear()
    resumed = sw.run_sweep(cfg)
    assert len(calls) == 2  # only the missing points
    fresh = sw.run_sweep(cfg, cache=False, write=False)
    xr.testing.assert_identical(resumed, fresh)
    xr.testing.assert_identical(read_netcdf(out), fresh)
    calls.clear()
    sw.run_sweep(cfg)
    assert calls == []  # everything cached
    # a changed setting never reuses a stale point
    assert sw.cache_status(small_config(out=str(out), times=TIMES * 2)) == (0, 4)
    assert sw.cache_status(small_config(out=str(out), simulate=True, realizations=8)) == (0, 4)


def test_point_seeds_do_not_depend_on_grid_order_or_neighbours():
    kw = dict(simulate=True, realizations=8, seed=5)
    a = sw.run_sweep(small_config(**kw), cache=False)
    b = sw.run_sweep(small_config(problem={"modes": 40, "alpha": 0.5, "samples": [40, 20],
                                           "temperature": [0.2, 0.05], "weight_decay": 0.0}, **kw), cache=False)
    for P in (20, 40):
        for T in (0.05, 0.2):
            xr.testing.assert_identical(a.sim_test_error.sel(samples=P, temperature=T),
                                        b.sim_test_error.sel(samples=P, temperature=T))
    # companion: the seed does matter (different base seed, different numbers)
    c = sw.run_sweep(small_config(problem={"modes": 40, "alpha": 0.5, "samples": 20, "temperature": [0.05],
                                           "weight_decay": 0.0}, simulate=True, realizations=8, seed=6), cache=False)
    assert not np.allclose(a.sim_test_error.sel(samples=20, temperature=[0.05]).values, c.sim_test_error.values)
    assert len(np.unique(a.seed.values)) == a.seed.size


def test_serial_equals_dask_bit_for_bit():
    from distributed import Client, LocalCluster

    cfg = small_config(simulate=True, realizations=8, seed=1)
    serial = sw.run_sweep(cfg, cache=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        parallel = sw.run_sweep(cfg, cache=False, client=client)
    xr.testing.assert_identical(serial, parallel)


def test_divergent_values_are_inf_with_a_note():
    cfg = small_config(problem={"modes": 40, "alpha": 0.5, "samples": [20, 60], "temperature": 0.1,
                                "weight_decay": 0.0}, times=np.array([1.0, 10.0, np.inf]))
    ds = sw.run_sweep(cfg, cache=False)
    assert np.isinf(ds.thermal_variance.sel(samples=20, time=np.inf))
    assert np.isfinite(ds.thermal_variance.sel(samples=60, time=np.inf))  # P > N: saturates
    assert "1 point(s)" in ds.attrs["divergence_note"] and "null space" in ds.attrs["divergence_note"]


def test_bad_input_is_typed():
    with pytest.raises(kdmft.InvalidParameterError, match="samples"):
        sw.run_sweep(small_config(problem={"modes": 40, "alpha": 0.5, "samples": [20, 0]}), cache=False)
    with pytest.raises(kdmft.InvalidParameterError, match="repeated"):
        sw.run_sweep(small_config(problem={"modes": 40, "alpha": 0.5, "samples": [20, 20]}), cache=False)
    with pytest.raises(kdmft.InvalidParameterError, match="--temperature"):
        sw.parse_list("0.1,,0.2", "temperature")
    assert sw.parse_list("inf,100", "teacher_modes") == [math.inf, 100.0]
    assert sw.parse_list("100", "samples") == 100


def test_stopping_window_defaults():
    """The t* window is the output times' span, or [1e-3, 1e6] when they span none; bad windows are typed."""
    assert small_config().stopping_window() == (0.05, 80.0)
    assert small_config(times=[1.0]).stopping_window() == (1e-3, 1e6)
    assert small_config(times=[0.0, math.inf]).stopping_window() == (1e-3, 1e6)
    assert small_config(times=[1.0], t_min=0.1).stopping_window() == (0.1, 1e6)
    with pytest.raises(kdmft.InvalidParameterError, match="stopping window"):
        small_config(t_min=5.0, t_max=2.0).stopping_window()
    ds = sw.run_sweep(small_config(times=[1.0]), cache=False)
    assert ds.sizes["time"] == 1 and np.all(ds.stopping_status.values == 0)


def test_toml_config(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[problem]\nmodes = 40\nalpha = 0.5\nsamples = [20, 40]\ntemperature = 0.1\n'
                 '[times]\nstart = 0.1\nstop = 10.0\nnum = 3\nwith_inf = true\n[sweep]\nserial = true\n')
    cfg = sw.SweepConfig.from_toml(f)
    assert cfg.serial and np.isinf(cfg.time_grid()[-1]) and cfg.time_grid().size == 4
    dims, coords, fixed = sw.grid_axes(cfg)
    assert dims == ["samples"] and fixed["weight_decay"] == 0.01  # unset fields: kdmft run defaults
    f.write_text('[problem]\nsamples = [20, 40]\nbogus = 1\n')
    with pytest.raises(kdmft.InvalidParameterError, match="bogus"):
        sw.SweepConfig.from_toml(f)


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "kdmft", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_cli_sweep_resume_and_analyze(tmp_path):
    args = ["sweep", "--modes", "40", "--alpha", "0.5", "--samples", "20,40", "--temperature", "0.1",
            "--times", "0.05,0.3,2,12,80", "--out", "r.nc", "--serial"]
    r = cli(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ds = read_netcdf(tmp_path / "r.nc")
    assert list(ds.test_error.dims) == ["samples", "time"]
    xr.testing.assert_identical(ds, sw.run_sweep(small_config(problem={
        "modes": 40, "alpha": 0.5, "samples": [20, 40], "temperature": 0.1,
        "weight_decay": 0.0}), cache=False).assign_attrs(ds.attrs))
    r = cli(*args, cwd=tmp_path)
    assert r.returncode == 0 and "2 of 2 points cached" in r.stderr
    r = cli("analyze", "r.nc", "--out-dir", "rep", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "rep" / "report.md").is_file() and (tmp_path / "rep" / "claim_i_optimum.png").is_file()
    # bad input: one line, exit 2, no file
    r = cli("sweep", "--modes", "40", "--alpha", "0.5", "--samples", "20,x", "--times", "1", "--out", "bad.nc",
            cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().startswith("error: --samples") and len(r.stderr.splitlines()) == 1
    assert not (tmp_path / "bad.nc").exists()
