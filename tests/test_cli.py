"""The command-line contract: JSON keys, exit codes, one-line errors, files, no partial output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kdmft
from kdmft.io import read_netcdf

BASE = ["--modes", "100", "--alpha", "0.5", "--samples", "100"]


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "kdmft", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_theory_json_contract():
    r = cli("theory", *BASE, "--weight-decay", "0.1", "--temperature", "0.05", "--label-noise-var", "0.1",
            "--times", "0,1,10,inf", "--format", "json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert list(d) == ["times", "test_error", "train_error", "bias", "noise_variance", "thermal_variance"]
    p = kdmft.Problem.power_law(100, 0.5, 100, weight_decay=0.1, temperature=0.05, label_noise_var=0.1)
    ds = kdmft.learning_curve(p, [0, 1, 10, np.inf])
    for k in list(d)[1:]:
        np.testing.assert_allclose(d[k], ds[k].values, rtol=1e-12)
    assert d["times"][:3] == [0.0, 1.0, 10.0]


def test_theory_divergence_is_null_with_reason():
    r = cli("theory", "--modes", "50", "--alpha", "1", "--samples", "30", "--temperature", "0.1",
            "--times", "1,inf", "--format", "json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["thermal_variance"][1] is None and d["test_error"][1] is None
    assert d["train_error"][1] is not None
    assert "null space" in r.stderr


def test_simulate_json_contract():
    r = cli("simulate", *BASE, "--temperature", "0.1", "--times", "0.5,5", "--realizations", "64",
            "--seed", "3", "--format", "json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    for k in ("test_error", "train_error", "bias", "noise_variance", "thermal_variance"):
        assert len(d[k]) == 2 and len(d[k + "_se"]) == 2
    p = kdmft.Problem.power_law(100, 0.5, 100, temperature=0.1)
    ds = kdmft.simulate(p, [0.5, 5.0], 64, seed=3)
    np.testing.assert_allclose(d["test_error"], ds.test_error.values, rtol=1e-12)


def test_spectrum_and_task_files(tmp_path):
    lam = np.arange(1, 31) ** -2.0
    np.save(tmp_path / "lam.npy", lam)
    np.savetxt(tmp_path / "v.csv", np.arange(1, 31) ** -0.5, delimiter=",")
    r = cli("theory", "--spectrum-file", str(tmp_path / "lam.npy"), "--task-file", str(tmp_path / "v.csv"),
            "--samples", "20", "--times", "2", "--format", "json")
    assert r.returncode == 0, r.stderr
    p = kdmft.Problem(lam, np.arange(1, 31) ** -0.5, 20)
    assert json.loads(r.stdout)["test_error"][0] == pytest.approx(kdmft.learning_curve(p, [2.0]).test_error[0])


@pytest.mark.parametrize("args, name", [
    (["--modes", "0", "--alpha", "0.5", "--samples", "10"], "modes"),
    (["--modes", "abc", "--alpha", "0.5", "--samples", "10"], "--modes"),
    (["--modes", "10", "--alpha", "-1", "--samples", "10"], "alpha"),
    (["--modes", "10", "--alpha", "0.5", "--samples", "0"], "samples"),
    (["--modes", "10", "--alpha", "0.5", "--samples", "10", "--weight-decay", "-1"], "weight_decay"),
    (["--modes", "10", "--alpha", "0.5", "--samples", "10", "--temperature", "nan"], "temperature"),
    (["--modes", "10", "--alpha", "0.5", "--samples", "10", "--label-noise-var", "-0.1"], "label_noise_var"),
    (["--modes", "10", "--alpha", "0.5", "--samples", "10", "--format", "xml"], "--format"),
    (["--modes", "10", "--alpha", "0.5"], "--samples"),
    (["--alpha", "0.5", "--samples", "10"], "--modes"),
])
def test_bad_input_one_line_exit_2(args, name):
    r = cli("theory", *args, "--times", "1")
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and "Traceback" not in r.stderr


@pytest.mark.parametrize("times", ["-1", "1,nan", "1,-inf", "a", "1,,2"])
def test_bad_times(times):
    r = cli("theory", *BASE, "--times", times)
    assert r.returncode == 2 and "--times" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("content, name", [
    ("", "spectrum_file"), ("1\n2\nnan\n", "spectrum_file"), ("1\n-2\n", "spectrum_file"),
    ("1,2\n3,4\n", "spectrum_file"),
])
def test_bad_spectrum_files(tmp_path, content, name):
    f = tmp_path / "s.csv"
    f.write_text(content)
    r = cli("theory", "--spectrum-file", str(f), "--samples", "3", "--times", "1")
    assert r.returncode == 2 and name in r.stderr and "Traceback" not in r.stderr


def test_mismatched_task_file(tmp_path):
    np.savetxt(tmp_path / "s.txt", [1.0, 0.5, 0.2])
    np.savetxt(tmp_path / "v.txt", [1.0, 0.5])
    r = cli("theory", "--spectrum-file", str(tmp_path / "s.txt"), "--task-file", str(tmp_path / "v.txt"),
            "--samples", "3", "--times", "1")
    assert r.returncode == 2 and "task_file" in r.stderr


def test_simulate_bad_realizations():
    r = cli("simulate", *BASE, "--times", "1", "--realizations", "1")
    assert r.returncode == 2 and "realizations" in r.stderr


def test_run_writes_results_and_figure(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[problem]\nmodes = 60\nsamples = 60\n[times]\nstart = 0.1\nstop = 100.0\nnum = 9\n"
                   "[simulation]\nrealizations = 64\nseed = 5\n")
    r = cli("run", str(cfg), "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert "optimal stopping" in r.stdout
    ds = read_netcdf(tmp_path / "out" / "kdmft_run.nc")
    assert (tmp_path / "out" / "kdmft_run.png").stat().st_size > 10_000
    assert ds.attrs["seed"] == 5 and ds.attrs["realizations"] == 64
    assert ds.attrs["kdmft_version"] == kdmft.__version__
    used = json.loads(ds.attrs["config_json"])["problem"]
    # the config as run: unset keys carry the built-in values actually used
    assert used["modes"] == 60 and used["alpha"] == 0.5 and used["weight_decay"] == 0.01
    assert used["temperature"] == 0.05 and used["task_exponent"] == 0.0
    assert {"test_error", "sim_test_error", "sim_test_error_se", "bias", "thermal_variance"} <= set(ds.data_vars)
    assert np.isinf(ds.time.values[-1]) and ds.sizes["time"] == 10
    assert 0.1 < ds.attrs["t_star"] < 100


def test_run_bad_config_leaves_no_file(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[problem]\nalpha = -1\n")
    r = cli("run", str(cfg), "-o", str(tmp_path / "out"))
    assert r.returncode == 2 and "alpha" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    r = cli("run", str(tmp_path / "missing.toml"))
    assert r.returncode == 2 and "config" in r.stderr
    (tmp_path / "broken.toml").write_text("[problem\n")
    r = cli("run", str(tmp_path / "broken.toml"))
    assert r.returncode == 2 and "TOML" in r.stderr


def test_run_unknown_dataset():
    r = cli("run", "--dataset", "mnist", "--no-plot")
    assert r.returncode == 2 and "dataset" in r.stderr and "digits" in r.stderr


def test_run_digits(tmp_path):
    cfg = tmp_path / "d.toml"
    cfg.write_text("[problem]\nsamples = 80\n[times]\nstart = 0.1\nstop = 1000.0\nnum = 7\n"
                   "[dataset]\nsubsets = 8\n")
    r = cli("run", str(cfg), "--dataset", "digits", "-o", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "agreement" in r.stdout
    ds = read_netcdf(tmp_path / "kdmft_run_digits.nc")
    assert ds.attrs["dataset"] == "digits" and ds.attrs["samples"] == 80 and ds.attrs["subsets"] == 8
    dev = ds.relative_deviation.values
    assert np.all(np.isfinite(dev)) and np.median(np.abs(dev)) < 0.25
    assert (tmp_path / "kdmft_run_digits.png").exists()
    used = json.loads(ds.attrs["config_json"])["problem"]
    assert used["weight_decay"] == ds.attrs["weight_decay"] == 1e-3 and used["temperature"] == 1e-4


def test_run_dataset_with_spectrum_keys_fails_before_loading(tmp_path):
    r = cli("run", "examples/default.toml", "--dataset", "digits", "-o", str(tmp_path / "o"),
            cwd=str(Path(__file__).resolve().parents[1]))
    assert r.returncode == 2 and "problem.modes" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, name", [
    (["run", "--no-plot", "-o", "{file}"], "--output-dir"),
    (["sweep", *BASE[:4], "--samples", "10", "--times", "1,10", "--serial", "--out", "{file}/x.nc"], "cache"),
    (["sweep", *BASE[:4], "--samples", "10", "--times", "1,10", "--scheduler", "bogus"], "--scheduler"),
    (["analyze", "{file}"], "results file"),
    (["spectrum", "--dataset", "iris", "--kernel", "linear", "--out-dir", "{file}"], "output directory"),
    (["spectrum", "--dataset", "iris", "--seed", "-1"], "--seed"),
    (["compare", "--dataset", "iris", "--samples", "20", "--times", "1", "-o", "{file}"], "--out-dir"),
])
def test_unusable_outputs_and_bad_addresses_exit_2(tmp_path, args, name):
    """An output path under a plain file, a garbage results file, a bad address: one line, exit 2."""
    f = tmp_path / "plain.txt"
    f.write_text("not a directory, not netCDF\n")
    r = cli(*[a.replace("{file}", str(f)) for a in args], cwd=str(tmp_path))
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and name in lines[0] and "Traceback" not in r.stderr
