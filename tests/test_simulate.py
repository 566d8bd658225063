"""Exact simulation: per-data-set formulas against brute force, sampling, seeds, diagnostics."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.linalg import expm

import kdmft
from kdmft.simulate import CHUNK, dataset_errors


def _integral_expm(H, t):
    """∫_0^t e^{-Hs} ds via the block exponential (valid for singular H)."""
    n = H.shape[0]
    M = np.zeros((2 * n, 2 * n))
    M[:n, :n] = -H
    M[:n, n:] = np.eye(n)
    return expm(M * t)[:n, n:]


def _brute_force(X, lam, v, g, T, s2, t):
    """All six parts for one data set from explicit matrices (no eigen-decomposition)."""
    P, N = X.shape
    H = X.T @ X + g * np.eye(N)
    B = _integral_expm(H, t)                    # H^{-1}(I - e^{-Ht})
    A = B @ X.T @ X - np.eye(N)                 # e = A w̄ + B Xᵀ ε
    L, V = np.diag(lam), np.diag(v)
    Sigma = 2 * T * _integral_expm(2 * H, t)    # T H^{-1}(I - e^{-2Ht})
    bias = np.trace(A.T @ L @ A @ V)
    noise = s2 * np.trace(B.T @ L @ B @ X.T @ X)
    thermal = np.trace(L @ Sigma)
    tr_b = np.trace(A.T @ X.T @ X @ A @ V) / P
    Rn = X @ B @ X.T - np.eye(P)
    tr_n = s2 * np.trace(Rn.T @ Rn) / P
    tr_t = np.trace(X @ Sigma @ X.T) / P
    return np.array([bias, noise, thermal, tr_b, tr_n, tr_t])


KEYS = ("bias", "noise_variance", "thermal_variance", "train_bias", "train_noise_variance",
        "train_thermal_variance")


@pytest.mark.parametrize("P", [3, 6, 10], ids=lambda P: f"P{P}")
@pytest.mark.parametrize("g", [0.0, 0.3], ids=lambda g: f"g{g}")
def test_dataset_errors_equal_brute_force(P, g):
    N = 6
    lam = np.array([1.0, 0.5, 0.3, 0.2, 0.1, 0.05])
    v = np.array([1.0, 2.0, 0.5, 0.3, 1.5, 0.1])
    T, s2 = 0.2, 0.3
    rng = np.random.default_rng(P)
    X = rng.standard_normal((2, P, N)) * np.sqrt(lam)
    times = np.array([0.0, 0.3, 2.0, 25.0])
    got = dataset_errors(X, lam, v, g, T, s2, times)
    for b in range(2):
        for i, t in enumerate(times):
            ref = _brute_force(X[b], lam, v, g, T, s2, t)
            for j, k in enumerate(KEYS):
                assert got[k][b, i] == pytest.approx(ref[j], rel=1e-8, abs=1e-12), (k, t)


def test_dataset_errors_isotropic_path_equals_general_path():
    lam = np.arange(1, 9) ** -1.0
    rng = np.random.default_rng(1)
    X = rng.standard_normal((3, 5, 8)) * np.sqrt(lam)
    t = np.array([0.5, 4.0])
    iso = dataset_errors(X, lam, np.full(8, 0.7), 0.1, 0.1, 0.1, t)
    gen = dataset_errors(X, lam, np.full(8, 0.7) * (1 + 1e-15 * np.arange(8)), 0.1, 0.1, 0.1, t)
    np.testing.assert_allclose(iso["bias"], gen["bias"], rtol=1e-10)


def test_infinite_time_limits_per_data_set():
    """t = inf: ridge with g > 0; min-norm interpolator, and diverging thermal part, with g = 0."""
    lam = np.array([1.0, 0.5, 0.25, 0.125])
    rng = np.random.default_rng(3)
    X = rng.standard_normal((1, 3, 4)) * np.sqrt(lam)
    ridge = dataset_errors(X, lam, np.ones(4), 0.2, 0.1, 0.1, np.array([1e6, np.inf]))
    for k in KEYS:
        np.testing.assert_allclose(ridge[k][0, 1], ridge[k][0, 0], rtol=1e-9)
    flow = dataset_errors(X, lam, np.ones(4), 0.0, 0.1, 0.1, np.array([1e9, np.inf]))
    np.testing.assert_allclose(flow["bias"][0, 1], flow["bias"][0, 0], rtol=1e-7)
    np.testing.assert_allclose(flow["noise_variance"][0, 1], flow["noise_variance"][0, 0], rtol=1e-7)
    assert np.isinf(flow["thermal_variance"][0, 1])  # null space of XᵀX (P < N)
    assert np.isfinite(flow["train_thermal_variance"][0, 1])


def test_rao_blackwell_equals_sampling_teacher_and_noise():
    """Averaging w̄ and ε analytically gives the mean of actually sampling them."""
    N, P, g, s2, t = 5, 4, 0.05, 0.4, 1.5
    lam = np.array([1.0, 0.6, 0.3, 0.2, 0.1])
    v = np.array([1.0, 0.5, 2.0, 1.0, 0.3])
    rng = np.random.default_rng(11)
    X = rng.standard_normal((P, N)) * np.sqrt(lam)
    exact = dataset_errors(X[None], lam, v, g, 0.0, s2, np.array([t]))
    H = X.T @ X + g * np.eye(N)
    B = _integral_expm(H, t)
    n = 200_000
    wbar = rng.standard_normal((n, N)) * np.sqrt(v)
    eps = rng.standard_normal((n, P)) * np.sqrt(s2)
    m = (wbar @ X.T + eps) @ X @ B.T
    err = m - wbar
    test = np.einsum("ij,j,ij->i", err, lam, err)
    train = np.sum((m @ X.T - (wbar @ X.T + eps)) ** 2, axis=1) / P
    for val, key in ((test, ("bias", "noise_variance")), (train, ("train_bias", "train_noise_variance"))):
        ref = sum(exact[k][0, 0] for k in key)
        assert val.mean() == pytest.approx(ref, abs=4 * val.std() / np.sqrt(n))


def test_seeding_is_documented_and_reproducible():
    p = kdmft.Problem.power_law(12, 0.5, 9, weight_decay=0.1, temperature=0.1, label_noise_var=0.1)
    t = [0.5, 5.0]
    a = kdmft.simulate(p, t, CHUNK, seed=4)
    b = kdmft.simulate(p, t, CHUNK, seed=4)
    c = kdmft.simulate(p, t, CHUNK, seed=5)
    np.testing.assert_array_equal(a.test_error.values, b.test_error.values)
    assert np.all(a.test_error.values != c.test_error.values)
    # chunk 0 draws from SeedSequence(seed, spawn_key=(0,))
    rng = np.random.default_rng(np.random.SeedSequence(4, spawn_key=(0,)))
    X = rng.standard_normal((CHUNK, 9, 12)) * np.sqrt(p.eigenvalues)
    parts = dataset_errors(X, p.eigenvalues, p.task_power, 0.1, 0.1, 0.1, np.array(t))
    manual = parts["bias"] + parts["noise_variance"] + parts["thermal_variance"]
    np.testing.assert_allclose(a.test_error.values, manual.mean(0), rtol=1e-12)
    assert a.attrs["seed"] == 4 and a.attrs["realizations"] == CHUNK


def test_standard_error_is_calibrated():
    """Means of independent runs scatter by about their reported standard error."""
    p = kdmft.Problem.power_law(20, 0.5, 15, weight_decay=0.1, temperature=0.05, label_noise_var=0.1)
    runs = [kdmft.simulate(p, [2.0], 64, seed=s) for s in range(30)]
    means = np.array([r.test_error.values[0] for r in runs])
    ses = np.array([r.test_error_se.values[0] for r in runs])
    ratio = means.std(ddof=1) / np.median(ses)
    assert 0.6 < ratio < 1.5


def test_heavy_tail_is_flagged_at_threshold_only():
    # At P = N, g = 0 a long time lets the nearly singular data sets dominate (t = inf is infinite:
    # see test_t_inf_mean_is_infinite_near_threshold).
    at = kdmft.Problem.power_law(30, 0.5, 30, temperature=0.1)
    with pytest.warns(kdmft.HeavyTailWarning):
        ds = kdmft.simulate(at, [1.0, 1e7], 300, seed=0)
    assert ds.test_error_heavy_tail.values.tolist() == [0, 1]
    away = kdmft.Problem.power_law(30, 0.5, 60, weight_decay=0.1, temperature=0.1)
    ds2 = kdmft.simulate(away, [1.0, 1e7, np.inf], 300, seed=0)
    assert ds2.test_error_heavy_tail.values.tolist() == [0, 0, 0]


def test_divergent_mean_is_inf_and_se_inf():
    p = kdmft.Problem.power_law(20, 0.5, 10, temperature=0.1)
    ds = kdmft.simulate(p, [np.inf], 40, seed=0)
    assert np.isinf(ds.thermal_variance.values[0]) and np.isinf(ds.thermal_variance_se.values[0])
    assert np.isfinite(ds.train_error.values[0])


@pytest.mark.parametrize("kw, name", [({"realizations": 1}, "realizations"), ({"seed": -1}, "seed"),
                                      ({"realizations": 2.5}, "realizations"), ({"seed": True}, "seed")])
def test_bad_inputs(kw, name):
    p = kdmft.Problem.power_law(5, 0.5, 5)
    args = {"realizations": 10, "seed": 0} | kw
    with pytest.raises(kdmft.InvalidParameterError, match=name):
        kdmft.simulate(p, [1.0], **args)
    with pytest.raises(kdmft.InvalidParameterError, match="times"):
        kdmft.simulate(p, [np.nan], 10, 0)


def test_teacher_tail_enters_as_noise_and_constant():
    p = kdmft.Problem.power_law(20, 0.5, 15, teacher_modes=200, weight_decay=0.1)
    q = p.replace(teacher_tail=0.0, label_noise_var=p.teacher_tail)
    a = kdmft.simulate(p, [0.0, 3.0], 64, seed=2)
    b = kdmft.simulate(q, [0.0, 3.0], 64, seed=2)
    np.testing.assert_allclose(a.test_error.values, b.test_error.values + p.teacher_tail, rtol=1e-12)
    np.testing.assert_allclose(a.train_error.values, b.train_error.values, rtol=1e-12)


@pytest.mark.parametrize("P, diverges", [(30, True), (31, True), (32, False)])
def test_t_inf_mean_is_infinite_near_threshold(P, diverges):
    """At g = 0, t = inf, E[1/s_min(XᵀX)] = ∞ for |P - N| <= 1: reported as inf, not a heavy-tailed number."""
    p = kdmft.Problem.power_law(30, 0.5, P, temperature=0.05, label_noise_var=0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = kdmft.simulate(p, [10.0, np.inf], realizations=40, seed=0)
    got = [issubclass(w.category, kdmft.DivergenceWarning) for w in caught]
    assert any(got) == diverges
    assert np.isinf(ds.noise_variance.values[1]) == diverges
    assert np.isinf(ds.test_error.values[1]) == diverges
    assert np.all(np.isfinite(ds.test_error.values[:1])) and np.isfinite(ds.train_error.values[1])


def test_too_large_simulation_is_refused_before_allocating():
    p = kdmft.Problem.power_law(100_000, 0.5, 100_000)
    with pytest.raises(kdmft.InvalidParameterError, match="modes, samples"):
        kdmft.simulate(p, [1.0], realizations=2, seed=0)


@pytest.mark.parametrize("P", [52, 53])
def test_t_inf_infinite_variance_is_flagged_heavy_tailed(P):
    """|P - N| = 2, 3 at g = 0: finite mean, infinite variance over data sets; the SE is flagged."""
    p = kdmft.Problem.power_law(50, 0.5, P, label_noise_var=0.1)
    with pytest.warns(kdmft.HeavyTailWarning):
        ds = kdmft.simulate(p, [1.0, np.inf], realizations=100, seed=2)
    assert ds.test_error_heavy_tail.values.tolist() == [0, 1] and np.isfinite(ds.test_error.values[1])
