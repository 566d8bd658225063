"""CLI contract of the time-domain solver: same JSON keys as Laplace, 1e-2 agreement, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from typer.testing import CliRunner

from kdmft.cli import app

BASE = ["--modes", "100", "--alpha", "0.5", "--samples", "100", "--weight-decay", "0.1",
        "--temperature", "0.05", "--label-noise-var", "0.1"]
TIMES = "0.1,0.5,1,3,10"


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "kdmft", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_time_domain_json_matches_laplace_keys_and_values():
    td = cli("theory", *BASE, "--times", TIMES, "--format", "json", "--solver", "time-domain", "--dt", "0.01")
    lp = cli("theory", *BASE, "--times", TIMES, "--format", "json", "--solver", "laplace")
    assert td.returncode == 0 and lp.returncode == 0, td.stderr + lp.stderr
    a, b = json.loads(td.stdout), json.loads(lp.stdout)
    assert list(a) == list(b)
    for k in list(a)[1:]:
        x, y = np.array(a[k], dtype=float), np.array(b[k], dtype=float)
        mask = y > 0
        assert np.all(np.abs(x[mask] / y[mask] - 1) < 1e-2), k
        assert np.all(x[~mask] == 0)


def run_inproc(*args):
    """In-process run (fast); returns (exit code, stdout, stderr)."""
    try:
        r = CliRunner(mix_stderr=False).invoke(app, list(args))
    except TypeError:  # newer click: stderr is always separate
        r = CliRunner().invoke(app, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_bad_dt_and_schedule_are_one_line_errors():
    for extra in (["--solver", "time-domain", "--dt", "0"],
                  ["--solver", "time-domain", "--dt", "1e-6"],
                  ["--solver", "laplace", "--dt", "0.01"],
                  ["--temperature-schedule", "exponential"],                            # rate missing
                  ["--weight-decay", "0", "--weight-decay-schedule", "exponential:rate=1"],   # factor on g = 0
                  ["--solver", "time-domain", "--temperature-schedule", "exponential:rate=-1"],
                  ["--solver", "time-domain", "--lr-schedule", "step:at=1,values=1/0"],   # η(0) = 0
                  ["--solver", "time-domain", "--lr-schedule", "wobble"]):
        code, out, err = run_inproc("theory", *BASE, "--times", "1", *extra)
        assert code == 2, (extra, err)
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
        assert out == ""


def test_schedule_flag_changes_the_curve():
    """Temperature annealing lowers the thermal variance at late times; constant factor 1 changes nothing."""
    args = ["theory", "--modes", "40", "--alpha", "0.5", "--samples", "40", "--temperature", "0.1",
            "--times", "1,5", "--format", "json", "--solver", "time-domain", "--dt", "0.02"]
    plain = json.loads(run_inproc(*args)[1])
    one = json.loads(run_inproc(*args, "--temperature-schedule", "constant:value=1")[1])
    ann = json.loads(run_inproc(*args, "--temperature-schedule", "exponential:rate=1")[1])
    np.testing.assert_allclose(one["thermal_variance"], plain["thermal_variance"], rtol=1e-6)
    assert ann["thermal_variance"][1] < 0.5 * plain["thermal_variance"][1]


def test_run_with_schedule_config(tmp_path):
    """kdmft run: [theory] solver/dt and a [schedule] table give the scheduled theory beside the
    scheduled exact simulation; --solver laplace with a schedule is a one-line error, no file."""
    from kdmft.io import read_netcdf

    cfg = tmp_path / "anneal.toml"
    cfg.write_text("[problem]\nmodes = 30\nalpha = 0.5\nsamples = 30\nweight_decay = 0.1\ntemperature = 0.1\n"
                   "[times]\nvalues = [0.5, 2.0]\n[simulation]\nrealizations = 32\n"
                   "[theory]\nsolver = \"time-domain\"\ndt = 0.02\n"
                   "[schedule.temperature]\nshape = \"exponential\"\nrate = 0.5\n")
    code, out, err = run_inproc("run", str(cfg), "-o", str(tmp_path / "out"), "--no-plot")
    assert code == 0, err
    ds = read_netcdf(tmp_path / "out" / "kdmft_run.nc")
    assert ds.attrs["method"] == "time-domain" and "exponential" in ds.attrs["schedule"]
    assert np.all(np.abs(ds.test_error.values / ds.sim_test_error.values - 1) < 0.05)
    code, out, err = run_inproc("run", str(cfg), "-o", str(tmp_path / "out2"), "--no-plot", "--solver", "laplace")
    assert code == 2 and err.startswith("error: ") and not (tmp_path / "out2").exists()


def test_graded_grid_json_matches_laplace_and_bad_grid_flags():
    """--grid graded answers with the Laplace keys and values (constant protocol, to 1e-6);
    a bad grid name and --dt with --grid graded are one-line exit-2 errors."""
    gr = cli("theory", *BASE, "--times", TIMES + ",1000,100000", "--format", "json", "--solver", "time-domain",
             "--grid", "graded")
    lp = cli("theory", *BASE, "--times", TIMES + ",1000,100000", "--format", "json")
    assert gr.returncode == 0 and lp.returncode == 0, gr.stderr + lp.stderr
    a, b = json.loads(gr.stdout), json.loads(lp.stdout)
    assert list(a) == list(b)
    for k in list(a)[1:]:
        np.testing.assert_allclose(np.array(a[k], dtype=float), np.array(b[k], dtype=float), rtol=1e-6, atol=1e-12)
    for extra in (["--solver", "time-domain", "--grid", "bogus"],
                  ["--solver", "time-domain", "--grid", "graded", "--dt", "0.01"],
                  ["--solver", "laplace", "--grid", "graded"]):
        code, out, err = run_inproc("theory", *BASE, "--times", "1", *extra)
        assert code == 2 and out == "", (extra, err)
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    # Without --solver, --grid (or --dt, or a schedule) selects the time-domain solver.
    code, out, err = run_inproc("theory", *BASE, "--times", "1,100000", "--grid", "graded", "--format", "json")
    assert code == 0, err
    ref = run_inproc("theory", *BASE, "--times", "1,100000", "--format", "json")[1]
    np.testing.assert_allclose(json.loads(out)["test_error"], json.loads(ref)["test_error"], rtol=1e-6)


def test_run_long_horizon_on_graded_grid(tmp_path):
    """kdmft run with [theory] grid = "graded" and a schedule to t = 1e4 (beyond the uniform grid):
    theory beside the exact scheduled simulation, grid recorded in the results file."""
    from kdmft.io import read_netcdf

    cfg = tmp_path / "long.toml"
    cfg.write_text("[problem]\nmodes = 30\nalpha = 0.5\nsamples = 60\nweight_decay = 0.01\ntemperature = 0.1\n"
                   "[times]\nvalues = [1.0, 100.0, 10000.0]\n[simulation]\nrealizations = 64\n"
                   "[theory]\nsolver = \"time-domain\"\ngrid = \"graded\"\n"
                   "[schedule.temperature]\nshape = \"exponential\"\nrate = 0.01\nfloor = 0.05\n")
    code, out, err = run_inproc("run", str(cfg), "-o", str(tmp_path / "out"), "--no-plot")
    assert code == 0, err
    ds = read_netcdf(tmp_path / "out" / "kdmft_run.nc")
    assert ds.attrs["grid"] == "graded" and '"grid": "graded"' in ds.attrs["config_json"]
    dev = np.abs(ds.test_error.values - ds.sim_test_error.values)
    assert np.all(dev < 2 / 30 * ds.sim_test_error.values + 4 * ds.sim_test_error_se.values)   # finite size
    code, out, err = run_inproc("run", str(cfg), "-o", str(tmp_path / "out2"), "--no-plot", "--grid", "uniform")
    assert code == 2 and "dt" in err and not (tmp_path / "out2").exists()
