"""The DMFT self-consistency G(z) on the physical branch (THEORY.md section 4).

With w = z + g the scalar equation 1/G - 1 = Σ_k λ_k / (w + P λ_k G) is solved in the variable
κ = w / G, for which it reads

    h(κ) = κ G(κ) - w = 0,     G(κ) = 1 - Σ_k λ_k / (κ + P λ_k)

(at z = 0 this is the familiar ridge equation κ = g + κ Σ λ_k/(κ + P λ_k)). Everything else
follows from q_k = 1/(κ + P λ_k):

    R_k(z) = (κ/w) q_k,    R_u = Σ λ_k R_k,    K(z) = 1 - G(z) = Σ λ_k q_k.

Branch selection. κ(w) is a Pick function (Im κ has the sign of Im w). For Im κ > 0,
Im h = Im κ (1 - Σ P λ_k² / |κ + P λ_k|²) - Im w, so every other root with Im κ > 0 would need
Im w < 0: the physical root is the only one in the half plane of w, and for real w > 0 it is
the only root with κ > 0 and h'(κ) > 0. Newton's method is therefore run with a line search
that never leaves that half plane, and each node is verified afterwards (sign of Im κ and of
Im R_u, residual). Nodes where Newton stalls fall back to the damped fixed-point iteration in
R_u started from R_u = 0, which stays on the physical branch, and are polished again.
A node that still fails raises :class:`~kdmft.errors.ConvergenceError`.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConvergenceError

__all__ = ["solve_kappa", "mode_sums"]

_EPS = np.finfo(np.float64).eps
# Bound on the number of complex entries of one (nodes x modes) block, to cap memory.
_BLOCK = 1 << 21


def _blocks(n_nodes: int, n_modes: int):
    step = max(1, _BLOCK // max(n_nodes, 1))
    for start in range(0, n_modes, step):
        yield slice(start, min(n_modes, start + step))


def mode_sums(kappa: np.ndarray, lam: np.ndarray, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Σ_k λ_k q_k and Σ_k λ_k q_k² with q_k = 1/(κ + P λ_k), per node.

    Written in real arithmetic (a = Re κ + P λ_k, b = Im κ, q = (a - ib)/(a² + b²)) because
    complex division dominates the solver's cost at large N.
    """
    s1 = np.zeros(kappa.shape, dtype=np.complex128)
    s2 = np.zeros(kappa.shape, dtype=np.complex128)
    plam = samples * lam
    b = kappa.imag
    for sl in _blocks(kappa.size, lam.size):
        a = kappa.real[:, None] + plam[None, sl]
        d = 1.0 / (a * a + (b * b)[:, None])
        ad = a * d
        ls = lam[sl]
        s1 += ad @ ls - 1j * b * (d @ ls)
        s2 += (ad * ad) @ ls - b * b * ((d * d) @ ls) - 2j * b * ((ad * d) @ ls)
    return s1, s2


def _residual(kappa, w, lam, samples):
    """h(κ), h'(κ) and the scale below which |h| is at rounding level."""
    s1, s2 = mode_sums(kappa, lam, samples)
    h = kappa * (1.0 - s1) - w
    dh = 1.0 - s1 + kappa * s2
    scale = np.abs(w) + np.abs(kappa) * (1.0 + np.abs(s1))
    return h, dh, scale, s1


def _admissible(kappa: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Physical half plane: Im κ has the sign of Im w; κ > 0 for real w."""
    real = w.imag == 0
    return np.where(real, (kappa.real > 0) & (kappa.imag == 0), kappa.imag * np.sign(w.imag) > 0)


def _newton(kappa, w, lam, samples, maxiter):
    """Safeguarded Newton; returns (κ, converged mask)."""
    h, dh, scale, _ = _residual(kappa, w, lam, samples)
    done = np.abs(h) <= 8 * _EPS * scale
    for _ in range(maxiter):
        act = ~done
        if not act.any():
            break
        idx = np.flatnonzero(act)
        k0, h0 = kappa[idx], h[idx]
        step = -h0 / dh[idx]
        real = w[idx].imag == 0
        step = np.where(real, step.real, step)
        frac = np.ones(idx.size)
        pending = np.ones(idx.size, dtype=bool)
        k_new = k0.copy()
        h_new, dh_new, sc_new = h0.copy(), dh[idx].copy(), scale[idx].copy()
        for _ls in range(60):
            p = np.flatnonzero(pending)
            if p.size == 0:
                break
            trial = k0[p] + frac[p] * step[p]
            ht, dht, sct, _ = _residual(trial, w[idx][p], lam, samples)
            ok = _admissible(trial, w[idx][p]) & (np.abs(ht) < np.abs(h0[p]) * (1 - 1e-4 * frac[p]))
            acc = p[ok]
            k_new[acc], h_new[acc], dh_new[acc], sc_new[acc] = trial[ok], ht[ok], dht[ok], sct[ok]
            pending[acc] = False
            frac[p[~ok]] *= 0.5
        stalled = pending
        kappa[idx], h[idx], dh[idx], scale[idx] = k_new, h_new, dh_new, sc_new
        small_step = np.abs(frac * step) <= 4 * _EPS * np.abs(k_new)
        done[idx] = (np.abs(h_new) <= 8 * _EPS * sc_new) | (small_step & ~stalled)
        # A node whose line search found no decrease is at rounding level or stuck; stop it.
        done[idx[stalled]] = True
    return kappa, np.abs(h) <= 1e-9 * scale


def _fixed_point(w, lam, samples, maxiter=200_000, tol=1e-11):
    """Damped fixed point in R_u from R_u = 0 (THEORY.md section 4); returns κ = w (1 + R_u)."""
    ru = np.zeros(w.shape, dtype=np.complex128)
    eta = 0.5
    plam = samples * lam
    active = np.ones(w.shape, dtype=bool)
    for _ in range(maxiter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        g = 1.0 / (1.0 + ru[idx])
        new = np.zeros(idx.size, dtype=np.complex128)
        for sl in _blocks(idx.size, lam.size):
            new += (lam[None, sl] / (w[idx, None] + plam[None, sl] * g[:, None])).sum(axis=1)
        delta = np.abs(new - ru[idx])
        ru[idx] = (1 - eta) * ru[idx] + eta * new
        active[idx] = delta > tol * (1.0 + np.abs(ru[idx]))
    return w * (1.0 + ru)


def solve_kappa(w: np.ndarray, eigenvalues: np.ndarray, samples: int, *,
                start: np.ndarray | None = None, maxiter: int = 200) -> np.ndarray:
    """Physical root κ(w) of κ (1 - Σ_k λ_k/(κ + P λ_k)) = w for each w with Im w >= 0.

    Parameters
    ----------
    w : complex array
        z + g at the contour nodes, upper half plane (real nodes must be > 0).
    eigenvalues : array (N,)
        λ_k > 0.
    samples : int
        P.
    start : complex array, optional
        Initial guesses (for example κ at the same contour angle in the previous time window);
        an inadmissible guess is replaced by the large-|w| asymptote κ ≈ w + Σ λ_k.

    Raises
    ------
    ConvergenceError
        If a node cannot be solved and verified on the physical branch.
    """
    w = np.asarray(w, dtype=np.complex128).ravel()
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if np.any(w.imag < 0) or np.any((w.imag == 0) & (w.real <= 0)):
        raise ValueError("solve_kappa needs Im w >= 0 and w > 0 on the real axis")
    asym = w + lam.sum()
    if start is None:
        kappa = asym.copy()
    else:
        kappa = np.asarray(start, dtype=np.complex128).ravel().copy()
        kappa = np.where(w.imag == 0, kappa.real + 0j, kappa)
        bad = ~_admissible(kappa, w)
        kappa[bad] = asym[bad]
        # On the real axis h is convex and increasing above the root: start from the right.
        real = w.imag == 0
        if real.any():
            hr, _, _, _ = _residual(kappa[real], w[real], lam, samples)
            kr = kappa[real]
            kr[hr.real < 0] = asym[real][hr.real < 0]
            kappa[real] = kr
    kappa, ok = _newton(kappa, w, lam, samples, maxiter)
    if not ok.all():
        bad = np.flatnonzero(~ok)
        kappa[bad] = _fixed_point(w[bad], lam, samples)
        kb, okb = _newton(kappa[bad], w[bad], lam, samples, maxiter)
        kappa[bad] = kb
        ok[bad] = okb
    _verify(kappa, w, lam, samples, ok)
    return kappa


def _verify(kappa, w, lam, samples, ok):
    h, dh, scale, s1 = _residual(kappa, w, lam, samples)
    ru = kappa / w * s1
    real = w.imag == 0
    branch = _admissible(kappa, w) & np.where(real, dh.real > 0, ru.imag * w.imag <= 0)
    good = ok & branch & np.isfinite(kappa) & (np.abs(h) <= 1e-9 * scale)
    if not good.all():
        i = int(np.flatnonzero(~good)[0])
        raise ConvergenceError(
            f"self-consistency G(z) not solved on the physical branch at z + g = {w[i]:.6g} "
            f"(P = {samples}, N = {lam.size}; residual {abs(h[i]):.2e}, kappa = {kappa[i]:.6g})")
