"""Analysis of learning curves: the optimal stopping time.

t* minimises the continuous theory curve E(t) (not an argmin over an output grid): a coarse
logarithmic scan brackets the minimum, then Brent's method refines it in log t.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from .errors import InvalidParameterError
from .model import Problem

__all__ = ["StoppingResult", "optimal_stopping"]


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


def optimal_stopping(problem: Problem, *, t_min: float = 1e-3, t_max: float = 1e6,
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
