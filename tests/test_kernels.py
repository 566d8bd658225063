"""Tests of kdmft.kernels: the ReLU NNGP kernel against random finite-width ReLU networks.

Convention (module docstring): weights of variance σ_w²/fan-in with σ_w² = 2, no biases, inputs
normalised by their dimension, K_0(x, x') = x·x'/d. A network with one hidden layer has first-layer
pre-activations h(x) = w·x/√d, w ~ N(0, I_d), so (h(x), h(x')) ~ N(0, K_0), and

    K_1(x, x') = σ_w² E_w[relu(h(x)) relu(h(x'))] = 2 E_w[relu(w·x) relu(w·x')] / d.

The Monte-Carlo estimate of K_1 from a layer of width N_1 is (2/N_1) Σ_i relu(h_i(x)) relu(h_i(x')).
A second layer has pre-activations h^(2)_j = Σ_i W_ji relu(h_i) with W_ji ~ N(0, 2/N_1); given the
first layer, the N_2 rows of h^(2) over the inputs are iid N(0, C) with C = (2/N_1) AᵀA (A the
first-layer activations), so they are sampled exactly as G C^{1/2}, G standard normal (the same
law as an explicit Gaussian weight matrix W, without forming the N_2 x N_1 matrix).
"""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from kdmft.errors import InvalidParameterError
from kdmft.kernels import KERNELS, erf_nngp, kernel_matrix, linear, polynomial, rbf, relu_nngp, relu_ntk

D = 5


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    # small matrices: on a shared 2-core machine threaded BLAS only spins
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _inputs() -> np.ndarray:
    """Inputs covering the cases of the closed form: several norms, parallel (cos = 1),
    antiparallel (cos = -1), orthogonal (cos = 0), generic angles and the zero vector."""
    rng = np.random.default_rng(2024)
    x1 = rng.standard_normal(D)
    r = rng.standard_normal(D)
    x4 = r - (r @ x1) / (x1 @ x1) * x1             # orthogonal to x1
    x5 = rng.standard_normal(D)
    x6 = 0.3 * x1 + rng.standard_normal(D)          # positively correlated with x1, other norm
    x7 = -0.8 * x5 + 0.2 * rng.standard_normal(D)   # strongly anticorrelated with x5
    return np.array([x1, 2.0 * x1, -0.5 * x1, 1.7 * x4, x5, x6, x7, np.zeros(D)])


def _psd_sqrt(C: np.ndarray) -> np.ndarray:
    w, V = np.linalg.eigh(C)
    return (V * np.sqrt(np.clip(w, 0.0, None))) @ V.T


def _mc_network_kernel(X: np.ndarray, depth: int, width: int, replicas: int, seed: int):
    """Mean and standard error over independent random ReLU networks of (2/N) Σ_j a_j(x) a_j(x')
    at the last hidden layer (all layers of the given width)."""
    rng = np.random.default_rng(seed)
    n, d = X.shape
    ests = []
    for _ in range(replicas):
        W1 = rng.standard_normal((width, d))        # first layer, variance 2/d after the factor √2
        A = np.maximum(W1 @ X.T / np.sqrt(d), 0.0)  # (width, n): relu(w·x/√d)
        K = 2.0 * A.T @ A / width
        for _ in range(depth - 1):
            H = rng.standard_normal((width, n)) @ _psd_sqrt(K)  # next pre-activations ~ N(0, K)
            A = np.maximum(H, 0.0)
            K = 2.0 * A.T @ A / width
        ests.append(K)
    ests = np.array(ests)
    return ests.mean(axis=0), ests.std(axis=0, ddof=1) / np.sqrt(replicas)


@pytest.fixture(scope="module")
def mc_kernels():
    X = _inputs()
    return X, {L: _mc_network_kernel(X, L, width=100_000, replicas=16, seed=100 + L) for L in (1, 2, 3)}


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_relu_nngp_matches_random_networks(mc_kernels, depth):
    X, mc = mc_kernels
    mean, se = mc[depth]
    K = relu_nngp(X, depth=depth)
    scale = np.sqrt(np.outer(np.diag(mean), np.diag(mean)))   # √(K(x,x) K(x',x')) of the networks
    live = scale > 0                                           # all but the zero input
    assert np.all(np.abs(K[~live]) < 1e-15)
    # 5 standard errors from the spread of 16 independent networks (floor 1e-12·scale for the
    # antiparallel pair at depth 1, which is exactly 0 in every network)
    z = np.abs(K - mean)[live] / np.maximum(se[live], 1e-12 * scale[live])
    assert np.max(z) < 5.0, (np.max(z), K, mean)
    # the MC precision is what makes this test bite: SE below 0.5 % of the kernel scale
    assert np.max(se[live] / scale[live]) < 5e-3


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_wrong_depth_is_rejected_by_the_same_tolerance(mc_kernels, depth):
    X, mc = mc_kernels
    mean, se = mc[depth]
    ok = se > 1e-9
    for wrong in {max(depth - 1, 1), depth + 1} - {depth}:
        z = np.abs(relu_nngp(X, depth=wrong) - mean)[ok] / se[ok]
        assert np.max(z) > 50.0, (depth, wrong, np.max(z))


def test_closed_form_special_angles():
    """Independent closed forms of the order-1 arc-cosine kernel with σ_w² = 2."""
    x = np.array([3.0, 0.0, 0.0, 0.0])
    y = np.array([0.0, 2.0, 0.0, 0.0])     # orthogonal: K_1 = |x||y| / (π d)
    z = np.array([-1.0, 0.0, 0.0, 0.0])    # antiparallel: K_1 = 0
    K = relu_nngp(np.array([x, y, z]), depth=1)
    d = 4
    assert K[0, 1] == pytest.approx(6.0 / (np.pi * d), rel=1e-13)
    assert K[0, 2] == pytest.approx(0.0, abs=1e-15)
    # depth 2 at orthogonal inputs: cos θ_1 = 1/π, K_2 = (|x||y|/d)(sin θ_1 + (π - θ_1)/π)/π
    th = np.arccos(1.0 / np.pi)
    K2 = relu_nngp(np.array([x, y]), depth=2)
    assert K2[0, 1] == pytest.approx(6.0 / d * (np.sin(th) + (np.pi - th) / np.pi) / np.pi, rel=1e-13)


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_diagonal_preserved_symmetric_psd(depth):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((40, 8)) * rng.uniform(0.2, 3.0, size=(40, 1))
    X[5] = X[3]                                  # duplicate row: a singular kernel matrix
    K = relu_nngp(X, depth=depth)
    np.testing.assert_allclose(np.diag(K), np.sum(X * X, axis=1) / 8, rtol=1e-12)
    np.testing.assert_allclose(K, K.T, rtol=1e-14, atol=1e-15)
    evals = np.linalg.eigvalsh(0.5 * (K + K.T))
    assert evals.min() > -1e-12 * evals.max()
    assert evals.min() < 1e-10 * evals.max()     # the duplicate row is seen (sanity of the check)


def test_cross_kernel_is_block_of_joint_kernel():
    rng = np.random.default_rng(11)
    X = rng.standard_normal((9, 6))
    Y = rng.standard_normal((4, 6))
    for depth in (1, 3):
        joint = relu_nngp(np.vstack([X, Y]), depth=depth)
        np.testing.assert_allclose(relu_nngp(X, Y, depth=depth), joint[:9, 9:], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(relu_nngp(Y, X, depth=depth), joint[9:, :9], rtol=1e-12, atol=1e-15)


def test_kernel_matrix_relu_nngp():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((15, 4))
    K = kernel_matrix(X, "relu-nngp", depth=2)
    assert np.array_equal(K, K.T)
    np.testing.assert_allclose(K, relu_nngp(X, depth=2), rtol=1e-13, atol=1e-15)
    assert "relu-nngp" in KERNELS


@pytest.mark.parametrize("depth", [0, -1, 1.5, 2.0, True, "2", None])
def test_bad_depth_raises(depth):
    X = np.ones((3, 2))
    with pytest.raises(InvalidParameterError) as exc:
        relu_nngp(X, depth=depth)
    assert exc.value.name == "depth"
    with pytest.raises(InvalidParameterError):
        kernel_matrix(X, "relu-nngp", depth=depth)


def test_numpy_integer_depth_accepted():
    X = np.random.default_rng(0).standard_normal((4, 3))
    np.testing.assert_array_equal(relu_nngp(X, depth=np.int64(2)), relu_nngp(X, depth=2))


def test_unknown_kernel_name_raises():
    with pytest.raises(InvalidParameterError) as exc:
        kernel_matrix(np.ones((3, 2)), "gaussian")
    assert exc.value.name == "kernel"
    assert "gaussian" in str(exc.value) and "relu-nngp" in str(exc.value) and "rbf" in str(exc.value)


# --------------------------------------------------------------------------------------------
# ReLU NTK against the empirical tangent kernel of random finite-width networks
# --------------------------------------------------------------------------------------------

def _empirical_ntk(X: np.ndarray, depth: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Σ_p ∂f/∂p(x) ∂f/∂p(x') of one random ReLU network in the NTK parametrisation, all weights
    trainable N(0, 1): h¹ = W¹x/√d, h^{l+1} = √2 W^{l+1} relu(h^l)/√N, f = √2 v·relu(h^L)/√N.
    Gradients by explicit back-propagation through the same weights (no independence assumption)."""
    n, d = X.shape
    Ws = [rng.standard_normal((width, d))] + [rng.standard_normal((width, width)) for _ in range(depth - 1)]
    v = rng.standard_normal(width)
    hs, acts = [], [X.T]                                    # acts[l]: input of layer l+1, (fan-in, n)
    scale = [1.0 / np.sqrt(d)] + [np.sqrt(2.0 / width)] * (depth - 1)
    for W, c in zip(Ws, scale, strict=True):
        hs.append(c * W @ acts[-1])
        acts.append(np.maximum(hs[-1], 0.0))
    out_c = np.sqrt(2.0 / width)
    theta = out_c**2 * acts[-1].T @ acts[-1]                # read-out weights v
    delta = out_c * v[:, None] * (hs[-1] > 0)               # ∂f/∂h^L, (width, n)
    for layer in range(depth - 1, -1, -1):
        a_in = acts[layer]
        theta += (delta.T @ delta) * (scale[layer] ** 2 * a_in.T @ a_in)   # weights of this layer
        if layer > 0:
            delta = (hs[layer - 1] > 0) * (scale[layer] * Ws[layer].T @ delta)
    return theta


@pytest.fixture(scope="module")
def mc_ntk():
    X = _inputs()[:7]                                       # the zero input has Θ = 0 trivially
    out = {}
    for depth in (1, 2, 3):
        rng = np.random.default_rng(500 + depth)
        ests = np.array([_empirical_ntk(X, depth, 256, rng) for _ in range(100)])
        out[depth] = (ests.mean(axis=0), ests.std(axis=0, ddof=1) / np.sqrt(ests.shape[0]))
    return X, out


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_relu_ntk_matches_random_networks(mc_ntk, depth):
    X, mc = mc_ntk
    mean, se = mc[depth]
    Th = relu_ntk(X, depth=depth)
    # the finite-width bias of E[Θ̂] is O(depth/width): 0.5 % per layer allowed beside 5 standard errors
    scale = np.sqrt(np.outer(np.diag(Th), np.diag(Th)))
    z = np.abs(Th - mean) / (se + 0.005 * depth * scale)
    assert np.max(z) < 5.0, (np.max(z), Th, mean)
    assert np.max(se / scale) < 0.03                        # the MC has the precision to bite
    # on the diagonal Θ_L(x, x) = (L + 1) |x|²/d
    np.testing.assert_allclose(np.diag(Th), (depth + 1) * np.sum(X * X, axis=1) / X.shape[1], rtol=1e-12)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_relu_ntk_wrong_depth_or_nngp_caught(mc_ntk, depth):
    X, mc = mc_ntk
    mean, se = mc[depth]
    scale = np.sqrt(np.outer(np.diag(mean), np.diag(mean)))
    tol = se + 0.005 * depth * scale
    for wrong in {max(depth - 1, 1), depth + 1} - {depth}:
        assert np.max(np.abs(relu_ntk(X, depth=wrong) - mean) / tol) > 5.0, (depth, wrong)
    # the NNGP of the same depth (the read-out term alone) is not the NTK
    assert np.max(np.abs(relu_nngp(X, depth=depth) - mean) / tol) > 5.0


def test_relu_ntk_depth1_closed_form():
    """Θ_1 = K_1 + K_0 (π - θ)/π at orthogonal inputs: |x||y|/(πd) + 0."""
    x = np.array([3.0, 0.0, 0.0, 0.0])
    y = np.array([0.0, 2.0, 0.0, 0.0])
    Th = relu_ntk(np.array([x, y]), depth=1)
    assert Th[0, 1] == pytest.approx(6.0 / (4 * np.pi), rel=1e-13)
    assert Th[0, 0] == pytest.approx(2 * 9.0 / 4, rel=1e-13)


# --------------------------------------------------------------------------------------------
# erf NNGP against random finite-width erf networks
# --------------------------------------------------------------------------------------------

def _mc_erf_kernel(X, depth, width, replicas, seed, sigma_w2, sigma_b2):
    """Mean and SE over random erf networks of σ_w² (1/N) Σ_j erf(h_j(x)) erf(h_j(x')) + σ_b²;
    pre-activations of a layer given the previous one are sampled exactly from N(0, K̂)."""
    from scipy.special import erf

    rng = np.random.default_rng(seed)
    n, d = X.shape
    ests = []
    for _ in range(replicas):
        H = np.sqrt(sigma_w2 / d) * rng.standard_normal((width, d)) @ X.T \
            + np.sqrt(sigma_b2) * rng.standard_normal((width, 1))
        for layer in range(depth):
            A = erf(H)
            K = sigma_w2 * A.T @ A / width + sigma_b2
            if layer < depth - 1:
                H = rng.standard_normal((width, n)) @ _psd_sqrt(K)
        ests.append(K)
    ests = np.array(ests)
    return ests.mean(axis=0), ests.std(axis=0, ddof=1) / np.sqrt(replicas)


ERF_CASES = [(1, 1.0, 0.0), (2, 1.0, 0.0), (2, 2.5, 0.3), (3, 1.6, 0.1)]


@pytest.fixture(scope="module")
def mc_erf():
    X = _inputs()
    return X, {case: _mc_erf_kernel(X, case[0], 50_000, 12, 900 + i, case[1], case[2])
               for i, case in enumerate(ERF_CASES)}


@pytest.mark.parametrize("case", ERF_CASES, ids=lambda c: f"L{c[0]}-sw{c[1]}-sb{c[2]}")
def test_erf_nngp_matches_random_networks(mc_erf, case):
    X, mc = mc_erf
    mean, se = mc[case]
    depth, sw, sb = case
    K = erf_nngp(X, depth=depth, sigma_w2=sw, sigma_b2=sb)
    scale = np.sqrt(np.outer(np.diag(mean), np.diag(mean)))
    live = scale > 0                                        # sb = 0: the zero input has K = 0 exactly
    assert np.all(np.abs(K[~live] - mean[~live]) < 1e-15)
    z = np.abs(K - mean)[live] / np.maximum(se[live], 1e-12 * scale[live])
    assert np.max(z) < 5.0, (np.max(z), K, mean)
    assert np.max(se[live] / scale[live]) < 5e-3


@pytest.mark.parametrize("case", ERF_CASES, ids=lambda c: f"L{c[0]}-sw{c[1]}-sb{c[2]}")
def test_erf_nngp_wrong_sigma_or_depth_caught(mc_erf, case):
    X, mc = mc_erf
    mean, se = mc[case]
    depth, sw, sb = case
    ok = se > 1e-9
    wrongs = [dict(depth=depth, sigma_w2=1.15 * sw, sigma_b2=sb),       # σ_w 7 % too large
              dict(depth=depth + 1, sigma_w2=sw, sigma_b2=sb)]
    if sb > 0:
        wrongs.append(dict(depth=depth, sigma_w2=sw, sigma_b2=0.0))
    for wrong in wrongs:
        z = np.abs(erf_nngp(X, **wrong) - mean)[ok] / se[ok]
        assert np.max(z) > 20.0, (case, wrong, np.max(z))


def test_erf_nngp_single_layer_closed_form():
    """Williams (1997): E[erf(u) erf(v)] = (2/π) arcsin(2Σ_uv/√((1+2Σ_uu)(1+2Σ_vv)))."""
    x = np.array([[1.0, 2.0], [-0.5, 1.0]])
    d = 2
    k00, k11, k01 = 5.0 / d, 1.25 / d, 1.5 / d
    K = erf_nngp(x, depth=1)
    assert K[0, 1] == pytest.approx(2 / np.pi * np.arcsin(2 * k01 / np.sqrt((1 + 2 * k00) * (1 + 2 * k11))),
                                    rel=1e-13)
    assert K[0, 0] == pytest.approx(2 / np.pi * np.arcsin(2 * k00 / (1 + 2 * k00)), rel=1e-13)


@pytest.mark.parametrize(("name", "kw"), [("sigma_w2", 0.0), ("sigma_w2", -1.0), ("sigma_b2", -0.1),
                                          ("sigma_w2", float("nan"))])
def test_erf_bad_sigma_raises(name, kw):
    with pytest.raises(InvalidParameterError) as exc:
        erf_nngp(np.ones((3, 2)), **{name: kw})
    assert exc.value.name == name


# --------------------------------------------------------------------------------------------
# scikit-learn kernels: the documented formulas and defaults
# --------------------------------------------------------------------------------------------

def test_sklearn_kernels_documented_defaults():
    rng = np.random.default_rng(11)
    X = rng.standard_normal((9, 4))
    d = X.shape[1]
    sq = np.sum((X[:, None, :] - X[None, :, :]) ** 2, axis=-1)
    np.testing.assert_allclose(kernel_matrix(X, "rbf"), np.exp(-sq / d), rtol=1e-12)
    np.testing.assert_allclose(kernel_matrix(X, "rbf", gamma=0.3), np.exp(-0.3 * sq), rtol=1e-12)
    np.testing.assert_allclose(kernel_matrix(X, "linear"), X @ X.T / d, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(kernel_matrix(X, "polynomial"), (X @ X.T / d + 1.0) ** 3, rtol=1e-12)
    for name in ("rbf", "linear", "polynomial", "relu-ntk", "erf-nngp"):
        assert name in KERNELS
        K = kernel_matrix(X, name)
        assert np.array_equal(K, K.T)
        assert np.linalg.eigvalsh(K).min() > -1e-12 * np.abs(K).max()
    # cross kernels between different point sets
    Y = rng.standard_normal((3, 4))
    np.testing.assert_allclose(linear(X, Y), X @ Y.T / d, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(polynomial(X, Y, degree=2, coef0=0.5), (X @ Y.T / d + 0.5) ** 2, rtol=1e-12)
    np.testing.assert_allclose(rbf(X, Y), np.exp(-np.sum((X[:, None] - Y[None]) ** 2, -1) / d), rtol=1e-12)


def test_depth_rejected_for_non_network_kernels():
    X = np.ones((3, 2))
    for name in ("rbf", "linear", "polynomial"):
        with pytest.raises(InvalidParameterError) as exc:
            kernel_matrix(X, name, depth=2)
        assert exc.value.name == "depth"
        kernel_matrix(X, name, depth=None)
    with pytest.raises(InvalidParameterError):
        relu_ntk(X, depth=0)
    with pytest.raises(InvalidParameterError):
        linear(np.ones((3, 2)), np.ones((3, 4)))
