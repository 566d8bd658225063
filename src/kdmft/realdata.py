"""Real data: kernel spectra of data sets and measured kernel-regression learning curves.

The data set (n points) is treated as the population. The kernel Gram matrix K (n x n) has
eigen-pairs K φ_k = n λ_k φ_k with |φ_k| = 1; the feature of mode k is √λ_k ψ_k with
ψ_k(x_i) = √n φ_k[i], so that K(x, x') = Σ_k λ_k ψ_k(x) ψ_k(x') and (1/n) Σ_i ψ_k ψ_l = δ_kl.
A target y (n values) has teacher weights w̄_k = (φ_k·y) / √(n λ_k), hence task power
v_k = (φ_k·y)² / (n λ_k) and λ_k v_k = (φ_k·y)²/n. Modes whose eigenvalue is below
``rel_cutoff · λ_1`` cannot be resolved; their target power is returned as a tail that acts as
label noise (as for a teacher wider than the student).

Measured curves train kernel regression on random P-subsets S with the same SDE as the theory,
in function space: f_t(x) = k_xS U diag((1 - e^{-(s+g)t})/(s+g)) Uᵀ y_S with K_SS = U diag(s) Uᵀ,
and the Langevin variance xᵀΣ(t)x = f(0) K(x,x) + k_xS U diag((f(s) - f(0))/s) Uᵀ k_Sx with
f(h) = T (1 - e^{-2(h+g)t})/(h+g). The test error is averaged over the held-out points.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import InvalidParameterError

__all__ = ["DATASETS", "load_dataset", "binary_target", "KernelSpectrum", "kernel_spectrum",
           "measured_curve"]


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data.astype(np.float64), d.target.astype(np.int64)


#: Data set name -> loader returning (features (n, d), integer labels (n,)).
DATASETS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {"digits": _load_digits}


def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Standardised features (zero mean, unit variance; constant columns dropped) and labels."""
    try:
        loader = DATASETS[name]
    except KeyError:
        raise InvalidParameterError("dataset", f"one of {sorted(DATASETS)}", name) from None
    X, labels = loader()
    std = X.std(axis=0)
    X = (X[:, std > 0] - X[:, std > 0].mean(axis=0)) / std[std > 0]
    return X, labels


def binary_target(labels: np.ndarray, target_class: int) -> np.ndarray:
    """Centred one-vs-rest target: 1[label == c] minus its mean."""
    classes = np.unique(labels)
    if target_class not in classes:
        raise InvalidParameterError("target_class", f"one of the labels {classes.tolist()}", target_class)
    y = (labels == target_class).astype(np.float64)
    return y - y.mean()


@dataclass(frozen=True)
class KernelSpectrum:
    """Eigenvalues λ_k (decreasing), task power v_k, unresolved tail power, eigenvectors φ_k."""

    eigenvalues: np.ndarray
    task_power: np.ndarray
    tail_power: float
    eigenvectors: np.ndarray
    n: int


def kernel_spectrum(K: np.ndarray, y: np.ndarray, rel_cutoff: float = 1e-10) -> KernelSpectrum:
    """Spectrum and task power of target ``y`` under the Gram matrix ``K`` of n points."""
    n = K.shape[0]
    evals, evecs = np.linalg.eigh(K)
    order = np.argsort(evals)[::-1]
    evals, evecs = evals[order], evecs[:, order]
    lam = evals / n
    keep = lam > rel_cutoff * lam[0]
    proj = evecs.T @ y
    power = proj**2 / n                        # λ_k v_k
    lam_k = lam[keep]
    return KernelSpectrum(eigenvalues=lam_k, task_power=power[keep] / lam_k,
                          tail_power=float(power[~keep].sum()), eigenvectors=evecs[:, keep], n=n)


def _f_thermal(h: np.ndarray, g: float, T: float, t: np.ndarray) -> np.ndarray:
    """f(h) = T (1 - e^{-2(h+g)t})/(h+g) on a (len(h), len(t)) grid (2Tt at h + g = 0)."""
    d = (h + g)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        val = -np.expm1(-2.0 * d * t[None, :]) / np.where(d > 0, d, 1.0)
    return T * np.where(d > 0, val, 2.0 * t[None, :])


def measured_curve(K: np.ndarray, y: np.ndarray, samples: int, times: np.ndarray, *,
                   weight_decay: float = 0.0, temperature: float = 0.0, label_noise_var: float = 0.0,
                   subsets: int = 50, seed: int = 0,
                   progress: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
    """Held-out learning curve of kernel regression trained on random P-subsets.

    Expectations over Langevin noise and label noise are exact; the mean and standard error
    are over subsets. Times must be finite and >= 0.

    Returns
    -------
    dict with ``test_error``, ``train_error``, ``bias``, ``noise_variance``,
    ``thermal_variance`` and their ``_se`` (arrays over times).
    """
    n = K.shape[0]
    P = int(samples)
    if not 1 <= P < n:
        raise InvalidParameterError("samples", f"an integer in [1, {n - 1}] for this data set", samples)
    if isinstance(subsets, bool) or not isinstance(subsets, (int, np.integer)) or subsets < 2:
        raise InvalidParameterError("subsets", "an integer >= 2", subsets)
    t = np.asarray(times, dtype=np.float64)
    g, T, s2 = float(weight_decay), float(temperature), float(label_noise_var)
    keys = ("test_error", "train_error", "bias", "noise_variance", "thermal_variance")
    acc = {k: [] for k in keys}
    diagK = np.diag(K)
    for j in range(int(subsets)):
        rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(j,)))
        perm = rng.permutation(n)
        S, H = perm[:P], perm[P:]
        s, U = np.linalg.eigh(K[np.ix_(S, S)])
        s = np.clip(s, 0.0, None)
        d = (s + g)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            phi = np.where(d > 0, -np.expm1(-d * t[None, :]) / np.where(d > 0, d, 1.0), t[None, :])
        A = K[np.ix_(H, S)] @ U                      # (nH, P)
        c = U.T @ y[S]
        f_H = A @ (phi * c[:, None])                 # (nH, nt)
        bias = np.mean((f_H - y[H][:, None]) ** 2, axis=0)
        A2 = A * A
        noise = s2 * np.mean(A2 @ (phi * phi), axis=0)
        fs = _f_thermal(s, g, T, t)
        f0 = _f_thermal(np.zeros(1), g, T, t)[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(s[:, None] > 1e-12 * s.max(), (fs - f0[None, :]) / s[:, None], 0.0)
        thermal = f0 * diagK[H].mean() + np.mean(A2 @ q, axis=0)
        r_train = s[:, None] * phi - 1.0             # (K φ(K) - I) in the eigenbasis
        train = (np.sum((r_train * c[:, None]) ** 2, axis=0) + s2 * np.sum(r_train**2, axis=0)
                 + T * np.sum(s[:, None] * _f_thermal(s, g, 1.0, t), axis=0)) / P
        for k, val in zip(keys, (bias + noise + thermal, train, bias, noise, thermal), strict=True):
            acc[k].append(val)
        if progress is not None:
            progress(j + 1, int(subsets))
    out = {}
    for k in keys:
        arr = np.array(acc[k])
        out[k] = arr.mean(axis=0)
        out[k + "_se"] = arr.std(axis=0, ddof=1) / math.sqrt(arr.shape[0])
    return out
