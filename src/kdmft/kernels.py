"""Closed-form kernels on data matrices.

Network kernels use the NNGP convention of a fully connected network with weights of variance
σ_w²/fan-in, σ_w² = 2 for ReLU (He initialisation), no biases, and inputs normalised by their
dimension: K_0(x, x') = x·x'/d. With that choice a ReLU layer preserves the diagonal,
K_l(x, x) = K_0(x, x).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .errors import InvalidParameterError

__all__ = ["relu_nngp", "KERNELS", "kernel_matrix"]


def _arccos_step(k: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """One ReLU layer (arc-cosine kernel of order 1, Cho & Saul 2009) with σ_w² = 2:

    K' = (√(K_xx K_yy) / π) (sin θ + (π - θ) cos θ),   cos θ = K_xy / √(K_xx K_yy).
    """
    norm = np.sqrt(np.outer(dx, dy))
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norm > 0, k / np.where(norm > 0, norm, 1.0), 0.0)
    cos = np.clip(cos, -1.0, 1.0)
    theta = np.arccos(cos)
    return norm / np.pi * (np.sin(theta) + (np.pi - theta) * cos)


def relu_nngp(X: np.ndarray, Y: np.ndarray | None = None, depth: int = 1) -> np.ndarray:
    """ReLU NNGP kernel of a network with ``depth`` hidden layers between rows of X and Y.

    Parameters
    ----------
    X : array (n, d), Y : array (m, d), optional (default X)
    depth : int >= 1

    Returns
    -------
    array (n, m)
    """
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise InvalidParameterError("depth", "a positive integer", depth)
    X = np.asarray(X, dtype=np.float64)
    Y = X if Y is None else np.asarray(Y, dtype=np.float64)
    d = X.shape[1]
    k = X @ Y.T / d
    dx = np.einsum("ij,ij->i", X, X) / d
    dy = np.einsum("ij,ij->i", Y, Y) / d
    for _ in range(int(depth)):
        k = _arccos_step(k, dx, dy)  # the diagonal is preserved, so dx, dy stay valid
    return k


#: Kernel name -> function(X, Y=None, depth=...) -> Gram matrix.
KERNELS: dict[str, Callable[..., np.ndarray]] = {"relu-nngp": relu_nngp}


def kernel_matrix(X: np.ndarray, kernel: str = "relu-nngp", depth: int = 1) -> np.ndarray:
    """Gram matrix of the named kernel on the rows of X (symmetrised)."""
    try:
        fn = KERNELS[kernel]
    except KeyError:
        raise InvalidParameterError("kernel", f"one of {sorted(KERNELS)}", kernel) from None
    K = fn(X, depth=depth)
    return 0.5 * (K + K.T)
