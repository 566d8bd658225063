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
SMALLEST = 1e-6
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


def _integrator(schedule, t_max: float, f):
    """Function t -> ∫_0^t f on [0, t_max]: 4-point Gauss-Legendre on cells geometric from
    1e-12 t_max (512 per decade) plus the schedule's breakpoints; a point inside a cell adds the
    partial cell."""
    decades = 12
    nodes = np.unique(np.concatenate([[0.0], np.geomspace(t_max * 10.0**-decades, t_max, decades * TAU_PER_DECADE + 1),
                                      schedule.breakpoints(t_max)]))
    cum = np.r_[0.0, np.cumsum(_gl(f, nodes[:-1], nodes[1:]))]

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


def gauge_map(schedule, g: float, t_max: float):
    """(g0, Γ): the mean weight decay g0 = γ(t_max)/τ(t_max) and t -> Γ(t) = ∫_0^t η (g(t') - g0) dt'.

    Raises InvalidParameterError when the spread of Γ over [0, t_max] exceeds
    :data:`~kdmft.schedules.MAX_GAUGE_SPREAD` (the same limit as the uniform grid).
    """
    from ..schedules import check_gauge_spread

    def eta(x):
        return np.ones_like(x) if schedule.learning_rate is None else schedule.factor("learning_rate", x)

    tau = _integrator(schedule, t_max, eta)
    gam = _integrator(schedule, t_max, lambda x: eta(x) * g * schedule.factor("weight_decay", x))
    g0 = float(gam(t_max) / tau(t_max))

    def gauge(t):
        return gam(t) - g0 * tau(t)

    check_gauge_spread(gauge(tau.nodes))
    return g0, gauge


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
    """Cell edges of [0, t] (increasing) and their level: 0 on the fine grid only, 1 also on the
    every-other-edge grid, 2 also on the every-fourth-edge grid (ends and breakpoints: level 2)."""
    m = int(round(per_decade * math.log10(0.5 / SMALLEST)))
    m += (-m) % 4                                  # the coarser grids keep both ends
    geo = np.geomspace(SMALLEST * t, 0.5 * t, m + 1)
    j = np.arange(m + 1)
    lev = (j % 2 == 0).astype(int) + (j % 4 == 0)
    bp = breakpoints[(breakpoints > 0) & (breakpoints < t)]
    pts = np.concatenate([[0.0, t], geo, t - geo, bp])
    level = np.concatenate([[2, 2], lev, lev, np.full(bp.size, 2)])
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


def _stieltjes(temp, edges: np.ndarray, q: np.ndarray) -> float:
    """2 Σ_cells T(midpoint) (Q_left - Q_right): ∫ T d[-Q(τ(t) - τ(t'))] with edges in t'."""
    mid = 0.5 * (edges[1:] + edges[:-1])
    return 2.0 * float(temp(mid) @ (q[:-1] - q[1:]))


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


def _sources(nodes: _Nodes, n_out: int, out: np.ndarray, ell: np.ndarray, coef: np.ndarray, atom: np.ndarray,
             atom_cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Source vectors of Σ_p coef_pc Q(ℓ_p, ·) + atom_p [c in atom_cols] Ψ(ℓ_p, ·), per output and column c.

    ŝ_a = c_a Σ_p e^{z_a ℓ_p} (coef_pc / z_a + atom_p), summed over the entries p of each output, with
    a on the contour of ℓ_p's window. Returns full (full nodes x outputs x columns) and half (half
    nodes x outputs x columns, ω-weighted: Σ_full F ŝ = Re Σ_half F h for real-symmetric F).
    """
    import scipy.sparse as sp

    ncol = coef.shape[1]
    full = np.zeros((nodes.z_full.size, n_out, ncol), dtype=np.complex128)
    win = _window_index(ell)
    for k in np.unique(win):
        sel = np.flatnonzero(win == k)
        cols = nodes.full_at[int(k)]
        z, c = nodes.z_full[cols], nodes.c_full[cols]
        e = np.exp(np.outer(ell[sel], z)) * c[None, :]
        # Sums over each output's entries as sparse products: rows (output, column).
        rows = (out[sel, None] * ncol + np.arange(ncol)[None, :]).ravel()
        pick = np.repeat(np.arange(sel.size), ncol)
        by_coef = sp.csr_matrix((coef[sel].ravel(), (rows, pick)), shape=(n_out * ncol, sel.size)) @ e
        by_atom = sp.csr_matrix((atom[sel], (out[sel], np.arange(sel.size))), shape=(n_out, sel.size)) @ e
        block = by_coef.reshape(n_out, ncol, z.size) / z[None, None, :] \
            + by_atom[:, None, :] * atom_cols[None, :, None]
        full[cols] += np.transpose(block, (2, 0, 1))
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


def _refine(uniq, per_decade, schedule, evaluate, names, rtol, floor, what):
    """Evaluate every output time at ``per_decade`` cells per decade and double the density for the
    times whose error estimate exceeds rtol |value| + floor, up to :data:`MAX_PER_DECADE`."""
    out = {k: np.zeros(uniq.size) for k in names}
    err = {k: np.zeros(uniq.size) for k in names}
    todo = np.arange(uniq.size)
    density = per_decade
    while todo.size:
        bps = np.zeros(0) if schedule is None else schedule.breakpoints(float(uniq[todo].max()))
        vals, errs = evaluate(todo, density, bps)
        bad = np.zeros(todo.size, bool)
        for k in names:
            out[k][todo], err[k][todo] = vals[k], errs[k]
            bad |= ~np.isfinite(vals[k]) | (errs[k] > rtol * np.abs(vals[k]) + floor[todo])
        if not bad.any():
            break
        if 2 * density > MAX_PER_DECADE:
            i = int(todo[bad][0])
            k = max(names, key=lambda n: err[n][i] / (abs(out[n][i]) + 1e-300))
            raise ConvergenceError(
                f"graded solver: the {k} at t = {uniq[i]:.6g} did not reach rtol = {rtol:g} with {density} cells "
                f"per decade (estimated error {err[k][i]:.2g} of {out[k][i]:.6g}); {what}")
        todo = todo[bad]
        density *= 2
    return out, err


def _gauge_parts(lam, v, P, g, g0, noise_var, uniq, tau, tau_out, gauge, schedule, rtol, per_decade):
    """Bias and label-noise parts (test and train) under a weight-decay schedule, gauge frame removed.

    In the frame ẽ = e^{Γ} e the responses keep the constant g0; the mean is driven by the measure
    μ = δ_0 + g(t) e^{Γ} dτ and the label noise by e^{Γ}, so each part is ∫∫ Ψ(τ-u, τ-v) μ(du) μ(dv)
    for a 2-D Toeplitz kernel Ψ known in the Laplace domain (THEORY.md section 4). The double
    integral is a Stieltjes sum over the cells of the graded grid against the exact 2-D primitive,
    written as one quadratic form on the Talbot nodes of the windows of the lags.
    """
    names = ("bias", "noise_variance", "train_bias", "train_noise_variance")
    atom_cols = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])      # columns: bias at levels 0-2, noise at 0-2

    def evaluate(todo, density, bps):
        outs, ells, coefs, atoms = [], [], [], []
        for j, i in enumerate(todo):
            e, level = _edges(float(uniq[i]), density, bps)
            ell = tau_out[i] - tau(e)
            coef = np.zeros((e.size, 6))
            for lv in range(3):
                on = np.flatnonzero(level >= lv)
                sub = e[on]
                mid = 0.5 * (sub[1:] + sub[:-1])
                eg = np.exp(gauge(mid))
                m_bias = g * schedule.factor("weight_decay", mid) * eg
                coef[on, lv] = np.r_[m_bias, 0.0] - np.r_[0.0, m_bias]      # Σ_j m_j (Q(ℓ_j) - Q(ℓ_{j+1}))
                coef[on, 3 + lv] = np.r_[eg, 0.0] - np.r_[0.0, eg]
            atom = np.zeros(e.size)
            atom[0] = 1.0                                                 # e(0) = -w̄: lag τ
            keep = ell > 0                                                # ℓ = 0: Q(0, ·) = 0
            outs.append(np.full(int(keep.sum()), j))
            ells.append(ell[keep])
            coefs.append(coef[keep])
            atoms.append(atom[keep])
        o, ell, coef, atom = (np.concatenate(x) for x in (outs, ells, coefs, atoms))
        res = {m: {k: np.zeros((todo.size, 3)) for k in names} for m in NODES}
        for m_nodes in NODES:
            nodes = _Nodes(_window_index(ell), m_nodes)
            K, G = _kernels(nodes, lam, v, P, g0)
            # The second contour only checks the inversion (level 0); outputs in chunks bound memory.
            cols = np.arange(6) if m_nodes == NODES[0] else np.array([0, 3])
            nlev = cols.size // 2
            for c0 in range(0, todo.size, CHUNK):
                sel = (o >= c0) & (o < c0 + CHUNK)
                n_o = min(CHUNK, todo.size - c0)
                full, half = _sources(nodes, n_o, o[sel] - c0, ell[sel], coef[sel][:, cols], atom[sel],
                                      atom_cols[cols])
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
        vals, errs = {}, {}
        for k in names:
            f = res[NODES[0]][k]
            val, quad_err = _romberg(f[:, 0], f[:, 1], f[:, 2])
            inv = np.abs(f[:, 0] - res[NODES[1]][k][:, 0])
            vals[k], errs[k] = val * decay, (quad_err + inv) * decay
        return vals, errs

    floor = np.full(uniq.size, 1e-10 * (float(np.sum(lam * v)) + noise_var))
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
    tmax = float(uniq[-1])
    tau = time_map(schedule, tmax)
    tau_out = tau(uniq)
    wd = None if schedule is None else schedule.weight_decay
    gauge = None
    if wd is not None and wd.kind != "constant":
        g0, gauge = gauge_map(schedule, g, tmax)
        vals, errs = _gauge_parts(lam, v, P, g, g0, noise_var, uniq, tau, tau_out, gauge, schedule, rtol,
                                  per_decade)
    else:
        g0 = g if wd is None else g * float(wd.params["value"])
        vals, errs = laplace_parts(lam, v, P, g0, 0.0, noise_var, tau_out, rtol=rtol)
    vals = {k: np.array(vals.get(k, np.zeros(uniq.size)), dtype=np.float64) for k in PARTS}
    errs = {k: np.array(errs.get(k, np.zeros(uniq.size)), dtype=np.float64) for k in PARTS}
    if T > 0:
        def temp(x):
            f = np.ones_like(x) if schedule is None else schedule.factor("temperature", x)
            return T * f * (1.0 if gauge is None else np.exp(2.0 * gauge(x)))

        th, th_err = _thermal(lam, P, g0, T, uniq, tau, tau_out, temp, schedule, rtol, per_decade)
        decay = 1.0 if gauge is None else np.exp(-2.0 * gauge(uniq))
        for k in ("thermal_variance", "train_thermal_variance"):
            vals[k], errs[k] = th[k] * decay, th_err[k] * decay
    return ({k: vals[k][inverse] for k in PARTS}, {k: errs[k][inverse] for k in PARTS})


def _thermal(lam, P, g, T, uniq, tau, tau_out, temp, schedule, rtol, per_decade):
    """Thermal parts 2 ∫ T d[-Q(τ(t) - τ(t'))] (test: Q_R, train: Q_K) in the gauge frame."""
    names = ("thermal_variance", "train_thermal_variance")

    def evaluate(todo, density, bps):
        grids = [_edges(float(uniq[i]), density, bps) for i in todo]
        ells = [tau_out[i] - tau(e) for i, (e, _) in zip(todo, grids, strict=True)]
        flat = np.maximum(np.concatenate(ells), 0.0)
        fine = thermal_primitives(lam, P, g, flat, NODES[0])
        rough = thermal_primitives(lam, P, g, flat, NODES[1])
        vals = {k: np.zeros(todo.size) for k in names}
        errs = {k: np.zeros(todo.size) for k in names}
        pos = 0
        for j, ((e, level), ell) in enumerate(zip(grids, ells, strict=True)):
            sl = slice(pos, pos + ell.size)
            pos += ell.size
            for k, name in enumerate(names):
                q = fine[k][sl]
                lv = [_stieltjes(temp, e[level >= L], q[level >= L]) for L in range(3)]
                val, quad = _romberg(*lv)
                vals[name][j] = val
                errs[name][j] = quad + abs(lv[0] - _stieltjes(temp, e, rough[k][sl]))
        return vals, errs

    # Absolute floor: rounding of Q over the window (the kernels are O(Σλ) near ℓ = 0).
    floor = 1e-12 * T * float(np.sum(lam)) * np.maximum(tau_out, 1.0)
    return _refine(uniq, per_decade, schedule, evaluate, names, rtol, floor,
                   "the temperature schedule varies too fast for the grid")
