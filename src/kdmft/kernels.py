"""Closed-form kernels on data matrices.

Network kernels (``relu-nngp``, ``relu-ntk``, ``erf-nngp``) are the infinite-width limits of a
fully connected network with ``depth`` hidden layers and a linear read-out, in the standard
parametrisation ``h^{l+1} = σ_w W^{l+1} φ(h^l) / √N_l + σ_b b^{l+1}`` with iid standard normal
W, b, and a first layer ``h^1 = σ_w,in W^1 x / √d + σ_b b^1`` that sees the input normalised by its
dimension d. The NNGP kernel is ``K_L(x, x') = E[f(x) f(x')]`` of the read-out f = h^{L+1}.

* ReLU (``relu-nngp``, ``relu-ntk``): σ_w² = 2 (He initialisation) on every layer after the
  first, σ_w,in² = 1, no biases. Then K_0(x, x') = x·x'/d and a ReLU layer preserves the
  diagonal, K_l(x, x) = K_0(x, x) (arc-cosine kernel of order 1, Cho & Saul 2009).
* erf (``erf-nngp``): σ_w² = σ_w,in² = ``sigma_w2`` (default 1) and σ_b² = ``sigma_b2``
  (default 0) on every layer, K_0 = σ_w² x·x'/d + σ_b², and (Williams 1997)
  ``E[erf(u) erf(v)] = (2/π) arcsin(2 K_uv / √((1 + 2 K_uu)(1 + 2 K_vv)))``.

The ReLU NTK is the neural tangent kernel of the same network with every weight a trainable
N(0, 1) parameter (NTK parametrisation, Jacot et al. 2018; Arora et al. 2019):
Θ_0 = K_0, Θ_l = K_l + Θ_{l-1} K̇_l with K̇_l = σ_w² E[φ'(u) φ'(v)] = (π - θ_{l-1})/π, and the
kernel of the read-out is Θ_L (it includes the read-out layer's own term K_L).

Standard kernels (``rbf``, ``linear``, ``polynomial``) come from
:mod:`sklearn.metrics.pairwise` with scikit-learn's defaults except for the linear kernel's
scale: ``rbf`` = exp(-γ |x - x'|²) with γ = 1/d, ``polynomial`` = (γ x·x' + c₀)^degree with
γ = 1/d, c₀ = 1, degree = 3, ``linear`` = x·x'/d (scikit-learn's linear kernel divided by d,
the same K_0 as the network kernels, so that all kernels are O(1) on standardised data).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .errors import InvalidParameterError

__all__ = ["relu_nngp", "relu_ntk", "erf_nngp", "rbf", "linear", "polynomial", "KERNELS",
           "NETWORK_KERNELS", "kernel_matrix"]


def _check_depth(depth: object) -> int:
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise InvalidParameterError("depth", "a positive integer", depth)
    return int(depth)


def _pair(X: np.ndarray, Y: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    Y = X if Y is None else np.asarray(Y, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[1] or X.shape[1] == 0:
        raise InvalidParameterError("X, Y", "two-dimensional arrays with the same number (>= 1) of columns",
                                    (X.shape, Y.shape))
    return X, Y


def _cos_angle(k: np.ndarray, dx: np.ndarray, dy: np.ndarray, same: bool) -> tuple[np.ndarray, np.ndarray]:
    """cos θ = K_xy / √(K_xx K_yy) clipped to [-1, 1] (0 where a norm vanishes) and √(K_xx K_yy).

    With ``same`` (a Gram matrix of X with itself) the diagonal is set to exactly 1 where the norm
    is positive: a rounded cos θ = 1 - ε would give θ ≈ √(2ε) ≈ 2e-8, not 0.
    """
    norm = np.sqrt(np.outer(dx, dy))
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norm > 0, k / np.where(norm > 0, norm, 1.0), 0.0)
    cos = np.clip(cos, -1.0, 1.0)
    if same:
        idx = np.arange(cos.shape[0])
        cos[idx, idx] = np.where(np.diag(norm) > 0, 1.0, 0.0)
    return cos, norm


def _arccos_step(k: np.ndarray, dx: np.ndarray, dy: np.ndarray, same: bool = False
                 ) -> tuple[np.ndarray, np.ndarray]:
    """One ReLU layer with σ_w² = 2: the order-1 arc-cosine kernel and the derivative kernel.

    K' = (√(K_xx K_yy) / π) (sin θ + (π - θ) cos θ),   K̇ = (π - θ) / π.
    """
    cos, norm = _cos_angle(k, dx, dy, same)
    theta = np.arccos(cos)
    return norm / np.pi * (np.sin(theta) + (np.pi - theta) * cos), (np.pi - theta) / np.pi


def relu_nngp(X: np.ndarray, Y: np.ndarray | None = None, depth: int = 1) -> np.ndarray:
    """ReLU NNGP kernel of a network with ``depth`` hidden layers between rows of X and Y.

    Parameters
    ----------
    X : array (n, d)
    Y : array (m, d), optional (default X)
    depth : int >= 1
        Number of hidden ReLU layers (σ_w² = 2, no biases; module docstring).

    Returns
    -------
    array (n, m)
    """
    depth = _check_depth(depth)
    same = Y is None
    X, Y = _pair(X, Y)
    d = X.shape[1]
    k = X @ Y.T / d
    dx = np.einsum("ij,ij->i", X, X) / d
    dy = np.einsum("ij,ij->i", Y, Y) / d
    for _ in range(depth):
        k, _ = _arccos_step(k, dx, dy, same)  # the diagonal is preserved, so dx, dy stay valid
    return k


def relu_ntk(X: np.ndarray, Y: np.ndarray | None = None, depth: int = 1) -> np.ndarray:
    """ReLU neural tangent kernel (NTK parametrisation) of a network with ``depth`` hidden layers.

    Θ_0 = K_0 = x·x'/d and Θ_l = K_l + Θ_{l-1} (π - θ_{l-1})/π, with K_l the ReLU NNGP kernel of
    depth l and θ_{l-1} the angle between x and x' under K_{l-1}; returns Θ_depth. On the
    diagonal Θ_L(x, x) = (L + 1) K_0(x, x).

    Parameters
    ----------
    X : array (n, d)
    Y : array (m, d), optional (default X)
    depth : int >= 1

    Returns
    -------
    array (n, m)
    """
    depth = _check_depth(depth)
    same = Y is None
    X, Y = _pair(X, Y)
    d = X.shape[1]
    k = X @ Y.T / d
    dx = np.einsum("ij,ij->i", X, X) / d
    dy = np.einsum("ij,ij->i", Y, Y) / d
    theta = k.copy()
    for _ in range(depth):
        k, kdot = _arccos_step(k, dx, dy, same)
        theta = k + theta * kdot
    return theta


def erf_nngp(X: np.ndarray, Y: np.ndarray | None = None, depth: int = 1, *, sigma_w2: float = 1.0,
             sigma_b2: float = 0.0) -> np.ndarray:
    """erf NNGP kernel (Williams 1997) of a network with ``depth`` hidden erf layers.

    K_0 = σ_w² x·x'/d + σ_b² and K_l = σ_w² (2/π) arcsin(2 K_{l-1}(x,x') /
    √((1 + 2 K_{l-1}(x,x))(1 + 2 K_{l-1}(x',x')))) + σ_b²; returns K_depth.

    Parameters
    ----------
    X : array (n, d)
    Y : array (m, d), optional (default X)
    depth : int >= 1
    sigma_w2 : float > 0
        Weight variance σ_w² (times 1/fan-in) of every layer.
    sigma_b2 : float >= 0
        Bias variance σ_b² of every layer.

    Returns
    -------
    array (n, m)
    """
    depth = _check_depth(depth)
    sw = float(sigma_w2)
    sb = float(sigma_b2)
    if not (math.isfinite(sw) and sw > 0):
        raise InvalidParameterError("sigma_w2", "a positive finite number", sigma_w2)
    if not (math.isfinite(sb) and sb >= 0):
        raise InvalidParameterError("sigma_b2", "a non-negative finite number", sigma_b2)
    X, Y = _pair(X, Y)
    d = X.shape[1]
    k = sw * (X @ Y.T) / d + sb
    dx = sw * np.einsum("ij,ij->i", X, X) / d + sb
    dy = sw * np.einsum("ij,ij->i", Y, Y) / d + sb
    for _ in range(depth):
        arg = 2.0 * k / np.sqrt(np.outer(1.0 + 2.0 * dx, 1.0 + 2.0 * dy))
        k = sw * (2.0 / np.pi) * np.arcsin(np.clip(arg, -1.0, 1.0)) + sb
        dx = sw * (2.0 / np.pi) * np.arcsin(2.0 * dx / (1.0 + 2.0 * dx)) + sb
        dy = sw * (2.0 / np.pi) * np.arcsin(2.0 * dy / (1.0 + 2.0 * dy)) + sb
    return k


def rbf(X: np.ndarray, Y: np.ndarray | None = None, *, gamma: float | None = None) -> np.ndarray:
    """Gaussian kernel exp(-γ |x - x'|²) (scikit-learn ``rbf_kernel``; default γ = 1/d)."""
    from sklearn.metrics.pairwise import rbf_kernel

    X, Y = _pair(X, Y)
    return rbf_kernel(X, Y, gamma=gamma)


def linear(X: np.ndarray, Y: np.ndarray | None = None) -> np.ndarray:
    """Linear kernel x·x'/d (scikit-learn ``linear_kernel`` divided by the input dimension d)."""
    from sklearn.metrics.pairwise import linear_kernel

    X, Y = _pair(X, Y)
    return linear_kernel(X, Y) / X.shape[1]


def polynomial(X: np.ndarray, Y: np.ndarray | None = None, *, degree: int = 3, gamma: float | None = None,
               coef0: float = 1.0) -> np.ndarray:
    """Polynomial kernel (γ x·x' + c₀)^degree (scikit-learn ``polynomial_kernel``; γ = 1/d, c₀ = 1, degree 3)."""
    from sklearn.metrics.pairwise import polynomial_kernel

    X, Y = _pair(X, Y)
    return polynomial_kernel(X, Y, degree=degree, gamma=gamma, coef0=coef0)


#: Kernel name -> function(X, Y=None, ...) -> Gram matrix.
KERNELS: dict[str, Callable[..., np.ndarray]] = {
    "relu-nngp": relu_nngp, "relu-ntk": relu_ntk, "erf-nngp": erf_nngp,
    "rbf": rbf, "linear": linear, "polynomial": polynomial,
}

#: Kernels of a network, which take ``depth`` (number of hidden layers).
NETWORK_KERNELS = frozenset({"relu-nngp", "relu-ntk", "erf-nngp"})


def kernel_matrix(X: np.ndarray, kernel: str = "relu-nngp", depth: int | None = 1, **params) -> np.ndarray:
    """Gram matrix of the named kernel on the rows of X (exactly symmetric).

    ``depth`` (a positive integer) applies to the network kernels (:data:`NETWORK_KERNELS`); for
    the others it must be None or 1 (the default). Extra keyword ``params`` go to the kernel function (for example
    ``gamma`` of ``rbf``, ``sigma_w2`` of ``erf-nngp``).
    """
    try:
        fn = KERNELS[kernel]
    except KeyError:
        raise InvalidParameterError("kernel", f"one of {sorted(KERNELS)}", kernel) from None
    if kernel in NETWORK_KERNELS:
        K = fn(X, depth=depth, **params)
    else:
        if depth not in (None, 1):
            raise InvalidParameterError("depth", f"left unset for the {kernel!r} kernel "
                                        f"(it applies to {sorted(NETWORK_KERNELS)})", depth)
        K = fn(X, **params)
    return 0.5 * (K + K.T)
