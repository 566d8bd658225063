"""Typical-case (DMFT) learning curves: one front door, several solvers.

>>> import kdmft
>>> p = kdmft.Problem.power_law(modes=100, alpha=0.5, samples=100, temperature=0.05)
>>> ds = kdmft.learning_curve(p, [0.0, 1.0, 10.0])
>>> float(ds.test_error.sel(time=0.0)) == p.signal_power
True

Solvers (``method``):

``"laplace"``
    THEORY.md section 4: Talbot inversion of the Laplace-domain DMFT, self-verified.
``"time-domain"``
    THEORY.md section 3 with training schedules (``schedule=``). ``grid="uniform"`` (default):
    the two-time equations on a uniform grid of step ``dt`` (second order, t_max <= 20000 dt; see
    :mod:`kdmft.theory.timedomain`). ``grid="graded"``: a non-uniform grid for long horizons
    whose cost does not grow with t_max, self-verified to ``rtol`` (see :mod:`kdmft.theory.graded`).

t = 0 and t = inf are always taken from the closed forms (section 5), whatever the method.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import xarray as xr

from ..errors import DivergenceWarning, FiniteSizeWarning, InvalidParameterError
from ..model import Problem
from ..results import PARTS, curve_dataset, totals
from .closed_forms import initial_errors, population_curve, ridge_kappa, stationary_errors
from .laplace import laplace_parts

__all__ = ["learning_curve", "check_times", "METHODS", "GRIDS", "initial_errors", "stationary_errors",
           "ridge_kappa", "population_curve"]


def _laplace(problem: Problem, times: np.ndarray, rtol: float):
    return laplace_parts(problem.eigenvalues, problem.task_power, problem.samples,
                         problem.weight_decay, problem.temperature, problem.effective_noise_var,
                         times, rtol=rtol)


def _time_domain(problem: Problem, times: np.ndarray, rtol: float, *, dt: float | None = None,
                 schedule=None, grid: str = "uniform"):
    if grid == "graded":
        from .graded import graded_parts

        return graded_parts(problem.eigenvalues, problem.task_power, problem.samples, problem.weight_decay,
                            problem.temperature, problem.effective_noise_var, times, schedule=schedule, rtol=rtol)
    from .timedomain import timedomain_parts

    protocol = None
    if schedule is not None and not schedule.is_constant:
        protocol = schedule.protocol_sampler(problem.weight_decay, problem.temperature)
    return timedomain_parts(problem.eigenvalues, problem.task_power, problem.samples,
                            problem.weight_decay, problem.temperature, problem.effective_noise_var,
                            times, dt=1e-2 if dt is None else dt, protocol=protocol)


#: Solver name -> function(problem, finite positive times, rtol, **options) -> (values, errors).
METHODS: dict[str, Callable] = {"laplace": _laplace, "time-domain": _time_domain}
#: Time grids of the time-domain solver.
GRIDS = ("uniform", "graded")


def check_times(times: float | Sequence[float] | np.ndarray, name: str = "times") -> np.ndarray:
    """Validate times: a non-empty 1-D list of numbers >= 0; +inf allowed, NaN and -inf not."""
    try:
        t = np.atleast_1d(np.asarray(times, dtype=np.float64))
    except (TypeError, ValueError):
        raise InvalidParameterError(name, "a list of non-negative numbers (inf allowed)", times) from None
    if t.ndim != 1 or t.size == 0:
        raise InvalidParameterError(name, "a non-empty list of non-negative numbers (inf allowed)",
                                    times)
    bad = np.isnan(t) | (t < 0)
    if bad.any():
        raise InvalidParameterError(name, "non-negative numbers or inf", float(t[bad][0]))
    return t


def learning_curve(problem: Problem, times: float | Sequence[float] | np.ndarray, *,
                   method: str = "laplace", rtol: float = 1e-6, dt: float | None = None,
                   schedule=None, grid: str | None = None) -> xr.Dataset:
    """Typical test and train error, with bias / noise / thermal split, at the given times.

    Parameters
    ----------
    problem : Problem
        The learning problem (spectrum, task, P, σ², g, T).
    times : float or sequence of float
        Training times t >= 0 in SDE units; ``inf`` gives the stationary (ridge / posterior)
        limit. Order and duplicates are kept.
    method : {"laplace", "time-domain"}
        Solver for 0 < t < inf.
    rtol : float
        Relative accuracy the solver must verify, else it raises ConvergenceError (Laplace
        solver and the graded grid; the uniform grid's accuracy is set by ``dt``, checked
        against 1e-2 and reported in ``*_err``).
    dt : float, optional
        Time step of the uniform time-domain grid (default 1e-2); an error otherwise.
    schedule : kdmft.schedules.Schedule, optional
        Learning-rate / weight-decay / temperature schedule (time-domain solver only; a
        non-constant schedule has no t = inf value).
    grid : {"uniform", "graded"}, optional
        Time grid of the time-domain solver (default "uniform"). "graded" is non-uniform, with
        a cost independent of the horizon: use it for long runs (t_max > 20000 dt).

    Returns
    -------
    xarray.Dataset
        Variables ``test_error``, ``train_error``, ``bias``, ``noise_variance``,
        ``thermal_variance`` and the ``train_*`` parts over dimension ``time``, plus
        ``<name>_err`` estimated absolute solver errors. A divergent t = inf value is ``inf``
        and a :class:`~kdmft.errors.DivergenceWarning` says why.
    """
    if not isinstance(problem, Problem):
        raise InvalidParameterError("problem", "a kdmft.Problem", type(problem).__name__)
    t = check_times(times)
    if not (isinstance(rtol, (int, float)) and 1e-12 <= rtol < 1):
        raise InvalidParameterError("rtol", "a number in [1e-12, 1)", rtol)
    try:
        solver = METHODS[method]
    except KeyError:
        raise InvalidParameterError("method", f"one of {sorted(METHODS)}", method) from None
    options = {}
    if grid is not None and grid not in GRIDS:
        raise InvalidParameterError("grid", f"one of {list(GRIDS)}", grid)
    if dt is not None or schedule is not None or grid is not None:
        if method != "time-domain":
            raise InvalidParameterError("method (--solver)", "'time-domain' when dt, schedule or grid is given",
                                        method)
        options = {"dt": dt, "schedule": schedule, "grid": grid or "uniform"}
        if schedule is not None:
            schedule.check_bases(problem.weight_decay, problem.temperature)
        if grid == "graded" and dt is not None:
            raise InvalidParameterError("dt", "omitted with grid='graded' (its cells are chosen and verified "
                                        "automatically)", dt)
        if schedule is not None and not schedule.is_constant and np.isinf(t).any():
            raise InvalidParameterError("times", "finite with a time-dependent schedule", "inf")

    parts = {k: np.empty(t.size) for k in PARTS}
    errs = {k: np.zeros(t.size) for k in PARTS}
    lam, v = problem.eigenvalues, problem.task_power
    s2 = problem.effective_noise_var
    zero = t == 0
    inf = np.isinf(t)
    mid = ~zero & ~inf
    if zero.any():
        for k, val in initial_errors(lam, v, s2).items():
            parts[k][zero] = val
    if inf.any():
        stat = stationary_errors(lam, v, problem.samples, problem.weight_decay,
                                 problem.temperature, s2)
        for k, val in stat.items():
            parts[k][inf] = val
        diverging = [k for k, val in stat.items() if math.isinf(val)]
        if diverging:
            warnings.warn(_divergence_reason(problem, diverging), DivergenceWarning, stacklevel=2)
    if mid.any():
        vals, e = solver(problem, t[mid], rtol, **options)
        for k in PARTS:
            parts[k][mid] = vals[k]
            errs[k][mid] = e[k]
    _warn_finite_size(problem, t)
    out = totals(parts, problem.teacher_tail)
    err_tot = {"test_error": errs["bias"] + errs["noise_variance"] + errs["thermal_variance"],
               "train_error": errs["train_bias"] + errs["train_noise_variance"]
               + errs["train_thermal_variance"]}
    err_tot.update(errs)
    attrs = {"kind": "theory", "method": method, "rtol": rtol, **problem.attrs()}
    if method == "time-domain":
        attrs["grid"] = grid or "uniform"
        if attrs["grid"] == "uniform":
            attrs["dt"] = 1e-2 if dt is None else dt
        if schedule is not None:
            attrs["schedule"] = schedule.describe()
    return curve_dataset(t, out, attrs, errors=err_tot)


def _warn_finite_size(problem: Problem, t: np.ndarray) -> None:
    """FiniteSizeWarning near the interpolation threshold, where finite N departs from the DMFT.

    With |P - N| <= 0.1 N + 1, weight decay below 3 λ_N (λ_N the smallest eigenvalue) and a variance
    source (T > 0 or label noise), the finite-N mean is pulled up by the smallest eigenvalues of
    XᵀX once the slowest modes are reached, t > 1/(P λ_N). Measured at N = P = 100, g = 0,
    T = 0.1: DMFT below the exact simulation by 1.8 % at t = 100, 4.7 % at 1e3, 11 % at 1e4, 26 %
    at 1e6; at g = λ_N = 1e-3 (σ² = 0.1) by 0.5 % at every t; at N = P = 40, T = 0.1, t = 1e4 by
    31 % (g = 0), 5.6 % (g = λ_N) and 3.7 % (g = 3 λ_N). The deviation shrinks like 1/N.
    """
    P, N = problem.samples, problem.modes
    lam_min = float(problem.eigenvalues.min())
    noisy = problem.temperature > 0 or problem.effective_noise_var > 0
    late = np.isfinite(t) & (t > 1.0 / (P * lam_min))
    if abs(P - N) <= 0.1 * N + 1 and problem.weight_decay < 3.0 * lam_min and noisy and late.any():
        warnings.warn(
            f"finite size: near the interpolation threshold (P = {P}, N = {N}) with g = {problem.weight_decay:g} "
            f"< 3 λ_N = {3 * lam_min:.3g} and T or σ² > 0, a finite-N system lies above the DMFT at t > 1/(Pλ_N) = "
            f"{1.0 / (P * lam_min):.3g}, increasingly with t (at N = P = 100, g = 0: 2 % at t = 100, 26 % at "
            "t = 1e6); the gap shrinks like 1/N, and g of a few λ_N removes it", FiniteSizeWarning, stacklevel=3)


def _divergence_reason(problem: Problem, parts: list[str]) -> str:
    why = []
    if "thermal_variance" in parts:
        why.append(f"the thermal variance grows without bound at g = 0 with T > 0 and "
                   f"P = {problem.samples} <= N = {problem.modes} ("
                   + ("null space of XᵀX)" if problem.samples < problem.modes
                      else "at P = N the smallest eigenvalues of XᵀX approach 0)"))
    if "noise_variance" in parts:
        why.append(f"the label-noise variance diverges at the interpolation threshold "
                   f"P = N = {problem.modes} with g = 0")
    return "t = inf: " + "; ".join(why) + "; the value is reported as inf"
