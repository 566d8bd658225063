"""CLI contract of ``kdmft spectrum`` and ``kdmft compare`` (in-process through typer's runner,
plus one subprocess call of the real entry point).

References are independent of the printed numbers: the trace of the kernel (Σ λ_k = tr K / n),
Parseval (Σ λ_k v_k = Σ_c mean(y_c²)), the closed forms of the bundled targets, and the theory
curve recomputed from the saved files by ``kdmft theory``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

import kdmft
from kdmft.cli import app
from kdmft.io import read_netcdf
from kdmft.kernels import kernel_matrix
from kdmft.realdata import load_real_data


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


KERNEL_CASES = [("relu-nngp", 1), ("relu-nngp", 3), ("relu-ntk", 2), ("erf-nngp", 1), ("rbf", None),
                ("linear", None), ("polynomial", None)]


@pytest.mark.parametrize(("kernel", "depth"), KERNEL_CASES, ids=lambda x: str(x))
def test_spectrum_json_contract(kernel, depth):
    args = ["spectrum", "--dataset", "wine", "--kernel", kernel, "--format", "json"]
    if depth is not None:
        args += ["--depth", depth]
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert list(d)[:4] == ["eigenvalues", "task_power", "alpha_fit", "alpha_ci"]
    lam, v = np.array(d["eigenvalues"]), np.array(d["task_power"])
    assert lam.shape == v.shape and np.all(np.diff(lam) <= 0) and np.all(lam > 0) and np.all(v >= 0)
    rd = load_real_data("wine")
    K = kernel_matrix(rd.X, kernel, depth)
    n = K.shape[0]
    # Σ λ_k = tr K / n up to the numerically null modes dropped
    assert np.sum(lam) == pytest.approx(np.trace(K) / n, rel=1e-8)
    # Parseval: resolved target power + tail = Σ_c p_c (1 - p_c) of the one-hot wine classes
    from sklearn.datasets import load_wine

    p = np.bincount(load_wine().target) / n
    total = float(np.sum(p * (1 - p)))
    assert np.sum(lam * v) + d["tail_power"] == pytest.approx(total, rel=1e-10)
    assert d["total_power"] == pytest.approx(total, rel=1e-10)
    lo, hi = d["alpha_ci"]
    assert lo <= d["alpha_fit"] <= hi
    assert d["kernel"] == kernel and d["points"] == n == 178 and d["outputs"] == 3
    assert 1 <= d["fit_window"][0] < d["fit_window"][1] <= lam.size
    assert 0 <= d["resolved_modes"] <= n // 2


def test_spectrum_out_dir_round_trip_through_theory(tmp_path):
    """Files written by `kdmft spectrum --out-dir` feed `kdmft theory --spectrum-file/--task-file`."""
    out = tmp_path / "spec"
    r = invoke("spectrum", "--dataset", "iris", "--kernel", "relu-ntk", "--depth", "2", "--target-class", "1",
               "--out-dir", out)
    assert r.exit_code == 0, r.output
    assert "α =" in r.stdout and "resolved" in r.stdout
    for name in ("eigenvalues.txt", "task_power.txt", "spectrum.json", "spectrum.png"):
        assert (out / name).is_file(), name
    rep = json.loads((out / "spectrum.json").read_text())
    assert rep["outputs"] == 1 and rep["target_class"] == 1 and rep["depth"] == 2
    # the text files hold the full-precision spectrum and task
    np.testing.assert_array_equal(np.loadtxt(out / "eigenvalues.txt"), rep["eigenvalues"])
    np.testing.assert_array_equal(np.loadtxt(out / "task_power.txt"), rep["task_power"])
    times = "0,1,10,100"
    r = invoke("theory", "--spectrum-file", out / "eigenvalues.txt", "--task-file", out / "task_power.txt",
               "--samples", 40, "--weight-decay", 0.01, "--times", times, "--format", "json")
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    # t = 0: the one-vs-rest target's variance p(1 - p) = 2/9 (iris: 50 of 150 per class)
    assert got["test_error"][0] == pytest.approx(2 / 9, rel=1e-10)
    p = kdmft.Problem(np.array(rep["eigenvalues"]), np.array(rep["task_power"]), 40, weight_decay=0.01)
    ref = kdmft.learning_curve(p, [0, 1, 10, 100])
    np.testing.assert_allclose(got["test_error"], ref["test_error"].values, rtol=1e-10)
    assert got["test_error"][-1] < 0.7 * got["test_error"][0]       # it learns


def test_spectrum_user_data_matches_bundled(tmp_path):
    from sklearn.datasets import load_iris

    raw = load_iris()
    np.savetxt(tmp_path / "X.csv", raw.data, delimiter=",")
    np.save(tmp_path / "y.npy", raw.target)
    r1 = invoke("spectrum", "--data", tmp_path / "X.csv", "--targets", tmp_path / "y.npy", "--kernel", "rbf",
                "--format", "json")
    r2 = invoke("spectrum", "--dataset", "iris", "--kernel", "rbf", "--format", "json")
    assert r1.exit_code == 0 and r2.exit_code == 0, (r1.output, r2.output)
    d1, d2 = json.loads(r1.stdout), json.loads(r2.stdout)
    np.testing.assert_allclose(d1["eigenvalues"], d2["eigenvalues"], rtol=1e-9)
    np.testing.assert_allclose(d1["task_power"][:20], d2["task_power"][:20], rtol=1e-6)
    assert d1["task"] == "classification" and d1["dataset"] == "X"
    # diabetes is a regression target: one output, unit variance
    r = invoke("spectrum", "--dataset", "diabetes", "--kernel", "linear", "--format", "json")
    d = json.loads(r.stdout)
    assert d["outputs"] == 1 and d["task"] == "regression" and d["total_power"] == pytest.approx(1.0, rel=1e-12)
    assert len(d["eigenvalues"]) == 10                     # rank of the linear kernel on 10 features


@pytest.mark.parametrize(("args", "word"), [
    (["--dataset", "iris", "--kernel", "laplace"], "kernel"),
    (["--dataset", "iris", "--kernel", "rbf", "--depth", "2"], "depth"),
    (["--dataset", "iris", "--kernel", "relu-nngp", "--depth", "0"], "depth"),
    (["--dataset", "mnist"], "dataset"),
    (["--dataset", "iris", "--data", "X.npy", "--targets", "y.npy"], "dataset"),
    (["--data", "X.npy"], "targets"),
    (["--dataset", "iris", "--target-class", "5"], "target_class"),
    (["--dataset", "iris", "--task", "ranking"], "task"),
    (["--dataset", "iris", "--format", "yaml"], "format"),
])
def test_spectrum_bad_input(tmp_path, args, word):
    out = tmp_path / "o"
    r = invoke("spectrum", *args, "--out-dir", out)
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and word in lines[0], r.stderr
    assert not out.exists()                                  # no partial output


def test_compare_cli_files_and_attrs(tmp_path):
    r = invoke("compare", "--dataset", "iris", "--kernel", "relu-nngp", "--samples", "10,30", "--times", "0.5,50",
               "--subsets", 4, "--seed", 3, "-o", tmp_path, "--format", "json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    stem = tmp_path / "compare_iris_relu-nngp_L1"
    for ext in (".nc", ".png", ".md"):
        assert stem.with_suffix(ext).is_file(), ext
    ds = read_netcdf(stem.with_suffix(".nc"))
    assert ds.sizes == {"samples": 2, "time": 2}
    assert ds.attrs["seed"] == 3 and ds.attrs["subsets"] == 4 and ds.attrs["kdmft_version"] == kdmft.__version__
    cfg = json.loads(ds.attrs["config_json"])
    assert cfg["dataset"] == "iris" and cfg["samples"] == [10, 30] and cfg["sampling"] == "heldout"
    np.testing.assert_allclose(d["measured_test_error"], ds["measured_test_error"].values, rtol=1e-12)
    np.testing.assert_allclose(d["relative_deviation"],
                               np.array(d["predicted_test_error"]) / np.array(d["measured_test_error"]) - 1,
                               rtol=1e-10)
    md = stem.with_suffix(".md").read_text()
    assert "| t | P = 10 | P = 30 |" in md
    # same seed, same numbers (reproducible); population sampling gets its own file
    r2 = invoke("compare", "--dataset", "iris", "--kernel", "relu-nngp", "--samples", "10,30", "--times",
                "0.5,50", "--subsets", 4, "--seed", 3, "-o", tmp_path, "--sampling", "population", "--no-plot")
    assert r2.exit_code == 0, r2.output
    assert (tmp_path / "compare_iris_relu-nngp_L1_pop.nc").is_file()
    assert not (tmp_path / "compare_iris_relu-nngp_L1_pop.png").exists()


@pytest.mark.parametrize(("args", "word"), [
    (["--samples", "10,150"], "samples"),
    (["--samples", "ten"], "--samples"),
    (["--times", "1,inf"], "--times"),
    (["--times", "-1"], "--times"),
    (["--subsets", "1"], "subsets"),
    (["--weight-decay", "-0.1"], "--weight-decay"),
    (["--sampling", "bootstrap"], "sampling"),
])
def test_compare_bad_input(tmp_path, args, word):
    r = invoke("compare", "--dataset", "iris", "--samples", "10", "--times", "1", *args, "-o", tmp_path / "o")
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and word in lines[0], r.stderr
    assert not (tmp_path / "o").exists()


def test_entry_point_subprocess():
    r = subprocess.run([sys.executable, "-m", "kdmft", "spectrum", "--dataset", "iris", "--kernel", "erf-nngp",
                        "--format", "json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert {"eigenvalues", "task_power", "alpha_fit", "alpha_ci"} <= set(d)
    r = subprocess.run([sys.executable, "-m", "kdmft", "spectrum", "--dataset", "iris", "--kernel", "nope"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.startswith("error: kernel") and "Traceback" not in r.stderr
