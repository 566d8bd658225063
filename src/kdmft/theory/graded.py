"""Graded-grid solver: training schedules over long horizons.

The uniform grid of :mod:`kdmft.theory.timedomain` needs t_max/dt steps at a cost O(N n_t²), so
it is capped at :data:`~kdmft.theory.timedomain.MAX_STEPS` steps: t ≤ 200 at dt = 1e-2. Here
the time axis is a *graded* (non-uniform) grid, geometric towards both ends of every
integration window, and the cost does not grow with the horizon.

Reduction
---------
A learning-rate factor η(t) is a change of time, τ(t) = ∫_0^t η. With a constant weight decay g
the SDE in τ is the constant-g SDE with temperature T(t(τ)) (THEORY.md section 3: the
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

A weight-decay schedule g(t) is a gauge factor: in the frame ẽ = e^{Γ} e, Γ = ∫η(g - g0) dt
with g0 the mean over the window, the responses keep the constant g0 and only the sources
change (the mean is driven by μ = δ_0 + g e^{Γ} dτ, the label noise by e^{Γ}, the Langevin noise by
T e^{2Γ}). The bias and noise parts are then ∫∫ Ψ(τ-u, τ-v) μ(du) μ(dv) for 2-D Toeplitz kernels Ψ
known in the Laplace domain (Σ λ_k v_k R_k R_k / den, P G G S / den and their train versions);
the double integral is one quadratic form on the Talbot nodes of the lags' windows (each lag
on the contour of its own window of ratio 4). The spread of Γ is limited to
:data:`~kdmft.schedules.MAX_GAUGE_SPREAD`, as on the uniform grid.

Quadrature
----------
For each output time t the window [0, t] is cut into cells with edges geometric from both
ends (``per_decade`` per decade, from 1e-6 t up to t/2; the breakpoints of every schedule are
edges, so steps and kinks are exact), and each cell contributes T(midpoint) times the exact
increment of Q. The rule is second order in the cell size; it is evaluated on the grid, on
every other edge and on every fourth edge, and Richardson-extrapolated (fourth order); the
error estimate is the difference of the two extrapolations (measured 5-30 times the true
error) plus the difference of two contour resolutions. Where it exceeds the requested
accuracy the density is doubled (up to :data:`MAX_PER_DECADE`), after which a
:class:`~kdmft.errors.ConvergenceError` is raised. τ(t) is integrated with 4-point
Gauss-Legendre on a graded grid of 512 cells per decade.

Cost: O(n_times · per_decade · log(1/1e-6)) evaluations of the schedule and of two Talbot sums,
plus one resolvent solve per window of ratio 4 in time; with a weight-decay schedule also
O(N n_nodes²) for the kernel matrices (n_nodes = 24 per window, about 25 windows) and
O(n_nodes² n_times) for the quadratic forms. Memory O(n_nodes² + n_nodes n_times). Neither grows
with t_max.

Limits: a weight-decay schedule whose gauge spread exceeds the limit is refused (as on the
uniform grid). A callable schedule that oscillates on a scale much shorter than t far from
t = 0 is only resolved if ``per_decade`` is raised accordingly (the error estimate cannot see
aliasing).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConvergenceError, InvalidParameterError
from ..results import PARTS
from .contour import TalbotRule
from .laplace import Q_HI, WINDOW_RATIO, default_atol, laplace_parts
from .resolvent import solve_kappa

__all__ = ["graded_parts", "thermal_increments", "time_map", "PER_DECADE", "MAX_PER_DECADE"]


#: Initial cell edges per decade on each side of an integration window.
PER_DECADE = 32
#: Largest density tried before a ConvergenceError.
MAX_PER_DECADE = 1024
#: Innermost edge at both ends of the window [0, t], relative to t.
SMALLEST = 1e-6
#: Talbot nodes per half contour: the values, and the check of the inversion. The graded sums
#: weigh kernels at lags over many decades against each other; 28 nodes keep them to ~1e-10
#: where 24 leave ~1e-9 (measured), so the check uses 24.
NODES = (28, 24)
#: Output times (and their τ = ∫η) accepted on the graded grid.
TIME_RANGE = (1e-50, 1e15)
#: Cells per decade of the quadrature of τ(t) = ∫η.
TAU_PER_DECADE = 512
#: Output times per block of the weight-decay quadratic forms (bounds memory).
CHUNK = 128
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


def _integrator(schedule, t_max: float, f, rtol: float = 1e-10):
    """Function t -> ∫_0^t f on [0, t_max], verified: 4-point Gauss-Legendre on cells geometric
    from min(1e-12 t_max, 1e-3 × the schedule's shortest scale) (512 per decade), plus 4096
    uniform cells and the breakpoints. Each cell is checked against its two halves; the grid is
    doubled until the cumulative integrals agree to ``rtol`` (ConvergenceError after 6 doublings:
    a callable oscillating much faster than t_max / 2e5)."""
    start = min(1e-12 * t_max, 1e-3 * schedule.scale(t_max))
    decades = math.log10(t_max / start)
    bps = schedule.breakpoints(t_max)
    for level in range(7):
        per_decade, uniform = TAU_PER_DECADE << level, 4096 << level
        nodes = np.unique(np.concatenate([[0.0], np.geomspace(start, t_max, int(math.ceil(decades * per_decade)) + 1),
                                          np.linspace(0.0, t_max, uniform + 1), bps]))
        mid = 0.5 * (nodes[1:] + nodes[:-1])
        left, right = _gl(f, nodes[:-1], mid), _gl(f, mid, nodes[1:])
        whole = np.cumsum(_gl(f, nodes[:-1], nodes[1:]))
        halves = np.cumsum(left + right)
        if np.max(np.abs(whole - halves)) <= rtol * np.max(np.abs(halves)) + 1e-300:
            break
    else:
        raise ConvergenceError(f"graded solver: the schedule's integral ∫η (or ∫η g) up to t = {t_max:.6g} could not "
                               "be verified; the learning-rate or weight-decay schedule oscillates too fast")
    cum = np.r_[0.0, halves]

    def integral(t):
        t = np.asarray(t, dtype=np.float64)
        flat = t.ravel()
        i = np.clip(np.searchsorted(nodes, flat, side="right") - 1, 0, nodes.size - 2)
        return (cum[i] + _gl(f, nodes[i], flat)).reshape(t.shape)

    integral.nodes = nodes
    return integral


def time_map(schedule, t_max: float):
    """Function t -> τ(t) = ∫_0^t η on [0, t_max] (identity without a learning-rate schedule)."""
    if schedule is None or schedule.learning_rate is None:
        return lambda t: np.asarray(t, dtype=np.float64).copy()
    return _integrator(schedule, t_max, lambda x: schedule.factor("learning_rate", x))


def gauge_map(schedule, g: float, t_max: float, tau):
    """(g0, Γ, scale): the mean weight decay g0 = γ(t_max)/τ(t_max), t -> Γ(t) = ∫_0^t η (g(t') - g0) dt'
    and the time scale 1/max|dΓ/dt| of the gauge factor; ``tau`` is :func:`time_map` of the schedule.

    Raises InvalidParameterError when the spread of Γ over [0, t_max] exceeds
    :data:`~kdmft.schedules.MAX_GAUGE_SPREAD` (the same limit as the uniform grid).
    """
    from ..schedules import check_gauge_spread

    def eta(x):
        return np.ones_like(x) if schedule.learning_rate is None else schedule.factor("learning_rate", x)

    gam = _integrator(schedule, t_max, lambda x: eta(x) * g * schedule.factor("weight_decay", x))
    g0 = float(gam(t_max) / tau(t_max))

    def gauge(t):
        return gam(t) - g0 * tau(t)

    nodes = gam.nodes
    check_gauge_spread(gauge(nodes))
    # Time scale of the gauge factor e^Γ: 1 / max |dΓ/dt| = 1 / max η |g - g0|.
    mid = 0.5 * (nodes[1:] + nodes[:-1])
    rate = float(np.max(np.abs(eta(mid) * (g * schedule.factor("weight_decay", mid) - g0))))
    return g0, gauge, (1.0 / rate if rate > 0 else math.inf)


# ---------------------------------------------------------------------------------------------
# thermal kernels
# ---------------------------------------------------------------------------------------------
def thermal_increments(lam: np.ndarray, P: int, g: float, hi: np.ndarray, width: np.ndarray,
                       to_zero: np.ndarray, nodes: int = NODES[0]) -> tuple[np.ndarray, np.ndarray]:
    """Increments Q(hi) - Q(hi - width) of Q_R(ℓ) = ∫_0^ℓ R_u(2ℓ') dℓ' and Q_K(ℓ) = ∫_0^ℓ K(2ℓ') dℓ'.

    Each increment is one Talbot inversion, of F(z) e^{2z hi}(1 - e^{-2z width})/z, on the contour
    of the window of 2 hi: its error is relative to the increment, not to Q (which grows with ℓ
    and would make differences of separately inverted values lose digits). Where ``to_zero``
    the cell is [0, hi] and Q(hi) alone is used (Q(0) = 0 exactly).

    Parameters
    ----------
    lam : array (N,)
        Eigenvalues λ_k.
    P : int
        Number of training samples.
    g : float
        Constant weight decay.
    hi, width : arrays
        Upper ends and widths of the cells in τ units (0 < width <= hi).
    to_zero : bool array
        Cells that reach ℓ = 0.
    nodes : int
        Talbot nodes per half contour.

    Returns
    -------
    dQR, dQK : arrays like ``hi``
    """
    hi = np.asarray(hi, dtype=np.float64)
    dqr = np.zeros(hi.shape)
    dqk = np.zeros(hi.shape)
    win = _window_index(2.0 * hi)
    kappa = None
    for k in np.unique(win):
        sel = np.flatnonzero(win == k)
        rule = TalbotRule.for_window(nodes, WINDOW_RATIO ** float(k), Q_HI)
        w = rule.z + g
        kappa = solve_kappa(w, lam, P, start=kappa)
        s1 = (lam[None, :] / (kappa[:, None] + P * lam[None, :])).sum(axis=1)   # K(z)
        span = np.where(to_zero[sel][:, None], 1.0, -np.expm1(-np.outer(2.0 * width[sel], rule.z)))
        wh = rule.half_weights(2.0 * hi[sel]) * span
        dqr[sel] = 0.5 * (wh @ (kappa / w * s1 / rule.z)).real
        dqk[sel] = 0.5 * (wh @ (s1 / rule.z)).real
    if not (np.all(np.isfinite(dqr)) and np.all(np.isfinite(dqk))):
        raise ConvergenceError("graded solver: the thermal kernel increments are not finite")
    return dqr, dqk


# ---------------------------------------------------------------------------------------------
# quadrature
# ---------------------------------------------------------------------------------------------
def _geo(lo: float, hi: float, per_decade: int) -> np.ndarray:
    """Geometric points lo .. hi, a multiple of 4 cells (the coarser grids keep both ends)."""
    m = max(4, int(round(per_decade * math.log10(hi / lo))))
    m += (-m) % 4
    return np.geomspace(lo, hi, m + 1)


def _edges(t: float, per_decade: int, breakpoints: np.ndarray, scale: float = math.inf
           ) -> tuple[np.ndarray, np.ndarray]:
    """Cell edges of [0, t] (increasing) and their level: 0 on the fine grid only, 1 also on the
    every-other-edge grid, 2 also on the every-fourth-edge grid (ends and breakpoints: level 2).

    Geometric up to t/2 from both ends, starting at min(1e-6 t, 1e-3 ``scale``) (``scale``: the
    schedule's shortest time scale, so that an early change is resolved however long the
    window), and at t' = t also within 1e-3 of the distance to the last breakpoint before t."""
    lo = min(SMALLEST * t, 1e-3 * scale)
    bp = breakpoints[(breakpoints > 0) & (breakpoints < t)]
    # At t' = t as well: a change shortly before t (a late step, a fast schedule seen late) must
    # not fall into one end cell shared by every level of the error estimate.
    lo_t = min(lo, 1e-3 * (t - float(bp.max()))) if bp.size else lo
    right, left = _geo(lo_t, 0.5 * t, per_decade), _geo(lo, 0.5 * t, per_decade)

    def levels(n):
        j = np.arange(n)
        return (j % 2 == 0).astype(int) + (j % 4 == 0)

    pts = np.concatenate([[0.0, t], left, t - right, bp])
    level = np.concatenate([[2, 2], levels(left.size), levels(right.size), np.full(bp.size, 2)])
    order = np.argsort(pts, kind="stable")
    pts, level = pts[order], level[order]
    # Merge duplicates (t/2 from both sides, a breakpoint on an edge): the highest level wins.
    uniq, first = np.unique(pts, return_index=True)
    return uniq, np.maximum.reduceat(level, first)


def _romberg(fine, coarse, coarser):
    """Richardson-extrapolated value of a second-order rule on three nested grids, and its error
    estimate (the difference of the two extrapolations: conservative, the value is fourth order)."""
    r1 = fine + (fine - coarse) / 3.0
    r2 = coarse + (coarse - coarser) / 3.0
    return r1, np.abs(r1 - r2)


def _stieltjes(temp, edges: np.ndarray, level: np.ndarray, inc: np.ndarray, lev: int) -> float:
    """2 Σ_cells T(midpoint) ΔQ on the grid of the edges of level >= ``lev``: ∫ T d[-Q(τ(t) - τ(t'))].

    ``inc`` holds the increments of Q over the fine cells; a coarse cell sums those it contains
    (sums of increments, never differences of accumulated Q, which would cancel digits)."""
    at = np.flatnonzero(level >= lev)
    sub = edges[at]
    mid = 0.5 * (sub[1:] + sub[:-1])
    return 2.0 * float(temp(mid) @ np.add.reduceat(inc, at[:-1]))


# ---------------------------------------------------------------------------------------------
# weight-decay schedules: bias and label-noise parts as quadratic forms on Talbot nodes
# ---------------------------------------------------------------------------------------------
class _Nodes:
    """Talbot nodes of the global lag windows (4^(k-1), 4^k] that occur, half and full contours.

    Every lag ℓ is inverted on the contour of its own window, so a 2-D kernel at (ℓ1, ℓ2) is
    Σ_a Σ_b c_a c_b e^{z_a ℓ1 + z_b ℓ2} F(z_a, z_b) with a, b on the two windows' contours.
    """

    def __init__(self, windows: np.ndarray, m: int):
        self.windows = np.unique(windows)
        zh, ch, fac, zf, cf, src = [], [], [], [], [], []
        self.half_at, self.full_at = {}, {}
        nh = nf = 0
        for k in self.windows:
            rule = TalbotRule.for_window(m, WINDOW_RATIO ** float(k), Q_HI)
            zh.append(rule.z)
            ch.append(rule.c)
            fac.append(np.r_[1.0, np.full(m - 1, 2.0)])
            zf.append(rule.z_full)
            cf.append(np.concatenate([rule.c, np.conj(rule.c[1:])]))
            src.append(nh + np.r_[np.arange(m), np.arange(1, m)])
            self.half_at[int(k)] = slice(nh, nh + m)
            self.full_at[int(k)] = slice(nf, nf + 2 * m - 1)
            nh += m
            nf += 2 * m - 1
        self.z, self.c, self.factor = np.concatenate(zh), np.concatenate(ch), np.concatenate(fac)
        self.z_full, self.c_full = np.concatenate(zf), np.concatenate(cf)
        self.from_half = np.concatenate(src)            # full node -> its upper-half node
        self.conj = np.concatenate([np.r_[np.zeros(m, bool), np.ones(m - 1, bool)] for _ in self.windows])

    def to_full(self, x: np.ndarray) -> np.ndarray:
        """Values at the full nodes from values at the half nodes (first axis), F(z̄) = conj F(z)."""
        y = x[self.from_half].copy()
        y[self.conj] = np.conj(y[self.conj])
        return y


def _window_index(ells: np.ndarray) -> np.ndarray:
    return np.ceil(np.log(ells) / math.log(WINDOW_RATIO) - 1e-9).astype(int)


CELL, TO_ZERO, ATOM = 0, 1, 2


def _sources(nodes: _Nodes, n_out: int, out: np.ndarray, hi: np.ndarray, width: np.ndarray, kind: np.ndarray,
             coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Source vectors of a sum of entries, per output and column c, on the Talbot nodes.

    An entry is a cell of lags [hi - width, hi] with density coef_c (``CELL``: ŝ_a gets
    c_a e^{z_a hi}(1 - e^{-z_a width})/z_a, one inversion per cell on the contour of hi's window,
    so its error is relative to the cell), the cell [0, hi] (``TO_ZERO``: c_a e^{z_a hi}/z_a,
    Q(0) = 0 exactly), or an atom at hi (``ATOM``: c_a e^{z_a hi}). Returns full (full nodes x
    outputs x columns) and half (half nodes x outputs x columns, ω-weighted: Σ_full F ŝ =
    Re Σ_half F h for real-symmetric F).
    """
    import scipy.sparse as sp

    ncol = coef.shape[1]
    full = np.zeros((nodes.z_full.size, n_out, ncol), dtype=np.complex128)
    win = _window_index(hi)
    for k in np.unique(win):
        sel = np.flatnonzero(win == k)
        cols = nodes.full_at[int(k)]
        z, c = nodes.z_full[cols], nodes.c_full[cols]
        e = np.exp(np.outer(hi[sel], z)) * c[None, :]
        kd = kind[sel]
        span = np.where((kd == CELL)[:, None], -np.expm1(-np.outer(width[sel], z)), 1.0)
        e = e * np.where((kd == ATOM)[:, None], 1.0, span / z[None, :])
        # Sums over each output's entries as sparse products: rows (output, column).
        rows = (out[sel, None] * ncol + np.arange(ncol)[None, :]).ravel()
        pick = np.repeat(np.arange(sel.size), ncol)
        block = (sp.csr_matrix((coef[sel].ravel(), (rows, pick)), shape=(n_out * ncol, sel.size)) @ e)
        full[cols] += np.transpose(block.reshape(n_out, ncol, z.size), (2, 0, 1))
    half = np.empty((nodes.z.size, n_out, ncol), dtype=np.complex128)
    for k, hs in nodes.half_at.items():
        half[hs] = full[nodes.full_at[k]][: hs.stop - hs.start] * nodes.factor[hs, None, None]
    return full, half


def _kernels(nodes: _Nodes, lam, v, P, g0):
    """Half x full matrices of the 2-D kernels (bias, train bias, noise, train noise) and G at half nodes."""
    w = nodes.z + g0
    kappa = np.empty_like(w)
    for hs in nodes.half_at.values():
        kappa[hs] = solve_kappa(w[hs], lam, P)
    G = w / kappa
    Gf, kf, wf = nodes.to_full(G), nodes.to_full(kappa), nodes.to_full(w)
    S = np.zeros((w.size, wf.size), dtype=np.complex128)
    B = np.zeros_like(S)
    step = max(1, 4_000_000 // (w.size + wf.size))
    lv = lam * v
    for a in range(0, lam.size, step):
        sl = slice(a, min(lam.size, a + step))
        Rh = kappa[:, None] / (w[:, None] * (kappa[:, None] + P * lam[None, sl]))    # R_k = 1/(w + Pλ_k G)
        Rf = kf[:, None] / (wf[:, None] * (kf[:, None] + P * lam[None, sl]))
        S += (Rh * lam[sl] ** 2) @ Rf.T
        if np.any(lv[sl]):
            B += (Rh * lv[sl]) @ Rf.T
    GG = G[:, None] * Gf[None, :]
    den = 1.0 - P * GG * S
    bias = B / den
    noise = P * GG * S / den
    return {"bias": bias, "train_bias": GG * bias, "noise_variance": noise, "train_noise_variance": GG * noise}, G


def _quadratic(K: np.ndarray, half: np.ndarray, full: np.ndarray) -> np.ndarray:
    """Re Σ_a Σ_b h_a K_ab ŝ_b per output and column (half: half nodes, full: full nodes first)."""
    prod = (K @ full.reshape(full.shape[0], -1)).reshape(K.shape[0], *full.shape[1:])
    return np.einsum("aoc,aoc->oc", half, prod).real


def _chunked(evaluate, todo, density, bps, names, size: int):
    """``evaluate`` over blocks of at most ``size`` output times (memory stays bounded)."""
    parts = [evaluate(todo[c:c + size], density, bps) for c in range(0, todo.size, size)]
    return tuple({k: np.concatenate([p[r][k] for p in parts]) for k in names} for r in range(3))


def _refine(uniq, per_decade, schedule, evaluate, names, rtol, floor, what, chunk: int | None = None):
    """Evaluate every output time at ``per_decade`` cells per decade and double the density for the
    times whose error estimate exceeds rtol |value| + floor, up to :data:`MAX_PER_DECADE`.

    ``chunk``: evaluate at most that many times at once (None: ``evaluate`` bounds its own memory).
    ``evaluate(todo, density, breakpoints)`` returns values, quadrature errors and contour
    (inversion) errors per part; where the contour error alone is too large, refining cannot help
    and the ConvergenceError says so at once. Negative values within their error plus the
    absolute tolerance ``floor`` are zero."""
    out, err = ({k: np.zeros(uniq.size) for k in names} for _ in range(2))
    todo = np.arange(uniq.size)
    density = per_decade
    while todo.size:
        bps = np.zeros(0) if schedule is None else schedule.breakpoints(float(uniq[todo].max()))
        vals, quads, invs = (evaluate(todo, density, bps) if chunk is None
                             else _chunked(evaluate, todo, density, bps, names, chunk))
        bad = np.zeros(todo.size, bool)
        worst = (-1.0, None, None)
        for k in names:
            tol = rtol * np.abs(vals[k]) + floor[todo]
            e = quads[k] + invs[k]
            out[k][todo], err[k][todo] = vals[k], e
            fail = ~np.isfinite(vals[k]) | (e > tol)
            bad |= fail
            if fail.any():
                j = int(np.argmax(np.where(fail, e / tol, -1.0)))
                if e[j] / tol[j] > worst[0] or not np.isfinite(vals[k][j]):
                    worst = (float(e[j] / tol[j]) if np.isfinite(vals[k][j]) else math.inf, k, j)
            if np.any(invs[k] > tol):
                j = int(np.argmax(invs[k] / tol))
                raise ConvergenceError(
                    f"graded solver: the {k} at t = {uniq[todo[j]]:.6g} cannot be verified to rtol = {rtol:g}: the "
                    f"contour inversion alone differs by {invs[k][j]:.2g} of {vals[k][j]:.6g} between two resolutions; "
                    "use a larger rtol")
        if not bad.any():
            break
        if 2 * density > MAX_PER_DECADE:
            _, k, j = worst
            raise ConvergenceError(
                f"graded solver: the {k} at t = {uniq[todo[j]]:.6g} did not reach rtol = {rtol:g} with {density} cells "
                f"per decade (estimated error {err[k][todo[j]]:.2g} of {out[k][todo[j]]:.6g}); {what}")
        todo = todo[bad]
        density *= 2
    for k in names:
        small = (out[k] < 0) & (out[k] >= -(err[k] + floor))
        out[k][small] = 0.0
        if np.any(out[k] < 0):
            i = int(np.flatnonzero(out[k] < 0)[0])
            raise ConvergenceError(f"graded solver: the {k} at t = {uniq[i]:.6g} came out negative ({out[k][i]:.3g}, "
                                   f"estimated error {err[k][i]:.2g}); it is a variance")
    return out, err


def _gauge_parts(lam, v, P, g, g0, noise_var, uniq, tau, tau_out, gauge, schedule, rtol, per_decade,
                 T_scale=0.0, gauge_scale=math.inf):
    """Bias and label-noise parts (test and train) under a weight-decay schedule, gauge frame removed.

    In the frame ẽ = e^{Γ} e the responses keep the constant g0; the mean is driven by the measure
    μ = δ_0 + g(t) e^{Γ} dτ and the label noise by e^{Γ}, so each part is ∫∫ Ψ(τ-u, τ-v) μ(du) μ(dv)
    for a 2-D Toeplitz kernel Ψ known in the Laplace domain (THEORY.md section 4). The double
    integral is a Stieltjes sum over the cells of the graded grid against the exact 2-D primitive,
    written as one quadratic form on the Talbot nodes of the windows of the lags.
    """
    names = ("bias", "noise_variance", "train_bias", "train_noise_variance")
    scale = min(schedule.scale(float(uniq[-1])), gauge_scale)

    def evaluate(todo, density, bps):
        outs, his, widths, kinds, coefs = [], [], [], [], []
        for j, i in enumerate(todo):
            e, level = _edges(float(uniq[i]), density, bps, scale)
            te = tau(e)
            ell = tau_out[i] - te
            n = e.size - 1                                                  # fine cells [e_p, e_p+1]
            coef = np.zeros((n + 1, 6))
            for lv in range(3):
                sub = e[level >= lv]
                mid = 0.5 * (sub[1:] + sub[:-1])
                eg = np.exp(gauge(mid))
                m_bias = g * schedule.factor("weight_decay", mid) * eg
                cell = np.clip(np.searchsorted(sub, e[:-1], side="right") - 1, 0, sub.size - 2)
                coef[:n, lv], coef[:n, 3 + lv] = m_bias[cell], eg[cell]  # density of the level's cell
            coef[n, :3] = 1.0                                               # atom: e(0) = -w̄ at lag τ
            kind = np.r_[np.full(n, CELL), ATOM]
            kind[n - 1] = TO_ZERO                                           # the cell ending at lag 0
            hi = np.r_[ell[:-1], tau_out[i]]
            width = np.r_[np.diff(te), 0.0]                                 # from τ(e), not from ℓ: no
            keep = (hi > 0) & ((width > 0) | (kind != CELL))               # rounding of τ(t) - τ(t')
            outs.append(np.full(int(keep.sum()), j))
            his.append(hi[keep])
            widths.append(width[keep])
            kinds.append(kind[keep])
            coefs.append(coef[keep])
        o, hi, width, kind, coef = (np.concatenate(x) for x in (outs, his, widths, kinds, coefs))
        res = {m: {k: np.zeros((todo.size, 3)) for k in names} for m in NODES}
        for m_nodes in NODES:
            nodes = _Nodes(_window_index(hi), m_nodes)
            K, G = _kernels(nodes, lam, v, P, g0)
            # The second contour only checks the inversion (level 0); outputs in chunks bound memory.
            cols = np.arange(6) if m_nodes == NODES[0] else np.array([0, 3])
            nlev = cols.size // 2
            for c0 in range(0, todo.size, CHUNK):
                sel = (o >= c0) & (o < c0 + CHUNK)
                n_o = min(CHUNK, todo.size - c0)
                full, half = _sources(nodes, n_o, o[sel] - c0, hi[sel], width[sel], kind[sel], coef[sel][:, cols])
                b, n = slice(0, nlev), slice(nlev, 2 * nlev)
                rows, r = slice(c0, c0 + n_o), res[m_nodes]
                r["bias"][rows, :nlev] = _quadratic(K["bias"], half[:, :, b], full[:, :, b])
                r["train_bias"][rows, :nlev] = _quadratic(K["train_bias"], half[:, :, b], full[:, :, b])
                r["noise_variance"][rows, :nlev] = noise_var * _quadratic(K["noise_variance"], half[:, :, n],
                                                                          full[:, :, n])
                resid = np.einsum("a,aoc->oc", G, half[:, :, n]).real      # (G * e^Γ)(τ), the direct residual
                r["train_noise_variance"][rows, :nlev] = noise_var * (
                    _quadratic(K["train_noise_variance"], half[:, :, n], full[:, :, n]) + resid**2)
        decay = np.exp(-2.0 * gauge(uniq[todo]))
        vals, quads, invs = {}, {}, {}
        for k in names:
            f = res[NODES[0]][k]
            val, quad_err = _romberg(f[:, 0], f[:, 1], f[:, 2])
            inv = np.abs(f[:, 0] - res[NODES[1]][k][:, 0])
            vals[k], quads[k], invs[k] = val * decay, quad_err * decay, inv * decay
        return vals, quads, invs

    floor = np.full(uniq.size, default_atol(lam, v, noise_var, T_scale))
    return _refine(uniq, per_decade, schedule, evaluate, names, rtol, floor,
                   "the weight-decay schedule varies too fast for the grid, or its gauge spread costs too much "
                   "precision")


def graded_parts(lam: np.ndarray, v: np.ndarray, P: int, g: float, T: float, noise_var: float,
                 times: np.ndarray, *, schedule=None, rtol: float = 1e-6, per_decade: int = PER_DECADE
                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Bias, noise and thermal parts at finite times t > 0 under a schedule (graded grid).

    Parameters
    ----------
    lam, v : arrays (N,)
        λ_k and v_k.
    P : int
        Number of training samples.
    g, T, noise_var : float
        Base weight decay and temperature (the schedule's factors multiply them) and label-noise
        variance.
    times : array
        Finite positive times in SDE units (any order, duplicates allowed).
    schedule : kdmft.schedules.Schedule, optional
        Learning-rate, weight-decay and temperature factors (the weight-decay gauge spread is
        limited as on the uniform grid).
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
    uniq, inverse = np.unique(t, return_inverse=True)
    lo, hi = TIME_RANGE
    if uniq[0] < lo or uniq[-1] > hi:
        bad = float(uniq[0] if uniq[0] < lo else uniq[-1])
        raise InvalidParameterError("times", f"in [{lo:g}, {hi:g}] on the graded grid (t = 0 and inf are allowed)",
                                    bad)
    tmax = float(uniq[-1])
    tau = time_map(schedule, tmax)
    tau_out = tau(uniq)
    if tau_out[0] < lo:
        raise InvalidParameterError("times", f"such that τ(t) = ∫η dt >= {lo:g} (the learning rate is nearly 0 "
                                    f"before t = {uniq[0]:.3g})", float(uniq[0]))
    wd = None if schedule is None else schedule.weight_decay
    gauge = None
    if wd is not None and wd.kind != "constant":
        g0, gauge, gauge_scale = gauge_map(schedule, g, tmax, tau)
        vals, errs = _gauge_parts(lam, v, P, g, g0, noise_var, uniq, tau, tau_out, gauge, schedule, rtol,
                                  per_decade, T, gauge_scale)
    else:
        g0 = g if wd is None else g * float(wd.params["value"])
        vals, errs = laplace_parts(lam, v, P, g0, 0.0, noise_var, tau_out, rtol=rtol)
    vals = {k: np.array(vals.get(k, np.zeros(uniq.size)), dtype=np.float64) for k in PARTS}
    errs = {k: np.array(errs.get(k, np.zeros(uniq.size)), dtype=np.float64) for k in PARTS}
    if T > 0:
        def temp(x):
            f = np.ones_like(x) if schedule is None else schedule.factor("temperature", x)
            return T * f * (1.0 if gauge is None else np.exp(2.0 * gauge(x)))

        th, th_err = _thermal(lam, v, P, g0, T, noise_var, uniq, tau, tau_out, temp, schedule, rtol, per_decade,
                              math.inf if gauge is None else gauge_scale)
        decay = 1.0 if gauge is None else np.exp(-2.0 * gauge(uniq))
        for k in ("thermal_variance", "train_thermal_variance"):
            vals[k], errs[k] = th[k] * decay, th_err[k] * decay
    return ({k: vals[k][inverse] for k in PARTS}, {k: errs[k][inverse] for k in PARTS})


def _thermal(lam, v, P, g, T, noise_var, uniq, tau, tau_out, temp, schedule, rtol, per_decade,
             gauge_scale=math.inf):
    """Thermal parts 2 ∫ T d[-Q(τ(t) - τ(t'))] (test: Q_R, train: Q_K) in the gauge frame."""
    names = ("thermal_variance", "train_thermal_variance")
    scale = min(math.inf if schedule is None else schedule.scale(float(uniq[-1])), gauge_scale)

    def evaluate(todo, density, bps):
        grids = [_edges(float(uniq[i]), density, bps, scale) for i in todo]
        taus = [tau(e) for e, _ in grids]
        ells = [np.maximum(tau_out[i] - te, 0.0) for i, te in zip(todo, taus, strict=True)]
        hi = np.concatenate([ell[:-1] for ell in ells])
        # Cell widths from τ at the edges, not from the lags: τ(t) - τ(t') rounds to eps τ(t).
        width = np.concatenate([np.diff(te) for te in taus])
        to_zero = np.concatenate([np.r_[np.zeros(te.size - 2, bool), True] for te in taus])
        ok = (hi > 0) & ((width > 0) | to_zero)
        inc = [np.zeros((2, hi.size)) for _ in NODES]
        for r, m_nodes in enumerate(NODES):
            inc[r][:, ok] = thermal_increments(lam, P, g, hi[ok], width[ok], to_zero[ok],
                                               m_nodes)

        vals, quads, invs = ({k: np.zeros(todo.size) for k in names} for _ in range(3))
        pos = 0
        for j, (e, level) in enumerate(grids):
            sl = slice(pos, pos + e.size - 1)
            pos += e.size - 1
            for k, name in enumerate(names):
                lv = [_stieltjes(temp, e, level, inc[0][k][sl], L) for L in range(3)]
                vals[name][j], quads[name][j] = _romberg(*lv)
                invs[name][j] = abs(lv[0] - _stieltjes(temp, e, level, inc[1][k][sl], 0))
        return vals, quads, invs

    floor = np.full(uniq.size, default_atol(lam, v, noise_var, T))
    return _refine(uniq, per_decade, schedule, evaluate, names, rtol, floor,
                   "the temperature schedule varies too fast for the grid", chunk=256)
