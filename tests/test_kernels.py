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

from kdmft.errors import InvalidParameterError
from kdmft.kernels import KERNELS, kernel_matrix, relu_nngp

D = 5


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
        kernel_matrix(np.ones((3, 2)), "rbf")
    assert exc.value.name == "kernel"
    assert "rbf" in str(exc.value) and "relu-nngp" in str(exc.value)
