"""Effective single-mode processes of the DMFT (THEORY.md section 3).

The DMFT decouples the modes: each student amplitude w_k(t) (in the eigenbasis of Λ) is an
independent Gaussian process. With w(0) = 0 and the teacher amplitude w̄_k given,

    E[w_k(t) | w̄_k]                = m_k(t) w̄_k,        m_k = 1 - a_k,   a_k = R_k * (δ + g)
    Cov[w_k(t), w_k(s) | w̄_k]      = c_k(t, s)
                                   = P λ_k (R_k ⊗ R_k)[C_Δ](t, s) + 2 ∫ R_k(t-u) R_k(s-u) T(u) du

where the first term is the data fluctuation φ_k (it carries the label noise, the teacher modes
seen through the residuals and, through C_Δ, the Langevin noise of the other modes) and the
second the mode's own Langevin noise. ``m_k`` is the learned fraction of the teacher (0 at
t = 0, → Pλ_k G/(g + Pλ_k G) as t → ∞). A random teacher w̄_k ~ N(0, v_k) makes the marginal
Gaussian with mean 0 and covariance c_k + v_k m_k(t) m_k(s). Consistency: with w̄_k² = v_k,
Σ_k λ_k [v_k a_k(t)² + c_k(t, t)] is the test error E(t).

The two-time functions come from the time-domain solver (:mod:`kdmft.theory.timedomain`) on a
uniform grid of step ``dt`` (second order), interpolated to the requested times; training
schedules are supported as there.

Compare with :func:`kdmft.simulate.simulate_modes` (exact microscopic samples of w_k(t)) through
:func:`compare_modes`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import xarray as xr
from scipy import stats

from .._version import __version__
from ..errors import ConvergenceError, InvalidParameterError
from ..model import Problem
from . import _warn_finite_size

__all__ = ["mode_process", "sample_modes", "compare_modes", "check_mode_indices", "check_finite_times",
           "resolve_teacher",
           "MAX_MODE_STEPS"]

#: Largest grid accepted by :func:`mode_process`: the two-time transform costs O(n²) memory
#: (about 1.5 GB at n = 1200).
MAX_MODE_STEPS = 1200


def check_mode_indices(modes: int | Sequence[int], N: int, name: str = "modes") -> np.ndarray:
    """Validate 1-based mode indices k in [1, N] (k = 1 is the largest eigenvalue); returns them."""
    try:
        k = np.atleast_1d(np.asarray(modes))
    except (TypeError, ValueError):
        raise InvalidParameterError(name, f"integers in [1, {N}]", modes) from None
    integral = k.dtype.kind in "iu" or (k.dtype.kind == "f" and np.all(np.isfinite(k)) and np.all(k == np.round(k)))
    if k.ndim != 1 or k.size == 0 or not integral:
        raise InvalidParameterError(name, f"a non-empty list of integers in [1, {N}]", modes)
    k = k.astype(int)
    bad = (k < 1) | (k > N)
    if bad.any():
        raise InvalidParameterError(name, f"integers in [1, {N}] (1 = largest eigenvalue)", int(k[bad][0]))
    if np.unique(k).size != k.size:
        raise InvalidParameterError(name, "distinct mode indices", modes)
    return k


def check_finite_times(times) -> np.ndarray:
    """Validate distinct finite times t >= 0 (the single-mode processes live on a time grid)."""
    from . import check_times

    t = check_times(times)
    if np.isinf(t).any():
        raise InvalidParameterError("times", "finite (the single-mode process is computed on a time grid)", "inf")
    if np.unique(t).size != t.size:
        raise InvalidParameterError("times", "distinct times", [float(x) for x in t])
    return t


def mode_process(problem: Problem, modes: int | Sequence[int], times: float | Sequence[float] | np.ndarray, *,
                 dt: float = 1e-2, schedule=None) -> xr.Dataset:
    """Mean factor and two-time covariance of the effective single-mode processes w_k(t).

    Parameters
    ----------
    problem : Problem
        The learning problem.
    modes : int or sequence of int
        1-based mode indices k (k = 1: largest eigenvalue λ_1).
    times : sequence of float
        Distinct finite times t >= 0 (SDE units).
    dt : float
        Step of the time-domain grid (second order; the grid has max(times)/dt + 1 points, at
        most :data:`MAX_MODE_STEPS`).
    schedule : kdmft.schedules.Schedule, optional
        Learning-rate / weight-decay / temperature schedule.

    Returns
    -------
    xarray.Dataset
        ``mean_factor`` (mode, time): m_k(t), so that E[w_k(t) | w̄_k] = m_k(t) w̄_k;
        ``covariance`` (mode, time, time_s): Cov[w_k(t), w_k(s) | w̄_k]; ``variance`` (mode, time),
        its diagonal; coordinates ``mode`` (k), ``eigenvalue`` and ``task_power`` (per mode),
        ``time`` and ``time_s`` (the same times); the problem, dt and version in attrs.
    """
    if not isinstance(problem, Problem):
        raise InvalidParameterError("problem", "a kdmft.Problem", type(problem).__name__)
    k = check_mode_indices(modes, problem.modes)
    t = check_finite_times(times)
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not math.isfinite(dt) or dt <= 0:
        raise InvalidParameterError("dt", "a positive finite number", dt)
    tmax = float(t.max())
    lam, v = problem.eigenvalues, problem.task_power
    if tmax == 0.0:
        a = np.ones((k.size, t.size))
        cov = np.zeros((k.size, t.size, t.size))
    else:
        if tmax / dt + 1 > MAX_MODE_STEPS:   # before any grid is allocated
            raise InvalidParameterError(
                "dt", f"at least t_max / {MAX_MODE_STEPS - 1} = {tmax / (MAX_MODE_STEPS - 1):.3g} for "
                f"t_max = {tmax:.6g}", dt, detail=f"{tmax / dt + 1:.3g} grid points; the single-mode covariance "
                "needs O(n²) memory")
        tpos = t[t > 0]
        if float(tpos.min()) < 8.0 * dt:
            raise InvalidParameterError("dt", f"at most the smallest positive time / 8 = {tpos.min() / 8:.3g}", dt,
                                        detail="each time needs 8 steps for the accuracy check at 2 dt")
        a, cov = _mode_moments(problem, k - 1, t, float(dt), schedule)
        a2, cov2 = _mode_moments(problem, k - 1, t, 2.0 * float(dt), schedule)
        _check_mode_accuracy(k, t, dt, a, cov, a2, cov2)
    _warn_finite_size(problem, t)
    var = np.maximum(np.einsum("ktt->kt", cov), 0.0)
    attrs = {"kind": "mode_process", "method": "time-domain", "dt": float(dt), "kdmft_version": __version__,
             **problem.attrs()}
    if schedule is not None:
        attrs["schedule"] = schedule.describe()
    time_attrs = {"long_name": "training time t", "units": "SDE time"}
    return xr.Dataset(
        {"mean_factor": (("mode", "time"), 1.0 - a,
                         {"long_name": "learned fraction m_k(t): E[w_k(t) | w̄_k] = m_k(t) w̄_k"}),
         "covariance": (("mode", "time", "time_s"), cov,
                        {"long_name": "Cov[w_k(t), w_k(s) | w̄_k]", "units": "weight² (teacher units)"}),
         "variance": (("mode", "time"), var, {"long_name": "Var[w_k(t) | w̄_k]", "units": "weight²"})},
        coords={"mode": ("mode", k, {"long_name": "mode index k (1 = largest eigenvalue)"}),
                "eigenvalue": ("mode", lam[k - 1]), "task_power": ("mode", v[k - 1]),
                "time": ("time", t, time_attrs), "time_s": ("time_s", t, time_attrs)},
        attrs=attrs)


def _mode_moments(problem: Problem, ks: np.ndarray, t: np.ndarray, dt: float, schedule):
    """Mean factors a_k (K, nt) and covariances (K, nt, nt) at times t from a grid of step dt."""
    from .timedomain import constant_protocol, interp_matrix, mode_covariances, response_sequences

    g, T = problem.weight_decay, problem.temperature
    if schedule is None or schedule.is_constant:
        n = int(math.ceil(float(t.max()) / dt - 1e-9)) + 1
        grid, tau = constant_protocol(g, T, dt, n), t
    else:
        grid, tau = schedule.protocol_sampler(g, T)(dt, t)
    r, kappa = response_sequences(problem.eigenvalues, problem.samples, grid.g0, grid.dtau, grid.n)
    a_grid, cov_grid = mode_covariances(ks, problem.eigenvalues, problem.task_power, problem.samples,
                                        problem.effective_noise_var, grid, r, kappa)
    W = interp_matrix(grid.dtau * np.arange(grid.n), np.asarray(tau, dtype=np.float64))
    cov = np.einsum("ti,kij,sj->kts", W, cov_grid, W)
    return a_grid @ W.T, 0.5 * (cov + np.swapaxes(cov, 1, 2))


#: Gate of the single-mode accuracy check. The Richardson estimate |v(dt) - v(2 dt)|/3 is
#: pessimistic when (Pλ_1 + g)·2dt > 1 (measured: 1.3 % estimated where the error is 2e-5), so
#: the gate is looser than the learning curve's 1e-2; unresolved stiff modes give 0.2 and more.
MODE_RTOL = 5e-2


def _check_mode_accuracy(k, t, dt, a, cov, a2, cov2) -> None:
    """ConvergenceError where dt and 2 dt disagree by more than MODE_RTOL (Richardson, second order)."""
    RTOL = MODE_RTOL
    var, var2 = np.einsum("ktt->kt", cov), np.einsum("ktt->kt", cov2)
    m, m2 = 1.0 - a, 1.0 - a2
    for name, x, x2 in (("variance", var, var2), ("mean factor", m, m2)):
        err = np.abs(x - x2) / 3.0
        floor = 1e-3 * np.max(np.abs(x), axis=1, keepdims=True) + 1e-14
        bad = err > RTOL * np.abs(x) + floor
        if bad.any():
            i, j = (int(q[0]) for q in np.nonzero(bad))
            raise ConvergenceError(
                f"single-mode process: estimated relative error {err[i, j] / max(abs(x[i, j]), 1e-300):.2g} of the "
                f"{name} of mode {int(k[i])} at t = {t[j]:.4g} exceeds {RTOL:g} with dt = {dt:g}; use a smaller dt "
                "(P λ_1 + g times dt should be at most about 1)")


def resolve_teacher(teacher, v: np.ndarray) -> np.ndarray | None:
    """The fixed teacher w̄ (N,) from ``teacher``: None → w̄_k = sqrt(v_k); an array; "random" → None."""
    if isinstance(teacher, str):
        if teacher == "random":
            return None
        raise InvalidParameterError("teacher", "None (w̄_k = sqrt(v_k)), 'random' or an array of length N", teacher)
    if teacher is None:
        return np.sqrt(v)
    w = np.asarray(teacher, dtype=np.float64)
    if w.shape != v.shape or not np.all(np.isfinite(w)):
        raise InvalidParameterError("teacher", f"a finite array of length N = {v.size}",
                                    f"shape {w.shape}" if w.shape != v.shape else "non-finite entries")
    return w


def sample_modes(process: xr.Dataset, realizations: int, seed: int = 0, *, teacher=None) -> xr.Dataset:
    """Trajectories of the single-mode processes at the process's times, sampled from the DMFT.

    Parameters
    ----------
    process : xarray.Dataset
        From :func:`mode_process`.
    realizations : int
        Number of independent trajectories (>= 1).
    seed : int
        Non-negative seed.
    teacher : None, "random" or array (N,)
        Teacher amplitudes: None → w̄_k = sqrt(v_k) for every trajectory; "random" → w̄_k ~ N(0, v_k)
        drawn per trajectory; an array → that fixed teacher (all N modes, only the chosen are used).

    Returns
    -------
    xarray.Dataset
        ``amplitude`` (realization, mode, time): w_k(t); ``teacher`` (realization, mode): w̄_k.
    """
    if isinstance(realizations, bool) or not isinstance(realizations, (int, np.integer)) or realizations < 1:
        raise InvalidParameterError("realizations", "an integer >= 1", realizations)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidParameterError("seed", "a non-negative integer", seed)
    k = process["mode"].values
    v = process["task_power"].values
    rng = np.random.default_rng(int(seed))
    R, K, nt = int(realizations), k.size, process.sizes["time"]
    if isinstance(teacher, str) and teacher == "random":
        wbar = rng.standard_normal((R, K)) * np.sqrt(v)
    elif teacher is None:
        wbar = np.broadcast_to(np.sqrt(v), (R, K)).copy()
    else:
        N = int(process.attrs["modes"])
        full = resolve_teacher(teacher, np.ones(N))
        wbar = np.broadcast_to(full[k - 1], (R, K)).copy()
    out = np.empty((R, K, nt))
    m = process["mean_factor"].values
    for i in range(K):
        # Square root by eigh with clamping: the covariance is PSD up to solver error, and
        # t = 0 (zero variance) makes it singular.
        ev, U = np.linalg.eigh(process["covariance"].values[i])
        L = U * np.sqrt(np.maximum(ev, 0.0))
        out[:, i, :] = wbar[:, i, None] * m[i][None, :] + rng.standard_normal((R, nt)) @ L.T
    return xr.Dataset({"amplitude": (("realization", "mode", "time"), out, {"long_name": "w_k(t) (DMFT sample)"}),
                       "teacher": (("realization", "mode"), wbar, {"long_name": "teacher amplitude w̄_k"})},
                      coords={"mode": k, "time": process["time"].values},
                      attrs={"kind": "mode_samples", "method": "dmft", "seed": int(seed),
                             "kdmft_version": __version__})


def compare_modes(process: xr.Dataset, samples: xr.Dataset) -> xr.Dataset:
    """Theory against samples of w_k(t): moments, and the Gaussian shape by a Kolmogorov-Smirnov test.

    For each sample the residual z = (w_k(t) - m_k(t) w̄_k) / sqrt(c_k(t, t)) is N(0, 1) under the
    DMFT, whatever the teacher; the KS test is on z. Moments compare the mean of w_k(t) (theory
    m_k(t) times the mean teacher amplitude) and the variance of the residual w_k - m_k w̄_k
    (theory c_k(t, t)); standard errors are over samples (normal-theory for the variance).

    Returns
    -------
    xarray.Dataset over (mode, time) with ``theory_mean``, ``sample_mean``, ``sample_mean_se``,
    ``theory_variance``, ``sample_variance``, ``sample_variance_se``, ``ks_statistic``,
    ``ks_pvalue`` (NaN where the theory variance is 0, i.e. t = 0).
    """
    p = process.sel(mode=samples["mode"].values, time=samples["time"].values)
    w = samples["amplitude"].values                        # (R, K, nt)
    wbar = samples["teacher"].values                       # (R, K)
    R = w.shape[0]
    if R < 2:
        raise InvalidParameterError("samples", "at least 2 realizations", R)
    m = p["mean_factor"].values                            # (K, nt)
    var_th = p["variance"].values
    resid = w - wbar[:, :, None] * m[None]
    mean = w.mean(axis=0)
    mean_se = w.std(axis=0, ddof=1) / math.sqrt(R)
    rvar = resid.var(axis=0, ddof=1)
    rvar_se = rvar * math.sqrt(2.0 / (R - 1))
    ks = np.full(var_th.shape, np.nan)
    pv = np.full(var_th.shape, np.nan)
    for i in range(var_th.shape[0]):
        for j in range(var_th.shape[1]):
            if var_th[i, j] > 0:
                res = stats.kstest(resid[:, i, j] / math.sqrt(var_th[i, j]), "norm")
                ks[i, j], pv[i, j] = res.statistic, res.pvalue
    dims = ("mode", "time")
    return xr.Dataset(
        {"theory_mean": (dims, m * wbar.mean(axis=0)[:, None] + 0.0), "sample_mean": (dims, mean),
         "sample_mean_se": (dims, mean_se), "theory_variance": (dims, var_th), "sample_variance": (dims, rvar),
         "sample_variance_se": (dims, rvar_se), "ks_statistic": (dims, ks), "ks_pvalue": (dims, pv)},
        coords={"mode": samples["mode"].values, "time": samples["time"].values},
        attrs={"realizations": R, "kdmft_version": __version__})
