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

from ._version import __version__
from .errors import DivergenceWarning, HeavyTailWarning, InvalidParameterError
from .model import Problem
from .results import PARTS, curve_dataset
from .theory import check_times

__all__ = ["simulate", "dataset_errors", "CHUNK", "simulate_schedule", "simulate_em", "scheduled_factors",
           "simulate_modes"]

CHUNK = 32
#: Memory one chunk of exact simulation may take (the check runs before any work).
MAX_CHUNK_BYTES = 12 * 2**30
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
    s, V, keep, rank = _spectral(X)
    d = s + g
    dt = d[..., None] * t                                       # (B, r, nt)
    with np.errstate(invalid="ignore", over="ignore"):
        em1 = np.where(np.isinf(dt), -1.0, np.expm1(-dt))            # e^{-dt} - 1
        em1_2 = np.where(np.isinf(dt), -1.0, np.expm1(-2.0 * dt))    # e^{-2dt} - 1
    inv_d = np.where(keep, 1.0 / np.where(keep, d, 1.0), 0.0)[..., None]
    bfac = -em1 * inv_d                           # (1 - e^{-dt}) / d
    cfac = -em1_2 * inv_d                         # (1 - e^{-2dt}) / d
    null = T * _null_factor(g, t) if T > 0 else np.zeros(t.size)
    return _errors_from_factors(s, V, keep, rank, lam, v, noise_var, P, bfac, T * cfac, null)


def _spectral(X: np.ndarray):
    """Eigen-decomposition XᵀX = V diag(s) Vᵀ of a batch; rounding-level directions set to 0."""
    B, P, N = X.shape
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
    return s, V, keep, rank


def _errors_from_factors(s, V, keep, rank, lam, v, noise_var, P, bfac, cT, null_T):
    """The six parts from per-direction factors (any protocol whose propagator is a function of XᵀX).

    ``bfac[b, i, t]`` = ∫ U_i(t, u) η(u) du (the mean's response to Xᵀy), ``cT`` = ∫ U_i² 2ηT du
    (thermal variance per direction) and ``null_T[t]`` the same on the null space of XᵀX, with
    U_i(t, u) = exp(-(τ(t) - τ(u)) s_i - (γ(t) - γ(u))). Entries where ``keep`` is False are ignored.
    """
    B = s.shape[0]
    N = lam.size
    nt = bfac.shape[-1]
    kf = keep[..., None]
    bfac = np.where(kf, bfac, 0.0)
    cT = np.where(kf, cT, 0.0)
    D = -s[..., None] * bfac                      # a_i - 1
    V2 = V * V
    Vt2 = np.swapaxes(V2, 1, 2)
    Lii, LWii, Wii = Vt2 @ lam, Vt2 @ (lam * v), Vt2 @ v          # (B, r) each
    sig = float(np.sum(lam * v))
    if np.all(v == v[0]):
        quad = v[0] * _wsum(Lii, D * D)
    else:
        Vt = np.swapaxes(V, 1, 2)
        LW = ((Vt * lam) @ V) * ((Vt * v) @ V)
        quad = np.sum(D * (LW @ D), axis=1)
    bias = np.maximum(sig + 2.0 * _wsum(LWii, D) + quad, 0.0)
    noise = noise_var * _wsum(s * Lii, bfac * bfac)
    thermal = _wsum(Lii, cT)
    has_null = rank < N
    if has_null.any() and np.any(null_T):
        null_w = np.maximum(lam.sum() - Lii.sum(axis=1), 0.0)[has_null]
        thermal[has_null] += null_w[:, None] * np.asarray(null_T)[None, :]
    a = 1.0 + D
    train_bias = _wsum(s * Wii, a * a) / P
    resid = np.where(kf, 1.0 - s[..., None] * bfac, 0.0)   # residual factor of the label noise
    train_noise = noise_var / P * ((resid * resid).sum(axis=1) + (P - rank)[:, None] * np.ones(nt))
    train_thermal = _wsum(s, cT) / P
    assert train_noise.shape == (B, nt)
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


def _data_sets(problem: Problem, R: int, seed: int):
    """Yield (first index, rng, X) per chunk of :data:`CHUNK` data sets X (size, P, N), rows ~ N(0, Λ).

    Chunk j draws from ``SeedSequence(seed, spawn_key=(j,))``; the rng is returned for the
    chunk's further draws. Small matrices run with one BLAS thread (threads cost more than they give).
    """
    P, N = problem.samples, problem.modes
    size = min(CHUNK, R)
    # X, XᵀX or XXᵀ, eigenvectors and the per-direction factors of one chunk, in float64.
    need = 8.0 * size * (3.0 * P * N + 3.0 * min(P, N) ** 2)
    if need > MAX_CHUNK_BYTES:
        raise InvalidParameterError(
            "modes, samples", f"small enough for the exact simulation (N·P up to about "
            f"{MAX_CHUNK_BYTES / (8.0 * size * 6.0):.3g} for square problems)", f"N = {N}, P = {P}",
            detail=f"a batch of {size} data sets needs about {need / 2**30:.3g} GiB, the limit is "
            f"{MAX_CHUNK_BYTES / 2**30:.0f} GiB; the theory has no such limit")
    sqrt_lam = np.sqrt(problem.eigenvalues)
    limit = 1 if max(P, N) <= 400 else None
    with threadpool_limits(limits=limit, user_api="blas"):
        for j in range(math.ceil(R / CHUNK)):
            size = min(CHUNK, R - j * CHUNK)
            rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(j,)))
            yield j * CHUNK, rng, rng.standard_normal((size, P, N)) * sqrt_lam


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
    g, T, s2 = problem.weight_decay, problem.temperature, problem.effective_noise_var
    mom = _Moments((t.size,))
    for start, _, X in _data_sets(problem, R, seed):
        _add_chunk(mom, problem, dataset_errors(X, lam, v, g, T, s2, t), start, R, progress)
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
    if _infinite_variance_at_inf(problem):
        heavy |= np.isinf(t)
    diverging = _divergent_at_inf(problem)
    if diverging and np.isinf(t).any():
        at = np.isinf(t)
        for k in diverging + ["test_error"]:
            values[k][at] = math.inf
            values[k + "_se"][at] = math.inf
        heavy[at] = False
        warnings.warn(f"t = inf: the expected {' and '.join(diverging)} over data sets is infinite at g = 0 with "
                      f"P = {problem.samples}, N = {problem.modes} (|P - N| <= 1: the smallest eigenvalue of XᵀX "
                      "has a density that does not vanish at 0); reported as inf", DivergenceWarning, stacklevel=2)
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


def _divergent_at_inf(problem: Problem) -> list[str]:
    """Test-error parts whose exact mean over data sets is infinite at t = inf, though finite per data set.

    At g = 0 the t = inf noise and thermal parts are Σ_i (VᵀΛV)_ii/s_i over the eigenvalues s_i of
    XᵀX. For Gaussian X the density of the smallest one behaves like s^((|P-N|-1)/2) at 0, so
    E[1/s_min] = ∞ for |P - N| <= 1. (P < N - 1 makes the thermal part infinite per data set.)
    """
    if problem.weight_decay > 0 or abs(problem.samples - problem.modes) > 1:
        return []
    out = []
    if problem.effective_noise_var > 0:
        out.append("noise_variance")
    if problem.temperature > 0 and problem.samples >= problem.modes:
        out.append("thermal_variance")
    return out


def _infinite_variance_at_inf(problem: Problem) -> bool:
    """True where the t = inf errors have a finite mean but an infinite variance over data sets.

    With the density of s_min(XᵀX) ~ s^((|P-N|-1)/2) at 0, E[1/s²] = ∞ for |P - N| <= 3 (g = 0), so
    for |P - N| = 2, 3 the mean is finite and its standard error meaningless: flagged heavy tailed.
    """
    d = abs(problem.samples - problem.modes)
    noisy = problem.effective_noise_var > 0 or (problem.temperature > 0 and problem.samples > problem.modes)
    return problem.weight_decay == 0 and 2 <= d <= 3 and noisy


def _add_chunk(mom: _Moments, problem: Problem, parts: dict, start: int, R: int, progress) -> None:
    """Totals of one chunk's parts (teacher tail added to the bias) into the running moments."""
    parts["bias"] = parts["bias"] + problem.teacher_tail
    parts["test_error"] = parts["bias"] + parts["noise_variance"] + parts["thermal_variance"]
    parts["train_error"] = parts["train_bias"] + parts["train_noise_variance"] + parts["train_thermal_variance"]
    mom.add(parts, start)
    if progress is not None:
        progress(start + next(iter(parts.values())).shape[0], R)


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


# ---------------------------------------------------------------------------------------------
# Training schedules: exact eigenbasis reference and Euler-Maruyama
# ---------------------------------------------------------------------------------------------
def _check_common(problem, times, realizations, seed):
    if not isinstance(problem, Problem):
        raise InvalidParameterError("problem", "a kdmft.Problem", type(problem).__name__)
    t = check_times(times)
    if np.isinf(t).any():
        raise InvalidParameterError("times", "finite (a scheduled or time-stepped run has no t = inf)", "inf")
    if isinstance(realizations, bool) or not isinstance(realizations, (int, np.integer)) or realizations < 2:
        raise InvalidParameterError("realizations", "an integer >= 2", realizations)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidParameterError("seed", "a non-negative integer", seed)
    return t, int(realizations)


def _chunked(problem: Problem, t: np.ndarray, R: int, seed: int, per_chunk, attrs: dict,
             progress) -> xr.Dataset:
    """Run ``per_chunk(rng, X) -> parts`` over chunks of data sets and average (as :func:`simulate`)."""
    mom = _Moments((t.size,))
    for start, rng, X in _data_sets(problem, R, seed):          # the same X as simulate()
        _add_chunk(mom, problem, per_chunk(rng, X), start, R, progress)
    values = {}
    heavy = np.zeros(t.size, dtype=bool)
    for k in _OBS:
        mean = mom.sum[k] / R
        var = np.maximum(mom.sq[k] / R - mean * mean, 0.0) * R / (R - 1)
        se = np.sqrt(var / R)
        values[k] = mean
        values[k + "_se"] = se
        if k == "test_error":
            heavy = _heavy_tail(mom, k, mean, se, R)
    ds = curve_dataset(t, values, {"seed": int(seed), "realizations": R, **attrs, **problem.attrs()})
    ds["test_error_heavy_tail"] = ("time", heavy.astype(np.int8), {
        "long_name": "1 where the test-error standard error understates the uncertainty"})
    return ds


def _protocol_values(schedule, g: float, T: float, t: np.ndarray):
    """Learning-rate factor η, weight decay g(t) and temperature T(t) at times t (constant without a schedule)."""
    if schedule is None:
        return np.ones_like(t), np.full_like(t, g), np.full_like(t, T)
    return (schedule.factor("learning_rate", t), g * schedule.factor("weight_decay", t),
            T * schedule.factor("temperature", t))


def _fine_cells(schedule, g: float, T: float, t: np.ndarray, cells: int):
    """Cells of a fine t grid holding every output time and breakpoint: Δτ, g, T at midpoints.

    ``cells`` uniform cells plus ``cells // 4`` (at least 64 per decade) geometric ones from
    min(1e-9 t_max, 1e-3 × the schedule's shortest time scale), so that a schedule varying early
    (a fast anneal or warm-up) stays resolved over a long horizon.
    """
    tmax = float(t.max())
    pts = [np.linspace(0.0, tmax, cells + 1), t]
    if tmax > 0:
        # From 1e-9 t_max, or lower where the schedule changes earlier (an early anneal stays
        # resolved however far t_max is).
        lo = 1e-9 * tmax if schedule is None else min(1e-9 * tmax, 1e-3 * schedule.scale(tmax))
        pts.append(np.geomspace(lo, tmax, max(cells // 4, 2, int(math.ceil(64 * math.log10(tmax / lo))))))
    if schedule is not None:
        pts.append(schedule.breakpoints(tmax))
    fine = np.unique(np.concatenate(pts))
    mid = 0.5 * (fine[1:] + fine[:-1])
    h = np.diff(fine)
    eta, gm, Tm = _protocol_values(schedule, g, T, mid)
    out_idx = np.searchsorted(fine, t)          # fine[out_idx] == t
    return eta * h, gm, Tm, out_idx


def scheduled_factors(s: np.ndarray, dtau: np.ndarray, gm: np.ndarray, Tm: np.ndarray,
                      out_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and thermal factors per eigenvalue of XᵀX under a schedule (exact per constant cell).

    In τ = ∫η dt the propagator of direction i is exp(-s_i Δτ - ∫ g dτ); over a cell with constant
    g and T: b <- e^{-x Δτ} b + (1 - e^{-x Δτ})/x and c <- e^{-2x Δτ} c + T (1 - e^{-2x Δτ})/x,
    x = s_i + g (limits Δτ and 2TΔτ at x = 0). Midpoint g, T make it second order in the cell
    size (exact for step schedules, whose jumps are cell boundaries).

    Returns
    -------
    b, c : arrays (..., n_out)
    """
    s = np.asarray(s, dtype=np.float64)
    b = np.zeros(s.shape)
    c = np.zeros(s.shape)
    nb = np.zeros(s.shape + (out_idx.size,))
    nc = np.zeros(s.shape + (out_idx.size,))
    want = {int(i): j for j, i in enumerate(out_idx)}
    dup = [np.flatnonzero(out_idx == i) for i in np.unique(out_idx)]
    if 0 in want:
        pass  # zeros at t = 0
    for i in range(dtau.size):
        x = s + gm[i]
        xh = x * dtau[i]
        e1 = np.exp(-xh)
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(xh > 1e-12, -np.expm1(-xh) / np.where(x > 0, x, 1.0), dtau[i])
            f2 = np.where(xh > 1e-12, -np.expm1(-2 * xh) / np.where(x > 0, x, 1.0), 2 * dtau[i])
        b = e1 * b + f1
        c = e1 * e1 * c + Tm[i] * f2
        if i + 1 in want:
            nb[..., want[i + 1]] = b
            nc[..., want[i + 1]] = c
    for group in dup:  # repeated output times
        nb[..., group] = nb[..., group[-1:]]
        nc[..., group] = nc[..., group[-1:]]
    return nb, nc


def simulate_schedule(problem: Problem, times: float | Sequence[float] | np.ndarray, schedule=None,
                      realizations: int = 1000, seed: int = 0, *, cells: int = 4000,
                      progress: Callable[[int, int], None] | None = None) -> xr.Dataset:
    """Exact simulation with a training schedule (no time step), averaged over data sets.

    With η(t), g(t), T(t) scalars times the identity, the propagator is a function of XᵀX alone,
    U(t,u) = exp(-(τ(t)-τ(u)) XᵀX - (γ(t)-γ(u))), τ = ∫η, γ = ∫ηg, so every observable needs
    only 1-D integrals per eigenvalue of XᵀX (:func:`scheduled_factors`, ``cells`` uniform plus
    ``cells // 4`` geometric cells on [0, max t]). Teacher and label noise are averaged exactly per data set, as in
    :func:`simulate`, whose data sets (X) it shares for the same seed.

    Parameters
    ----------
    problem : Problem
    times : float or sequence
        Finite times t >= 0.
    schedule : kdmft.schedules.Schedule, optional
        None = constant protocol (then this equals :func:`simulate` to ~1e-8).
    realizations, seed, progress
        As in :func:`simulate`.

    Returns
    -------
    xarray.Dataset
        The variables of :func:`simulate`; ``method = "exact-schedule"``.
    """
    t, R = _check_common(problem, times, realizations, seed)
    if schedule is not None:
        schedule.check_bases(problem.weight_decay, problem.temperature)
    lam, v = problem.eigenvalues, problem.task_power
    g, T, s2 = problem.weight_decay, problem.temperature, problem.effective_noise_var
    order = np.argsort(t, kind="stable")
    dtau, gm, Tm, out_idx = _fine_cells(schedule, g, T, t[order], cells)
    _, null_c = scheduled_factors(np.zeros(1), dtau, gm, Tm, out_idx)
    inv = np.argsort(order)

    def per_chunk(rng, X):
        s, V, keep, rank = _spectral(X)
        b, c = scheduled_factors(s, dtau, gm, Tm, out_idx)
        return _errors_from_factors(s, V, keep, rank, lam, v, s2, problem.samples, b[..., inv], c[..., inv],
                                    null_c[0][inv])

    attrs = {"kind": "simulation", "method": "exact-schedule", "cells": cells}
    if schedule is not None:
        attrs["schedule"] = schedule.describe()
    return _chunked(problem, t, R, seed, per_chunk, attrs, progress)


def simulate_em(problem: Problem, times: float | Sequence[float] | np.ndarray, realizations: int = 1000,
                seed: int = 0, *, dt: float = 1e-3, schedule=None,
                progress: Callable[[int, int], None] | None = None) -> xr.Dataset:
    """Euler-Maruyama simulation of the training SDE (with an optional schedule), batched over data sets.

    ``dw = -η(t)[Xᵀ(Xw - y) + g(t) w] dt + sqrt(2 η(t) T(t)) dB`` is stepped with steps <= ``dt``
    (each interval between output times is cut into equal steps), for a chunk of data sets at
    once. Teacher w̄ ~ N(0, diag v), label noise ε ~ N(0, σ²) and the Brownian path are sampled;
    because the dynamics are linear the weights split exactly into three trajectories driven by
    w̄, by ε and by the Langevin noise, which gives the bias / label-noise / thermal parts (cross
    terms have zero mean). The same seed gives the same data sets X as :func:`simulate`.

    Parameters
    ----------
    dt : float
        Largest step (SDE time). The scheme is stable only if dt η (s_max + g) < 2 for the largest
        eigenvalue s_max of XᵀX; larger steps raise InvalidParameterError. Its weak error is O(dt).

    Returns
    -------
    xarray.Dataset
        As :func:`simulate`, with ``method = "euler-maruyama"`` and ``dt`` in attrs.
    """
    t, R = _check_common(problem, times, realizations, seed)
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not math.isfinite(dt) or dt <= 0:
        raise InvalidParameterError("dt", "a positive finite number", dt)
    if schedule is not None:
        schedule.check_bases(problem.weight_decay, problem.temperature)
    lam, v = problem.eigenvalues, problem.task_power
    P, N = problem.samples, problem.modes
    g, T, s2 = problem.weight_decay, problem.temperature, problem.effective_noise_var
    order = np.argsort(t, kind="stable")
    ts = t[order]
    # Step boundaries: each gap between output times cut into equal steps <= dt.
    edges = [0.0]
    marks = []
    for x in ts:
        gap = x - edges[-1]
        k = int(math.ceil(gap / dt - 1e-9)) if gap > 0 else 0
        edges.extend(edges[-1] + gap * np.arange(1, k + 1) / k)
        marks.append(len(edges) - 1)
    edges = np.asarray(edges)
    if edges.size > 2_000_000:
        raise InvalidParameterError("dt", f"at least max(times) / 2e6 = {ts[-1] / 2e6:.3g}", dt)
    left = edges[:-1]
    h = np.diff(edges)
    eta, gl, Tl = _protocol_values(schedule, g, T, left)
    sd = np.sqrt(2.0 * eta * Tl * h)
    inv = np.argsort(order)
    hmax = float(np.max(eta * h)) if h.size else 0.0
    gmax = float(gl.max()) if gl.size else 0.0

    def per_chunk(rng, X):
        B = X.shape[0]
        A = np.swapaxes(X, 1, 2) @ X
        smax = float(np.linalg.eigvalsh(A).max())
        if hmax * (smax + gmax) >= 2.0:
            raise InvalidParameterError("dt", f"below {2.0 / (smax + gmax) / max(eta.max(), 1e-300):.3g} "
                                        f"(Euler-Maruyama stability: dt η (s_max + g) < 2, s_max = {smax:.4g})",
                                        dt)
        wbar = rng.standard_normal((B, N)) * np.sqrt(v)
        eps = rng.standard_normal((B, P)) * math.sqrt(s2)
        force = np.stack([(A @ wbar[..., None])[..., 0], (np.swapaxes(X, 1, 2) @ eps[..., None])[..., 0]], axis=2)
        Wt = np.zeros((B, N, 3))
        out = {k: np.zeros((B, ts.size)) for k in PARTS}
        m = 0
        for i in range(h.size + 1):
            while m < len(marks) and marks[m] == i:
                eb = Wt[..., 0] - wbar
                en, et = Wt[..., 1], Wt[..., 2]
                out["bias"][:, m] = np.einsum("bn,n,bn->b", eb, lam, eb)
                out["noise_variance"][:, m] = np.einsum("bn,n,bn->b", en, lam, en)
                out["thermal_variance"][:, m] = np.einsum("bn,n,bn->b", et, lam, et)
                rb = (X @ eb[..., None])[..., 0]
                rn = (X @ en[..., None])[..., 0] - eps
                rt = (X @ et[..., None])[..., 0]
                out["train_bias"][:, m] = np.sum(rb * rb, axis=1) / P
                out["train_noise_variance"][:, m] = np.sum(rn * rn, axis=1) / P
                out["train_thermal_variance"][:, m] = np.sum(rt * rt, axis=1) / P
                m += 1
            if i == h.size:
                break
            drift = A @ Wt + gl[i] * Wt
            drift[..., :2] -= force
            Wt -= (eta[i] * h[i]) * drift
            if sd[i] > 0:
                Wt[..., 2] += sd[i] * rng.standard_normal((B, N))
        return {k: x[:, inv] for k, x in out.items()}

    attrs = {"kind": "simulation", "method": "euler-maruyama", "dt": float(dt)}
    if schedule is not None:
        attrs["schedule"] = schedule.describe()
    return _chunked(problem, t, R, seed, per_chunk, attrs, progress)


# ---------------------------------------------------------------------------------------------
# Mode amplitudes: exact samples of w_k(t) for the single-mode processes
# ---------------------------------------------------------------------------------------------
def _ou_step(rate: np.ndarray, dt: float, T: float) -> tuple[np.ndarray, np.ndarray]:
    """Decay e^{-rate dt} and noise standard deviation of an exact OU step (Brownian at rate 0)."""
    decay = np.exp(-rate * dt)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(rate * dt > 1e-12, -T * np.expm1(-2.0 * rate * dt) / np.where(rate > 0, rate, 1.0),
                       2.0 * T * dt)
    return decay, np.sqrt(np.maximum(var, 0.0))


def simulate_modes(problem: Problem, modes: int | Sequence[int], times: float | Sequence[float] | np.ndarray,
                   realizations: int = 1000, seed: int = 0, *, teacher=None,
                   progress: Callable[[int, int], None] | None = None) -> xr.Dataset:
    """Exact samples of the student mode amplitudes w_k(t) (eigenbasis of Λ), one trajectory per data set.

    For each data set X the training SDE is solved exactly in the eigenbasis of XᵀX + gI (no time
    step): the mean V diag((1 - e^{-d t})/d) Vᵀ Xᵀ y, plus the Langevin part sampled as exact
    Ornstein-Uhlenbeck steps between the sorted times in every direction (the null space of XᵀX
    relaxes at rate g, or diffuses when g = 0). Label noise ε ~ N(0, σ²) (teacher tail included)
    is sampled. Each trajectory is an exact joint sample over the times.

    Parameters
    ----------
    problem : Problem
    modes : int or sequence of int
        1-based mode indices k.
    times : sequence of float
        Distinct finite times t >= 0.
    realizations : int
        Number of data sets (>= 2), one trajectory each.
    seed : int
        Non-negative seed; the data sets X are those of :func:`simulate` with the same seed.
    teacher : None, "random" or array (N,)
        None → the fixed teacher w̄_k = sqrt(v_k) (every mode at its typical size); "random" →
        w̄ ~ N(0, diag v) per data set; an array → that fixed teacher.

    Returns
    -------
    xarray.Dataset
        ``amplitude`` (realization, mode, time) and ``teacher`` (realization, mode), as
        :func:`kdmft.theory.single_mode.sample_modes`; seed, realizations, problem in attrs.
    """
    from .theory.single_mode import check_finite_times, check_mode_indices, resolve_teacher

    if not isinstance(problem, Problem):
        raise InvalidParameterError("problem", "a kdmft.Problem", type(problem).__name__)
    k = check_mode_indices(modes, problem.modes) - 1
    t = check_finite_times(times)
    _, R = _check_common(problem, t, realizations, seed)
    v = problem.task_power
    P, N = problem.samples, problem.modes
    g, T, s2 = problem.weight_decay, problem.temperature, problem.effective_noise_var
    fixed = resolve_teacher(teacher, v)
    order = np.argsort(t)
    ts = t[order]
    gaps = np.diff(np.r_[0.0, ts])
    out = np.empty((R, k.size, t.size))
    wout = np.empty((R, k.size))
    for start, _, X in _data_sets(problem, R, seed):                # the same X as simulate()
        size = X.shape[0]
        # A second stream per chunk: the data sets X stay those of simulate() with the same seed.
        sub = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(start // CHUNK, 1)))
        wbar = (sub.standard_normal((size, N)) * np.sqrt(v) if fixed is None
                else np.broadcast_to(fixed, (size, N)))
        eps = sub.standard_normal((size, P)) * math.sqrt(s2)
        y = (X @ wbar[..., None])[..., 0] + eps
        s, V, keep, _ = _spectral(X)
        d = s + g
        q = np.einsum("bnr,bpn,bp->br", V, X, y)                  # Vᵀ Xᵀ y
        Vk = V[:, k, :]                                           # (B, K, r)
        x = np.zeros_like(s)                                      # Langevin part, kept directions
        z = np.zeros((size, N))                                   # isotropic OU at rate g (null space)
        traj = np.empty((size, k.size, t.size))
        for i, (tt, gap) in enumerate(zip(ts, gaps, strict=True)):
            if T > 0 and gap > 0:
                dec, sd = _ou_step(d, gap, T)
                x = dec * x + sd * sub.standard_normal(x.shape)
                dec0, sd0 = _ou_step(np.array(g), gap, T)
                z = dec0 * z + sd0 * sub.standard_normal(z.shape)
            with np.errstate(invalid="ignore", divide="ignore"):
                b = np.where(keep, -np.expm1(-d * tt) / np.where(keep, d, 1.0), 0.0)
            w = np.einsum("bkr,br->bk", Vk, b * q + x * keep)
            if T > 0:
                # null-space projection of z: z - V Vᵀ z (V is zero on dropped directions)
                w += z[:, k] - np.einsum("bkr,br->bk", Vk, np.einsum("bnr,bn->br", V, z))
            traj[:, :, i] = w
        out[start:start + size] = traj[:, :, np.argsort(order)]
        wout[start:start + size] = wbar[:, k]
        if progress is not None:
            progress(start + size, R)
    return xr.Dataset(
        {"amplitude": (("realization", "mode", "time"), out, {"long_name": "w_k(t) (exact simulation)"}),
         "teacher": (("realization", "mode"), wout, {"long_name": "teacher amplitude w̄_k"})},
        coords={"mode": k + 1, "time": t},
        attrs={"kind": "mode_samples", "method": "exact", "seed": int(seed), "realizations": R,
               "kdmft_version": __version__,
               "teacher": "random" if fixed is None else ("sqrt(v)" if teacher is None else "given"),
               **problem.attrs()})
