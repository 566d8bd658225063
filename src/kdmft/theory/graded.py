"""Graded-grid solver: learning-rate and temperature schedules over long horizons.

The uniform grid of :mod:`kdmft.theory.timedomain` needs t_max/dt steps at a cost O(N n_t²), so
it is capped at :data:`~kdmft.theory.timedomain.MAX_STEPS` steps: t ≤ 200 at dt = 1e-2. Here
the time axis is a *graded* (non-uniform) grid, geometric towards both ends of every
integration window, and the cost does not grow with the horizon.

Reduction
---------
With a constant weight decay g, a learning-rate factor η(t) is a change of time, τ(t) = ∫_0^t η,
and the SDE in τ is the constant-g SDE with temperature T(t(τ)) (THEORY.md section 3, the
responses and the memory kernel stay time-translation invariant). Hence

* bias and label-noise parts (test and train) are the constant-protocol values at τ(t): they
  do not depend on T, and η only reparametrises time. They come from the Laplace solver;
* the thermal parts are one-dimensional convolutions of the temperature with the diagonal of
  the two-time thermal kernel. By the resolvent identity Σ λ_k R_k(z1) R_k(z2)/den =
  (R_u(z1) - R_u(z2))/(z2 - z1) that kernel is R_u(τ1 + τ2) in time, so

      thermal(t)       = 2 ∫_0^t T(t') R_u(2 [τ(t) - τ(t')]) η(t') dt' = 2 ∫ T(t') d_t' [-Q_R(τ(t) - τ(t'))]
      train_thermal(t) = the same with K in place of R_u,

  with the primitives Q_R(ℓ) = ∫_0^ℓ R_u(2ℓ') dℓ' = L⁻¹[R_u(z)/z](2ℓ)/2 and likewise Q_K,
  obtained by Talbot inversion (verified with two contour resolutions, as in the Laplace
  solver). With constant T this is exactly the Laplace solver's thermal part.

Quadrature
----------
For each output time t the window [0, t] is cut into cells with edges geometric from both
ends (``per_decade`` per decade, from 1e-9 t up to t/2; the breakpoints of every schedule are
edges, so steps and kinks are exact), and each cell contributes T(midpoint) times the exact
increment of Q. The rule is second order in the cell size; the error estimate is the
difference to the same rule on every other edge, divided by 3. Where it exceeds the requested
accuracy the density is doubled (up to :data:`MAX_PER_DECADE`), after which a
:class:`~kdmft.errors.ConvergenceError` is raised. τ(t) is integrated with 4-point
Gauss-Legendre on a graded grid of 512 cells per decade.

Cost: O(n_times · per_decade · log(1/1e-9)) evaluations of the schedule and of two Talbot sums,
plus one resolvent solve per window of ratio 4 in time; independent of t_max.

Limits: a weight-decay schedule breaks the time-translation invariance of the responses (it is
a gauge factor only within a bounded spread) and is refused here: use the uniform grid. A
callable schedule that oscillates on a scale much shorter than t far from t = 0 is only resolved
if ``per_decade`` is raised accordingly (the error estimate cannot see aliasing).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConvergenceError, InvalidParameterError
from .contour import TalbotRule, group_windows
from .laplace import NODES, Q_HI, WINDOW_RATIO, laplace_parts
from .resolvent import solve_kappa

__all__ = ["graded_parts", "thermal_primitives", "time_map", "PER_DECADE", "MAX_PER_DECADE"]

PARTS = ("bias", "noise_variance", "thermal_variance",
         "train_bias", "train_noise_variance", "train_thermal_variance")

#: Initial cell edges per decade on each side of an integration window.
PER_DECADE = 32
#: Largest density tried before a ConvergenceError.
MAX_PER_DECADE = 1024
#: Innermost edge at both ends of the window [0, t], relative to t.
SMALLEST = 1e-9
#: Cells per decade of the quadrature of τ(t) = ∫η.
TAU_PER_DECADE = 512
_GL_X, _GL_W = np.polynomial.legendre.leggauss(4)


# ---------------------------------------------------------------------------------------------
# τ(t) = ∫_0^t η
# ---------------------------------------------------------------------------------------------
def _gl(f, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """4-point Gauss-Legendre ∫_a^b f (vectorised over cells)."""
    half = 0.5 * (b - a)
    mid = 0.5 * (b + a)
    x = mid[:, None] + half[:, None] * _GL_X[None, :]
    return half * (f(x) @ _GL_W)


def time_map(schedule, t_max: float):
    """Function t -> τ(t) = ∫_0^t η on [0, t_max] (identity without a learning-rate schedule).

    Cells are geometric from 1e-12 t_max (512 per decade) plus the schedule's breakpoints, each
    integrated with 4-point Gauss-Legendre; a point inside a cell adds the partial cell.
    """
    if schedule is None or schedule.learning_rate is None:
        return lambda t: np.asarray(t, dtype=np.float64).copy()

    def eta(x):
        return schedule.factor("learning_rate", x)

    decades = 12
    nodes = np.unique(np.concatenate([[0.0], np.geomspace(t_max * 10.0**-decades, t_max, decades * TAU_PER_DECADE + 1),
                                      schedule.breakpoints(t_max)]))
    cum = np.r_[0.0, np.cumsum(_gl(eta, nodes[:-1], nodes[1:]))]

    def tau(t):
        t = np.asarray(t, dtype=np.float64)
        flat = t.ravel()
        i = np.clip(np.searchsorted(nodes, flat, side="right") - 1, 0, nodes.size - 2)
        out = cum[i] + _gl(eta, nodes[i], flat)
        return out.reshape(t.shape)

    return tau


# ---------------------------------------------------------------------------------------------
# thermal kernels
# ---------------------------------------------------------------------------------------------
def thermal_primitives(lam: np.ndarray, P: int, g: float, ells: np.ndarray, nodes: int = NODES[0]
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Q_R(ℓ) = ∫_0^ℓ R_u(2ℓ') dℓ' and Q_K(ℓ) = ∫_0^ℓ K(2ℓ') dℓ' at ℓ >= 0 (Talbot inversion).

    Parameters
    ----------
    lam : array (N,)
        Eigenvalues λ_k.
    P : int
        Number of training samples.
    g : float
        Constant weight decay.
    ells : array
        Lags ℓ >= 0 in τ units (any order); Q(0) = 0.
    nodes : int
        Talbot nodes per half contour.

    Returns
    -------
    QR, QK : arrays like ``ells``
    """
    ells = np.asarray(ells, dtype=np.float64)
    uniq, inv = np.unique(ells.ravel(), return_inverse=True)
    qr = np.zeros(uniq.size)
    qk = np.zeros(uniq.size)
    pos = np.flatnonzero(uniq > 0)
    kappa = None
    start = int(pos[0]) if pos.size else uniq.size
    for window in group_windows(2.0 * uniq[start:], WINDOW_RATIO):
        rule = TalbotRule.for_window(nodes, float(window[-1]), Q_HI)
        w = rule.z + g
        kappa = solve_kappa(w, lam, P, start=kappa)
        s1 = (lam[None, :] / (kappa[:, None] + P * lam[None, :])).sum(axis=1)   # K(z)
        wh = rule.half_weights(window)
        sl = slice(start, start + window.size)
        qr[sl] = 0.5 * (wh @ (kappa / w * s1 / rule.z)).real
        qk[sl] = 0.5 * (wh @ (s1 / rule.z)).real
        start += window.size
    if not (np.all(np.isfinite(qr)) and np.all(np.isfinite(qk))):
        raise ConvergenceError("graded solver: the thermal kernel primitives are not finite")
    return qr[inv].reshape(ells.shape), qk[inv].reshape(ells.shape)


# ---------------------------------------------------------------------------------------------
# quadrature
# ---------------------------------------------------------------------------------------------
def _edges(t: float, per_decade: int, breakpoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cell edges of [0, t] (increasing) and the mask of the every-other-edge coarse subset."""
    m = int(round(per_decade * math.log10(0.5 / SMALLEST)))
    m += m % 2                                     # even: the coarse rule keeps both ends
    geo = np.geomspace(SMALLEST * t, 0.5 * t, m + 1)
    keep = np.arange(m + 1) % 2 == 0
    pts = np.concatenate([[0.0, t], geo, t - geo, breakpoints[(breakpoints > 0) & (breakpoints < t)]])
    coarse = np.concatenate([[True, True], keep, keep, np.ones(pts.size - 2 - 2 * geo.size, bool)])
    order = np.argsort(pts, kind="stable")
    pts, coarse = pts[order], coarse[order]
    # Merge duplicates (t/2 from both sides, a breakpoint on an edge): coarse if any copy is.
    uniq, start = np.unique(pts, return_index=True)
    coarse = np.logical_or.reduceat(coarse, start)
    return uniq, coarse


def _stieltjes(temp, edges: np.ndarray, q: np.ndarray) -> float:
    """2 Σ_cells T(midpoint) (Q_left - Q_right): ∫ T d[-Q(τ(t) - τ(t'))] with edges in t'."""
    mid = 0.5 * (edges[1:] + edges[:-1])
    return 2.0 * float(temp(mid) @ (q[:-1] - q[1:]))


def graded_parts(lam: np.ndarray, v: np.ndarray, P: int, g: float, T: float, noise_var: float,
                 times: np.ndarray, *, schedule=None, rtol: float = 1e-6, per_decade: int = PER_DECADE
                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Bias, noise and thermal parts at finite times t > 0 under η and T schedules (graded grid).

    Parameters
    ----------
    lam, v : arrays (N,)
        λ_k and v_k.
    P : int
        Number of training samples.
    g, T, noise_var : float
        Weight decay (constant), base temperature (the schedule's factor multiplies it) and
        label-noise variance.
    times : array
        Finite positive times in SDE units (any order, duplicates allowed).
    schedule : kdmft.schedules.Schedule, optional
        Learning-rate and temperature factors; a non-constant weight-decay factor is refused.
    rtol : float
        Accuracy the thermal quadrature and the Laplace parts must verify.
    per_decade : int
        Initial cell edges per decade (doubled automatically up to :data:`MAX_PER_DECADE`).

    Returns
    -------
    values, errors : dict of arrays
        Per part, the value and its estimated absolute error.
    """
    t = np.asarray(times, dtype=np.float64)
    lam = np.asarray(lam, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if not (isinstance(per_decade, (int, np.integer)) and not isinstance(per_decade, bool)
            and 4 <= per_decade <= MAX_PER_DECADE):
        raise InvalidParameterError("per_decade", f"an integer in [4, {MAX_PER_DECADE}]", per_decade)
    if schedule is not None and schedule.weight_decay is not None:
        wd = schedule.weight_decay
        if wd.kind != "constant":
            raise InvalidParameterError(
                "schedule.weight_decay", "constant on the graded grid (use grid='uniform' for a weight-decay "
                "schedule)", wd.describe())
        g = g * float(wd.params["value"])
    uniq, inverse = np.unique(t, return_inverse=True)
    tau = time_map(schedule, float(uniq[-1]))
    tau_out = tau(uniq)

    vals, errs = laplace_parts(lam, v, P, g, 0.0, noise_var, tau_out, rtol=rtol)
    vals = {k: np.array(vals[k], dtype=np.float64) for k in PARTS}
    errs = {k: np.array(errs[k], dtype=np.float64) for k in PARTS}
    if T > 0:
        def temp(x):
            return T * (np.ones_like(x) if schedule is None else schedule.factor("temperature", x))

        th, th_err = _thermal(lam, P, g, T, uniq, tau, tau_out, temp, schedule, rtol, per_decade)
        for k in ("thermal_variance", "train_thermal_variance"):
            vals[k], errs[k] = th[k], th_err[k]
    return ({k: vals[k][inverse] for k in PARTS}, {k: errs[k][inverse] for k in PARTS})


def _thermal(lam, P, g, T, uniq, tau, tau_out, temp, schedule, rtol, per_decade):
    names = ("thermal_variance", "train_thermal_variance")
    out = {k: np.zeros(uniq.size) for k in names}
    err = {k: np.zeros(uniq.size) for k in names}
    todo = np.arange(uniq.size)
    # Absolute floor: rounding of Q over the window (the kernels are O(Σλ) near ℓ = 0).
    floor = 1e-12 * T * float(np.sum(lam)) * np.maximum(tau_out, 1.0)
    density = per_decade
    while todo.size:
        bps = np.zeros(0) if schedule is None else schedule.breakpoints(float(uniq[todo].max()))
        grids = [_edges(float(uniq[i]), density, bps) for i in todo]
        ells = [tau_out[i] - tau(e) for i, (e, _) in zip(todo, grids, strict=True)]
        flat = np.maximum(np.concatenate(ells), 0.0)
        fine = thermal_primitives(lam, P, g, flat, NODES[0])
        rough = thermal_primitives(lam, P, g, flat, NODES[1])
        left = []
        pos = 0
        for i, (e, coarse), ell in zip(todo, grids, ells, strict=True):
            sl = slice(pos, pos + ell.size)
            pos += ell.size
            for k, name in enumerate(names):
                q = fine[k][sl]
                val = _stieltjes(temp, e, q)
                quad = abs(val - _stieltjes(temp, e[coarse], q[coarse])) / 3.0
                inv = abs(val - _stieltjes(temp, e, rough[k][sl]))
                out[name][i] = val
                err[name][i] = quad + inv
            if any(err[k][i] > rtol * abs(out[k][i]) + floor[i] or not np.isfinite(out[k][i]) for k in names):
                left.append(i)
        if not left:
            break
        if 2 * density > MAX_PER_DECADE:
            i = left[0]
            raise ConvergenceError(
                f"graded solver: the thermal quadrature at t = {uniq[i]:.6g} did not reach rtol = {rtol:g} "
                f"with {density} cells per decade (estimated error {err[names[0]][i]:.2g} of "
                f"{out[names[0]][i]:.6g}); the temperature schedule varies too fast for the grid")
        todo = np.asarray(left)
        density *= 2
    return out, err
