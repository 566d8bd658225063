"""Exact finite-size simulation (THEORY.md section 6): ground truth for the DMFT.

For one data set X (P x N, rows ~ N(0, Λ)) the training SDE is an Ornstein-Uhlenbeck process
solved exactly, without time steps, in the eigenbasis of XᵀX = V diag(s) Vᵀ (H = XᵀX + g I):

    mean error  e(t) = -[I + V diag(D) Vᵀ] w̄ + V diag(b) Vᵀ Xᵀ ε,
    D_i = expm1(-d_i t) s_i / d_i,  b_i = -expm1(-d_i t) / d_i,  d_i = s_i + g,
    covariance  Σ(t) = T H⁻¹ (I - e^{-2Ht})   (2T t on a null direction of H).

The teacher w̄ (E w̄_k² = v_k) and the label noise ε enter quadratically, so their average is
taken exactly for each X (a Rao-Blackwellised estimator with the same mean as sampling them and
a smaller variance); the reported standard errors are over data sets X. Per data set:

    bias    = Σ λv + 2 Σ_i D_i (VᵀΛWV)_ii + Σ_ij D_i D_j (VᵀΛV)_ij (VᵀWV)_ij
    noise   = σ² Σ_i b_i² s_i (VᵀΛV)_ii
    thermal = T [Σ_i (VᵀΛV)_ii c_i + (tr Λ - Σ_i (VᵀΛV)_ii) c(g)],  c(d) = (1 - e^{-2dt})/d
    train: (1/P) Σ a_i² s_i (VᵀWV)_ii,  (σ²/P) [Σ ((g + s_i e^{-d_i t})/d_i)² + P - r],
           (T/P) Σ s_i c_i,      with a_i = 1 + D_i, r = rank X.

Random numbers: realization chunk j (of :data:`CHUNK` data sets) draws from
``SeedSequence(seed, spawn_key=(j,))``, so results do not depend on batching or parallelism,
and the first R realizations of a longer run are those of a run with R.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import xarray as xr
from threadpoolctl import threadpool_limits

from .errors import HeavyTailWarning, InvalidParameterError
from .model import Problem
from .results import PARTS, curve_dataset
from .theory import check_times

__all__ = ["simulate", "dataset_errors", "CHUNK"]

CHUNK = 32
_OBS = ("test_error", "train_error") + PARTS


def _null_factor(g: float, t: np.ndarray) -> np.ndarray:
    """c(g) = (1 - e^{-2gt})/g on a null direction of XᵀX (2t if g = 0)."""
    if g > 0:
        finite = np.where(np.isinf(t), 0.0, t)
        return np.where(np.isinf(t), 1.0 / g, -np.expm1(-2.0 * g * finite) / g)
    return 2.0 * t


def _wsum(weights: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Σ_i weights[b, i] grid[b, i, t] as a batched matrix product, shape (B, nt)."""
    return np.matmul(weights[:, None, :], grid)[:, 0, :]


def dataset_errors(X: np.ndarray, lam: np.ndarray, v: np.ndarray, g: float, T: float,
                   noise_var: float, times: np.ndarray) -> dict[str, np.ndarray]:
    """Errors of a batch of data sets averaged over teacher and label noise.

    Parameters
    ----------
    X : array (B, P, N)
        Feature matrices of B data sets.
    lam, v : arrays (N,)
        λ_k and v_k.
    g, T, noise_var : float
        Weight decay, temperature, label-noise variance.
    times : array (nt,)
        Times t >= 0 (inf allowed).

    Returns
    -------
    dict of arrays (B, nt) for the six parts (without any teacher tail).
    """
    B, P, N = X.shape
    t = np.asarray(times, dtype=np.float64)
    Xt = np.swapaxes(X, 1, 2)
    if P >= N:
        s, V = np.linalg.eigh(Xt @ X)
    else:
        s, U = np.linalg.eigh(X @ Xt)
        V = Xt @ U / np.sqrt(np.where(s > 0, s, 1.0))[:, None, :]
    # Directions with s at rounding level belong to the null space of XᵀX.
    keep = s > s.max(axis=1, keepdims=True) * max(P, N) * np.finfo(float).eps
    s = np.where(keep, s, 0.0)
    V = V * keep[:, None, :]
    rank = keep.sum(axis=1)                                     # (B,)
    d = s + g
    V2 = V * V
    Vt2 = np.swapaxes(V2, 1, 2)
    Lii, LWii, Wii = Vt2 @ lam, Vt2 @ (lam * v), Vt2 @ v          # (B, r) each
    dt = d[..., None] * t                                       # (B, r, nt)
    with np.errstate(invalid="ignore", over="ignore"):
        em1 = np.where(np.isinf(dt), -1.0, np.expm1(-dt))            # e^{-dt} - 1
        em1_2 = np.where(np.isinf(dt), -1.0, np.expm1(-2.0 * dt))    # e^{-2dt} - 1
    inv_d = np.where(keep, 1.0 / np.where(keep, d, 1.0), 0.0)[..., None]
    D = em1 * (s[..., None] * inv_d)              # a_i - 1
    bfac = -em1 * inv_d                           # (1 - e^{-dt}) / d
    cfac = -em1_2 * inv_d                         # (1 - e^{-2dt}) / d
    sig = float(np.sum(lam * v))
    if np.all(v == v[0]):
        quad = v[0] * _wsum(Lii, D * D)
    else:
        Vt = np.swapaxes(V, 1, 2)
        LW = ((Vt * lam) @ V) * ((Vt * v) @ V)
        quad = np.sum(D * (LW @ D), axis=1)
    bias = np.maximum(sig + 2.0 * _wsum(LWii, D) + quad, 0.0)
    noise = noise_var * _wsum(s * Lii, bfac * bfac)
    thermal = np.zeros((B, t.size))
    if T > 0:
        thermal = T * _wsum(Lii, cfac)
        has_null = rank < N
        if has_null.any():
            null_w = np.maximum(lam.sum() - Lii.sum(axis=1), 0.0)[has_null]
            thermal[has_null] += T * null_w[:, None] * _null_factor(g, t)[None, :]
    a = 1.0 + D
    train_bias = _wsum(s * Wii, a * a) / P
    resid = (g + s[..., None] * (1.0 + em1)) * inv_d   # (g + s e^{-dt}) / d, 0 off the range
    train_noise = noise_var / P * ((resid * resid).sum(axis=1) + (P - rank)[:, None])
    train_thermal = T / P * _wsum(s, cfac)
    return {"bias": bias, "noise_variance": noise, "thermal_variance": thermal,
            "train_bias": train_bias, "train_noise_variance": train_noise,
            "train_thermal_variance": train_thermal}


class _Moments:
    """Streaming mean / variance / split-half / max per observable and time."""

    def __init__(self, shape):
        self.n = 0
        self.sum = {k: np.zeros(shape) for k in _OBS}
        self.sq = {k: np.zeros(shape) for k in _OBS}
        self.half = {k: np.zeros((2,) + shape) for k in _OBS}
        self.nhalf = np.zeros(2)
        self.max = {k: np.zeros(shape) for k in _OBS}

    def add(self, vals: dict[str, np.ndarray], first_index: int):
        parity = (first_index + np.arange(next(iter(vals.values())).shape[0])) % 2
        for k, x in vals.items():
            with np.errstate(invalid="ignore"):
                self.sum[k] += x.sum(axis=0)
                self.sq[k] += (x * x).sum(axis=0)
            for h in (0, 1):
                self.half[k][h] += x[parity == h].sum(axis=0)
            self.max[k] = np.maximum(self.max[k], np.abs(x).max(axis=0))
        self.nhalf += [(parity == 0).sum(), (parity == 1).sum()]
        self.n += parity.size


def simulate(problem: Problem, times: float | Sequence[float] | np.ndarray, realizations: int = 1000,
             seed: int = 0, *, progress: Callable[[int, int], None] | None = None) -> xr.Dataset:
    """Exact simulation: mean and standard error over ``realizations`` data sets.

    Parameters
    ----------
    problem : Problem
        The learning problem; a teacher tail acts as label noise (exact for Gaussian features).
    times : float or sequence
        Times t >= 0 (inf allowed) in SDE units.
    realizations : int
        Number of independent data sets X (>= 2).
    seed : int
        Non-negative seed; the same seed gives the same numbers on every machine and batching.
    progress : callable(done, total), optional
        Called after each chunk of data sets.

    Returns
    -------
    xarray.Dataset
        The variables of :func:`kdmft.learning_curve` with ``<name>_se`` standard errors,
        ``test_error_heavy_tail`` (1 where the standard error is not trustworthy), and the
        seed, number of realizations and problem in ``attrs``.
    """
    if not isinstance(problem, Problem):
        raise InvalidParameterError("problem", "a kdmft.Problem", type(problem).__name__)
    t = check_times(times)
    if isinstance(realizations, bool) or not isinstance(realizations, (int, np.integer)) or realizations < 2:
        raise InvalidParameterError("realizations", "an integer >= 2", realizations)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidParameterError("seed", "a non-negative integer", seed)
    R = int(realizations)
    lam, v = problem.eigenvalues, problem.task_power
    P, N = problem.samples, problem.modes
    g, T, s2 = problem.weight_decay, problem.temperature, problem.effective_noise_var
    sqrt_lam = np.sqrt(lam)
    mom = _Moments((t.size,))
    n_chunks = math.ceil(R / CHUNK)
    # Small matrices: BLAS threads cost more than they give; large ones use them.
    limit = 1 if max(P, N) <= 400 else None
    with threadpool_limits(limits=limit, user_api="blas"):
        for j in range(n_chunks):
            size = min(CHUNK, R - j * CHUNK)
            rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(j,)))
            X = rng.standard_normal((size, P, N)) * sqrt_lam
            parts = dataset_errors(X, lam, v, g, T, s2, t)
            parts["bias"] = parts["bias"] + problem.teacher_tail
            parts["test_error"] = parts["bias"] + parts["noise_variance"] + parts["thermal_variance"]
            parts["train_error"] = (parts["train_bias"] + parts["train_noise_variance"]
                                    + parts["train_thermal_variance"])
            mom.add(parts, j * CHUNK)
            if progress is not None:
                progress(j * CHUNK + size, R)
    values, heavy = {}, np.zeros(t.size, dtype=bool)
    for k in _OBS:
        mean = mom.sum[k] / R
        with np.errstate(invalid="ignore"):
            var = np.maximum(mom.sq[k] / R - mean * mean, 0.0) * R / (R - 1)
        se = np.sqrt(var / R)
        finite = np.isfinite(mean)
        values[k] = mean
        values[k + "_se"] = np.where(finite, se, math.inf)  # an infinite mean has no error bar
        if k == "test_error":
            heavy = _heavy_tail(mom, k, mean, se, R)
    ds = curve_dataset(t, values, {"kind": "simulation", "method": "exact", "seed": int(seed),
                                   "realizations": R, **problem.attrs()})
    ds["test_error_heavy_tail"] = ("time", heavy.astype(np.int8), {
        "long_name": "1 where the test-error standard error understates the uncertainty"})
    if heavy.any():
        warnings.warn(
            "simulated test error is heavy tailed at t = "
            + ", ".join(f"{x:.3g}" for x in t[heavy][:5])
            + (" ..." if heavy.sum() > 5 else "")
            + ": rare, nearly singular data sets dominate; the standard error understates the "
            "uncertainty (more realizations or weight decay help)", HeavyTailWarning, stacklevel=2)
    return ds


def _heavy_tail(mom: _Moments, k: str, mean: np.ndarray, se: np.ndarray, R: int) -> np.ndarray:
    """Flag times where one data set carries > 10 % of the sum or the two halves disagree."""
    with np.errstate(invalid="ignore", divide="ignore"):
        m0 = mom.half[k][0] / mom.nhalf[0]
        m1 = mom.half[k][1] / mom.nhalf[1]
        total = np.abs(mom.sum[k])
        dominated = (mom.max[k] > 0.1 * total) & (R >= 50)
        z = np.abs(m0 - m1) / (2 * np.maximum(se, 1e-300))
        split = z > 4.0
    return np.isfinite(mean) & (dominated | split) & (total > 0)
