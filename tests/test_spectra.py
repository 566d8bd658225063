"""Spectra from formulas and files, and the config that builds problems from them."""

from __future__ import annotations

import numpy as np
import pytest

from kdmft import InvalidParameterError
from kdmft.config import ProblemConfig, RunConfig, TimesConfig, parse_times
from kdmft.spectra import load_array_file, power_law_spectrum


@pytest.mark.parametrize("fmt", ["npy", "csv", "txt", "csv-row"])
def test_load_array_file_formats(tmp_path, fmt):
    a = np.array([1.0, 0.5, 0.25, 1e-3])
    if fmt == "npy":
        path = tmp_path / "a.npy"
        np.save(path, a)
    elif fmt == "csv":
        path = tmp_path / "a.csv"
        path.write_text("\n".join(map(str, a)) + "\n")
    elif fmt == "csv-row":
        path = tmp_path / "a.csv"
        path.write_text(",".join(map(str, a)))
    else:
        path = tmp_path / "a.txt"
        path.write_text("# eigenvalues\n" + " ".join(map(str, a)))
    np.testing.assert_array_equal(load_array_file(path, "spectrum_file"), a)


@pytest.mark.parametrize("content, why", [
    ("", "empty"), ("1.0\nnan\n", "NaN"), ("1.0\ninf\n", "inf"), ("1,2\n3,4\n", "shape"),
    ("1,2\n3\n", "lengths"), ("abc\n", "numbers"), ("   \n\n", "empty"),
])
def test_load_array_file_rejects(tmp_path, content, why):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(InvalidParameterError) as exc:
        load_array_file(path, "spectrum_file")
    assert str(exc.value).startswith("spectrum_file")


def test_load_array_file_missing_and_bad_npy(tmp_path):
    with pytest.raises(InvalidParameterError, match="not found"):
        load_array_file(tmp_path / "nope.npy", "task_file")
    bad = tmp_path / "x.npy"
    bad.write_bytes(b"not numpy")
    with pytest.raises(InvalidParameterError, match="task_file"):
        load_array_file(bad, "task_file")
    np.save(tmp_path / "m.npy", np.ones((3, 3)))
    with pytest.raises(InvalidParameterError, match="shape"):
        load_array_file(tmp_path / "m.npy", "task_file")


def test_problem_config_from_files(tmp_path):
    lam = power_law_spectrum(20, 0.7)
    np.save(tmp_path / "lam.npy", lam)
    np.savetxt(tmp_path / "v.txt", np.linspace(1, 2, 20))
    p = ProblemConfig(spectrum_file="lam.npy", task_file="v.txt", samples=7).build(tmp_path)
    np.testing.assert_array_equal(p.eigenvalues, lam)
    assert p.task_power[-1] == 2.0
    np.savetxt(tmp_path / "short.txt", np.ones(5))
    with pytest.raises(InvalidParameterError, match="task_file"):
        ProblemConfig(spectrum_file="lam.npy", task_file="short.txt", samples=7).build(tmp_path)
    np.save(tmp_path / "neg.npy", -lam)
    with pytest.raises(InvalidParameterError, match="spectrum_file"):
        ProblemConfig(spectrum_file="neg.npy", samples=7).build(tmp_path)


@pytest.mark.parametrize("kw, name", [
    ({"spectrum_file": "x.npy"}, "spectrum"), ({"task_exponent": 1.0, "task_file": "v.txt"}, "task"),
    ({"weight_decay": 0.1, "prior_var": 1.0, "noise_var": 1.0}, "training"),
    ({"prior_var": 1.0}, "prior_var"),
])
def test_problem_config_conflicts(kw, name):
    with pytest.raises(InvalidParameterError, match=name):
        ProblemConfig(modes=10, alpha=0.5, samples=5, **kw).build()


def test_run_config_toml(tmp_path):
    (tmp_path / "c.toml").write_text(
        "[problem]\nmodes = 50\nalpha = 1\nsamples = 20\nprior_var = 2.0\nnoise_var = 0.1\n"
        "[times]\nvalues = [0.5, 2]\n[simulation]\nrealizations = 10\n")
    cfg = RunConfig.from_toml(tmp_path / "c.toml")
    p = cfg.problem.resolved().build()
    assert (p.modes, p.samples, p.weight_decay, p.temperature) == (50, 20, pytest.approx(0.05), 0.1)
    assert cfg.times.array().tolist() == [0.5, 2.0]
    assert cfg.to_dict()["simulation"]["realizations"] == 10


@pytest.mark.parametrize("text, name", [
    ("[problem]\nmodez = 3\n", "problem.modez"), ("[bogus]\nx = 1\n", "bogus"),
    ("[problem]\nmodes = 'ten'\n", "problem.modes"), ("[problem\nmodes=3", "config"),
    ("[times]\nvalues = ['a']\n", "times.values"), ("[simulation]\nenabled = 3\n", "simulation.enabled"),
])
def test_run_config_rejects(tmp_path, text, name):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(InvalidParameterError) as exc:
        cfg = RunConfig.from_toml(path)
        cfg.times.array()
    assert name in str(exc.value)


def test_parse_times():
    assert parse_times("0, 1.5,inf").tolist() == [0.0, 1.5, np.inf]
    for bad in ("1,,2", "-1", "nan", "x", "1;2", "-inf"):
        with pytest.raises(InvalidParameterError, match="--times"):
            parse_times(bad)
    with pytest.raises(InvalidParameterError, match="times.start"):
        TimesConfig(start=10, stop=1).array()
