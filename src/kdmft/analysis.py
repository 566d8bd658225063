"""Analysis of learning curves: the optimal stopping time and power-law (scaling) fits.

t* minimises the continuous theory curve E(t) (not an argmin over an output grid): a coarse
logarithmic scan brackets the minimum, then Brent's method refines it in log t.

:func:`fit_power_law` fits y = A x^b by least squares in log-log coordinates over a given
window or one detected automatically (the widest range where a straight line fits).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

from .errors import InvalidParameterError
from .model import Problem

__all__ = ["StoppingResult", "optimal_stopping", "stopping_window", "DEFAULT_WINDOW",
           "PowerLawFit", "fit_power_law", "population_exponents",
           "population_t_star", "population_optimum"]


@dataclass(frozen=True)
class StoppingResult:
    """Optimal stopping time t* and test error E(t*).

    ``status`` is ``"interior"`` when E(t) has a minimum inside (t_min, t_max);
    ``"decreasing"`` when E keeps falling up to t_max (no early-stopping optimum: t* = t_max,
    and the minimum of the search range is reported); ``"increasing"`` when E rises from t_min.
    """

    t_star: float
    test_error: float
    status: str

    @property
    def has_optimum(self) -> bool:
        return self.status == "interior"


#: t* search window used when the output times span none (fewer than two finite positive times).
DEFAULT_WINDOW = (1e-3, 1e6)


def stopping_window(times: np.ndarray | Sequence[float], t_min: float | None = None,
                    t_max: float | None = None) -> tuple[float, float]:
    """The t* search window for output ``times``: their smallest positive and largest finite time.

    Given bounds win; with fewer than two finite positive times the missing bounds are
    :data:`DEFAULT_WINDOW`. Raises InvalidParameterError unless 0 < t_min < t_max < inf.
    """
    t = np.asarray(times, dtype=np.float64).ravel()
    fin = t[np.isfinite(t) & (t > 0)]
    spans = np.unique(fin).size >= 2
    lo = t_min if t_min is not None else (float(fin.min()) if spans else DEFAULT_WINDOW[0])
    hi = t_max if t_max is not None else (float(fin.max()) if spans else DEFAULT_WINDOW[1])
    if not (isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and 0 < lo < hi < math.inf):
        raise InvalidParameterError("stopping window t_min, t_max", "0 < t_min < t_max < inf (by default the "
                                    "smallest positive and largest finite output time)", (lo, hi))
    return float(lo), float(hi)


def optimal_stopping(problem: Problem, *, t_min: float = DEFAULT_WINDOW[0], t_max: float = DEFAULT_WINDOW[1],
                     variable: str = "test_error", points: int = 61, xtol: float = 1e-8
                     ) -> StoppingResult:
    """Minimise the theory curve ``variable`` over t in [t_min, t_max] (log-uniform search).

    Parameters
    ----------
    problem : Problem
    t_min, t_max : float
        Search range, 0 < t_min < t_max < inf.
    variable : str
        Curve to minimise (default the test error).
    points : int
        Points of the bracketing scan (logarithmic).
    xtol : float
        Absolute tolerance on log(t*).
    """
    from .theory import learning_curve

    if not (0 < t_min < t_max < math.inf):
        raise InvalidParameterError("t_min, t_max", "0 < t_min < t_max < inf", (t_min, t_max))
    grid = np.logspace(math.log10(t_min), math.log10(t_max), int(points))
    ds = learning_curve(problem, grid)
    curve = ds[variable].values
    # Differences below the solver's accuracy are flat, not an optimum (a curve that saturates
    # on a plateau has no early-stopping optimum, however its last digits wiggle).
    err = ds[variable + "_err"].values if variable + "_err" in ds else np.zeros_like(curve)
    flat = 10 * float(err.max()) + 1e-9 * float(np.abs(curve).max())
    i = int(np.argmin(curve))
    if curve[i] >= curve[-1] - flat and curve[i] >= curve[0] - flat:
        status = "increasing" if curve[0] <= curve[-1] else "decreasing"
        j = 0 if status == "increasing" else grid.size - 1
        return StoppingResult(float(grid[j]), float(curve[j]), status)
    if curve[i] >= curve[-1] - flat:
        return StoppingResult(float(grid[-1]), float(curve[-1]), "decreasing")
    if curve[i] >= curve[0] - flat:
        return StoppingResult(float(grid[0]), float(curve[0]), "increasing")

    def f(logt: float) -> float:
        return float(learning_curve(problem, [math.exp(logt)])[variable].values[0])

    lo, hi = math.log(grid[max(i - 1, 0)]), math.log(grid[min(i + 1, grid.size - 1)])
    res = optimize.minimize_scalar(f, bounds=(lo, hi), method="bounded",
                                   options={"xatol": xtol, "maxiter": 200})
    t_star = math.exp(res.x)
    val = float(res.fun)
    if val > curve[i]:  # never worse than the scan
        t_star, val = float(grid[i]), float(curve[i])
    return StoppingResult(t_star, val, "interior")


@dataclass(frozen=True)
class PowerLawFit:
    """Least-squares fit of log y = log A + b log x over ``window``.

    ``slope`` is b (y ∝ x^b; for E ∝ P^-a it is -a), ``slope_ci`` its two-sided confidence
    interval at level ``confidence`` from the t distribution of the regression slope (for a
    deterministic curve it measures the curvature left in the window, not noise), ``prefactor``
    is A, ``window`` the (x_lo, x_hi) actually used, ``n_points`` the points in it and
    ``rms`` the root-mean-square residual in natural-log units.
    """

    slope: float
    slope_ci: tuple[float, float]
    prefactor: float
    window: tuple[float, float]
    n_points: int
    rms: float
    confidence: float

    def predict(self, x: np.ndarray | float) -> np.ndarray:
        """A x^b."""
        return self.prefactor * np.asarray(x, dtype=np.float64) ** self.slope


def _linfit(lx: np.ndarray, ly: np.ndarray) -> tuple[float, float, float, float]:
    """Slope, intercept, slope standard error and rms residual of ly = a + b lx."""
    n = lx.size
    xm, ym = lx.mean(), ly.mean()
    sxx = float(((lx - xm) ** 2).sum())
    b = float(((lx - xm) * (ly - ym)).sum() / sxx)
    a = float(ym - b * xm)
    res = ly - a - b * lx
    ssr = float((res**2).sum())
    se = math.sqrt(ssr / (n - 2) / sxx) if n > 2 else math.inf
    return b, a, se, math.sqrt(ssr / n)


def _auto_window(lx: np.ndarray, ly: np.ndarray, min_points: int, min_decades: float,
                 max_rms: float) -> tuple[int, int]:
    """Indices [i, j] of the widest window (in decades of x) whose straight-line fit has an rms
    residual <= max_rms; if none qualifies, the window of at least min_decades with least rms."""
    n = lx.size
    # prefix sums make every window's regression O(1)
    c = [np.r_[0.0, np.cumsum(q)] for q in (np.ones(n), lx, ly, lx * lx, lx * ly, ly * ly)]
    best, best_key = None, None
    fallback, fallback_rms = None, math.inf
    span = min_decades * math.log(10)
    for i in range(n):
        j = np.arange(i + min_points - 1, n)
        if j.size == 0:
            break
        m, sx, sy, sxx, sxy, syy = (q[j + 1] - q[i] for q in c)
        vxx = sxx - sx * sx / m
        vxy = sxy - sx * sy / m
        vyy = syy - sy * sy / m
        with np.errstate(divide="ignore", invalid="ignore"):
            ssr = np.maximum(vyy - vxy**2 / vxx, 0.0)
            rms = np.sqrt(ssr / m)
        wide = (lx[j] - lx[i]) >= span * (1 - 1e-12)
        ok = wide & (rms <= max_rms) & (vxx > 0)
        if ok.any():
            k = int(np.flatnonzero(ok)[-1])  # widest qualifying window from i
            key = (lx[j[k]] - lx[i], -rms[k])
            if best_key is None or key > best_key:
                best, best_key = (i, int(j[k])), key
        cand = wide & (vxx > 0)
        if cand.any():
            k = int(np.flatnonzero(cand)[np.argmin(rms[cand])])
            if rms[k] < fallback_rms:
                fallback, fallback_rms = (i, int(j[k])), float(rms[k])
    if best is not None:
        return best
    if fallback is not None:
        return fallback
    return 0, n - 1


def fit_power_law(x: np.ndarray, y: np.ndarray, *, window: tuple[float, float] | None = None,
                  confidence: float = 0.95, min_points: int = 5, min_decades: float = 1.0,
                  max_rms: float = 0.02) -> PowerLawFit:
    """Fit y = A x^b in log-log coordinates.

    Parameters
    ----------
    x, y : array_like
        Positive, finite data (points with x <= 0, y <= 0 or non-finite values are dropped).
    window : (x_lo, x_hi), optional
        Fit only x_lo <= x <= x_hi. Default: detected automatically as the widest range of at
        least ``min_decades`` decades and ``min_points`` points whose straight-line fit leaves an
        rms residual <= ``max_rms`` (natural-log units, 0.02 ≈ 2 % scatter); if no range
        qualifies, the range of at least ``min_decades`` decades that fits best.
    confidence : float
        Level of the slope's confidence interval, in (0, 1).
    """
    xa = np.asarray(x, dtype=np.float64).ravel()
    ya = np.asarray(y, dtype=np.float64).ravel()
    if xa.shape != ya.shape:
        raise InvalidParameterError("x, y", "arrays of the same length", (xa.size, ya.size))
    if not (isinstance(confidence, (int, float)) and 0 < confidence < 1):
        raise InvalidParameterError("confidence", "a number in (0, 1)", confidence)
    if int(min_points) < 3:
        raise InvalidParameterError("min_points", "an integer >= 3", min_points)
    keep = np.isfinite(xa) & np.isfinite(ya) & (xa > 0) & (ya > 0)
    if window is not None:
        lo, hi = (float(w) for w in window)
        if not (0 < lo < hi):
            raise InvalidParameterError("window", "(x_lo, x_hi) with 0 < x_lo < x_hi", window)
        keep &= (xa >= lo) & (xa <= hi)
    order = np.argsort(xa[keep])
    lx, ly = np.log(xa[keep][order]), np.log(ya[keep][order])
    if lx.size < 3 or np.ptp(lx) == 0:
        raise InvalidParameterError("x, y", "at least 3 positive finite points with distinct x",
                                    int(lx.size))
    if window is None:
        i, j = _auto_window(lx, ly, min(int(min_points), lx.size), float(min_decades), float(max_rms))
        lx, ly = lx[i:j + 1], ly[i:j + 1]
    b, a, se, rms = _linfit(lx, ly)
    n = lx.size
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 2)) * se if n > 2 else math.inf
    return PowerLawFit(slope=b, slope_ci=(b - half, b + half), prefactor=math.exp(a),
                       window=(math.exp(lx[0]), math.exp(lx[-1])), n_points=n, rms=rms,
                       confidence=float(confidence))


def population_exponents(alpha: float, task_exponent: float = 0.0) -> dict[str, float]:
    """Asymptotic scaling exponents of the population approximation (THEORY.md section 5).

    With λ_k ∝ k^-(1+α), v_k = k^-β, g = 0 and σ² = 0, the population approximation gives
    bias(t) ∝ (Pt)^-r with r = (α+β)/(1+α) and thermal(t) ∝ (T/P)(Pt)^q with q = 1/(1+α), so
    the optimum solves r·bias = q·thermal and (Pt*)^(r+q) ∝ P/T. For β = 0 these are the
    section-5 statements (E ∝ t^-α/(1+α), t* ∝ 1/T independent of P, E(t*) ∝ (P/T)^-α/(1+α));
    β ≠ 0 follows from the same sums (our extension, same approximation).

    Returns
    -------
    dict
        ``E_t``: slope of E against t (gradient flow, unlimited data); ``E_P``: of E(t = inf)
        against P (ridgeless, noiseless, N >> P); ``E_N``: of E against N (teacher wider than
        the student, P >> N); ``Eopt_P``, ``Eopt_T``: of E(t*) against P and T; ``topt_P``,
        ``topt_T``: of t* against P and T; ``bias_over_variance``: B(t*)/V(t*) = q/r.
    """
    a, b = float(alpha), float(task_exponent)
    if not (a > 0 and math.isfinite(a)):
        raise InvalidParameterError("alpha", "a positive finite number", alpha)
    if not (math.isfinite(b) and a + b > 0):
        raise InvalidParameterError("task_exponent", f"a finite number > -alpha = {-a}", task_exponent)
    r = (a + b) / (1 + a)
    q = 1 / (1 + a)
    s = r + q
    return {"E_t": -r, "E_P": -(a + b), "E_N": -(a + b), "Eopt_P": -r / s, "Eopt_T": r / s,
            "topt_P": 1 / s - 1, "topt_T": -1 / s, "bias_over_variance": q / r}


def population_t_star(alpha: float, samples: float, temperature: float, *, task_exponent: float = 0.0,
                      lambda1: float = 1.0) -> float:
    """Optimal stopping time of the population approximation (g = 0, σ² = 0, N, P -> inf).

    Setting d/dt [Σ v_k λ_k e^{-2Pλ_k t} + (T/P) Σ (1 - e^{-2Pλ_k t})] = 0 and replacing the
    sums by integrals over λ = λ_1 k^-(1+α) gives, with b = 1/(1+α) and c = 2Pt*,

        c^(1+βb) = P λ_1^(-βb) Γ(2 - b + βb) / (T Γ(1 - b)),

    which for β = 0 is THEORY.md's t* = α / (2(1+α)T), independent of P and λ_1.
    """
    a, beta = float(alpha), float(task_exponent)
    P, T, l1 = float(samples), float(temperature), float(lambda1)
    if not (a > 0 and P > 0 and T > 0 and l1 > 0):
        raise InvalidParameterError("alpha, samples, temperature, lambda1", "positive numbers",
                                    (alpha, samples, temperature, lambda1))
    b = 1 / (1 + a)
    if 2 - b + beta * b <= 0 or 1 + beta * b <= 0:
        raise InvalidParameterError("task_exponent", f"> {-(1 + a)} (a convergent bias rate)", task_exponent)
    log_c = (math.log(P) - beta * b * math.log(l1) + special.gammaln(2 - b + beta * b)
             - math.log(T) - special.gammaln(1 - b)) / (1 + beta * b)
    return math.exp(log_c) / (2 * P)


def population_optimum(eigenvalues: np.ndarray, task_power: np.ndarray, samples: float, temperature: float, *,
                       t_min: float = 1e-4, t_max: float = 1e8) -> float:
    """t* of the population sums with the actual (finite) spectrum, g = 0, σ² = 0.

    Minimises bias(t) + thermal(t) = Σ v_k λ_k e^{-2Pλ_k t} + (T/P) Σ (1 - e^{-2Pλ_k t}) over log t
    (no integral approximation): the population optimum at finite N. Compared with
    :func:`population_t_star` it isolates the effect of the spectrum's cutoff (for α = 0.5 the
    variance rate Σ λ_k e^{-2Pλ_k t} converges only like N^-1/2); compared with the DMFT t* it
    isolates the finite-P effects. Returns NaN when the minimum lies on the edge of the range.
    """
    from .theory.closed_forms import population_curve

    lam = np.asarray(eigenvalues, dtype=np.float64)
    v = np.asarray(task_power, dtype=np.float64)
    P, T = float(samples), float(temperature)
    if not (P > 0 and T > 0 and 0 < t_min < t_max < math.inf):
        raise InvalidParameterError("samples, temperature, t_min, t_max", "positive, with t_min < t_max",
                                    (samples, temperature, t_min, t_max))

    def energy(logt: np.ndarray) -> np.ndarray:
        c = population_curve(lam, v, P, T, np.exp(np.atleast_1d(logt)))
        return c["bias"] + c["thermal_variance"]

    grid = np.linspace(math.log(t_min), math.log(t_max), 161)
    e = energy(grid)
    i = int(np.argmin(e))
    if i in (0, grid.size - 1):
        return math.nan
    res = optimize.minimize_scalar(lambda x: float(energy(x)[0]), bounds=(grid[i - 1], grid[i + 1]),
                                   method="bounded", options={"xatol": 1e-9})
    return math.exp(res.x)
