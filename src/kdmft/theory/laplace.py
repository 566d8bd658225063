"""Laplace-domain DMFT solver (THEORY.md section 4): the fast path for constant protocols.

Bias and label-noise parts are inverse *double* Laplace transforms evaluated on the diagonal
t1 = t2 = t. With A_k = R_k (1 + g/z), S(z1, z2) = Σ λ_k² R_k(z1) R_k(z2) and
den = 1 - P G(z1) G(z2) S:

    bias:  Σ λ_k v_k A_k(z1) A_k(z2) / den
    noise: σ² P G1 G2 S / (z1 z2 den)
    train: G1 G2 [C_u + σ²/(z1 z2)]

The thermal parts need no double transform. By the resolvent identity the two-time thermal
kernel Σ λ_k R_k(z1) R_k(z2) / den equals (R_u(z1) - R_u(z2)) / (z2 - z1), whose diagonal in
time is R_u(2τ); hence

    thermal(t) = 2T ∫_0^t R_u(2τ) dτ = T · L^{-1}[R_u(z)/z](2t),

and likewise the train thermal part with K(z) = 1 - G(z) in place of R_u. These single
inversions avoid the singular set z1 + z2 = 0 altogether and meet the closed forms
T R_u(0) and T (1 - G(0)) at t -> inf.

Accuracy control: every quantity is computed with two Talbot rules (24 and 20 nodes per half
contour); the difference plus a rounding bound is the error estimate, and a result whose
estimate exceeds ``rtol · |value| + atol`` raises :class:`~kdmft.errors.ConvergenceError`
instead of being returned.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConvergenceError
from .contour import TalbotRule, group_windows
from .resolvent import _blocks, solve_kappa

__all__ = ["laplace_parts", "PARTS"]

PARTS = ("bias", "noise_variance", "thermal_variance",
         "train_bias", "train_noise_variance", "train_thermal_variance")
_EPS = np.finfo(np.float64).eps

# Contour design (see module docstring of .contour): window ratio and q at its largest time.
WINDOW_RATIO = 4.0
Q_HI = 0.7
NODES = (24, 20)


def _complex_products(z: np.ndarray, nu: int) -> np.ndarray:
    """[R Rᵀ | R conj(R[1:])ᵀ] (nu x 2nu-1) from the real Gram matrix of [Re R; Im R]."""
    xx, yy = z[:nu, :nu], z[nu:, nu:]
    xy, yx = z[:nu, nu:], z[nu:, :nu]
    rrt = (xx - yy) + 1j * (xy + yx)
    rrh = (xx + yy) + 1j * (yx - xy)
    return np.concatenate([rrt, rrh[:, 1:]], axis=1)


def _window_values(rule, kappa, t, lam, v, P, g, T, s2):
    """All six parts (and rounding magnitudes) at the times ``t`` of one window."""
    z = rule.z
    w = z + g
    nu = z.size
    zf = rule.z_full
    # Per-node quantities (upper half), then the full contour by conjugation.
    k_over_w = kappa / w
    Gup = w / kappa
    s1 = np.zeros(nu, dtype=np.complex128)
    # Real Gram matrices of [Re R; Im R] weighted by λ² and λv (one syrk each, cheaper than
    # complex products); RRᵀ and RRᴴ are read off their blocks below.
    zs = np.zeros((2 * nu, 2 * nu))
    zb = np.zeros((2 * nu, 2 * nu))
    plam = P * lam
    b = kappa.imag
    cr, ci = k_over_w.real[:, None], k_over_w.imag[:, None]
    for sl in _blocks(2 * nu, lam.size):
        a = kappa.real[:, None] + plam[None, sl]
        d = 1.0 / (a * a + (b * b)[:, None])
        qr, qi = a * d, -b[:, None] * d
        ls = lam[sl]
        s1 += qr @ ls + 1j * (qi @ ls)
        m = np.concatenate([cr * qr - ci * qi, cr * qi + ci * qr], axis=0)
        ms = m * ls[None, :]
        zs += ms @ ms.T
        wv = np.sqrt(ls * v[sl])
        if np.any(wv):
            mb = m * wv[None, :]
            zb += mb @ mb.T
    S = _complex_products(zs, nu)
    B = _complex_products(zb, nu)
    Gf = np.concatenate([Gup, np.conj(Gup[1:])])
    GG = Gup[:, None] * Gf[None, :]
    zz = z[:, None] * zf[None, :]
    den = 1.0 - P * GG * S
    A = (1.0 + g / z)[:, None] * (1.0 + g / zf)[None, :]
    bias = A * B / den
    noise = s2 * P * GG * S / (zz * den)
    tbias = GG * bias
    tnoise = GG * (noise + s2 / zz)

    wh = rule.half_weights(t)          # (nt, nu)
    wf = rule.full_weights(t)          # (nt, nf)
    out, mag = {}, {}
    for name, F in (("bias", bias), ("noise_variance", noise),
                    ("train_bias", tbias), ("train_noise_variance", tnoise)):
        out[name] = np.einsum("tj,jl,tl->t", wh, F, wf).real
        mag[name] = np.einsum("tj,jl,tl->t", np.abs(wh), np.abs(F), np.abs(wf))
    # Single inversions at 2t for the thermal parts.
    wh2 = rule.half_weights(2.0 * t)
    ru = k_over_w * s1
    for name, f in (("thermal_variance", T * ru / z), ("train_thermal_variance", T * s1 / z)):
        out[name] = (wh2 @ f).real
        mag[name] = np.abs(wh2) @ np.abs(f)
    return out, mag


def _curve_one_rule(nodes, times, lam, v, P, g, T, s2):
    vals = {k: np.empty(times.size) for k in PARTS}
    mags = {k: np.empty(times.size) for k in PARTS}
    kappa = None
    pos = 0
    for tw in group_windows(times, WINDOW_RATIO):
        rule = TalbotRule.for_window(nodes, float(tw[-1]), Q_HI)
        kappa = solve_kappa(rule.z + g, lam, P, start=kappa)
        o, m = _window_values(rule, kappa, tw, lam, v, P, g, T, s2)
        for k in PARTS:
            vals[k][pos:pos + tw.size] = o[k]
            mags[k][pos:pos + tw.size] = m[k]
        pos += tw.size
    return vals, mags


def default_atol(lam: np.ndarray, v: np.ndarray, noise_var: float, T: float) -> float:
    """Default absolute tolerance of a part: 1e-8 (Σ λ v + σ² + T Σ λ), the scale of the errors."""
    return 1e-8 * (float(np.sum(lam * v)) + noise_var + T * float(np.sum(lam)))


def laplace_parts(lam: np.ndarray, v: np.ndarray, P: int, g: float, T: float, noise_var: float,
                  times: np.ndarray, *, rtol: float = 1e-6, atol: float | None = None
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Bias, noise and thermal parts of the test and train error at finite times t > 0.

    Parameters
    ----------
    lam, v : arrays (N,)
        λ_k and v_k.
    P : int
        Number of training samples.
    g, T, noise_var : float
        Weight decay, temperature and the label-noise variance seen in training.
    times : array
        Finite positive times (any order, duplicates allowed).
    rtol, atol : float
        Accepted error: |error estimate| <= rtol |value| + atol. ``atol`` defaults to
        1e-8 · (Σ λ v + σ² + T Σ λ).

    Returns
    -------
    values, errors : dict of arrays
        Per part (see :data:`PARTS`), the value and its estimated absolute error.
    """
    times = np.asarray(times, dtype=np.float64)
    uniq, inverse = np.unique(times, return_inverse=True)
    lam = np.asarray(lam, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    fine, fmag = _curve_one_rule(NODES[0], uniq, lam, v, P, g, T, noise_var)
    coarse, _ = _curve_one_rule(NODES[1], uniq, lam, v, P, g, T, noise_var)
    if atol is None:
        atol = default_atol(lam, v, noise_var, T)
    values, errors = {}, {}
    for k in PARTS:
        val = fine[k]
        err = np.abs(val - coarse[k]) + 64 * _EPS * fmag[k]
        bad = ~np.isfinite(val) | (err > rtol * np.abs(val) + atol) | (val < -err - atol)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ConvergenceError(
                f"Laplace inversion of {k} at t = {uniq[i]:.6g} could not be verified: value "
                f"{val[i]:.6g}, estimated error {err[i]:.2e} (two contour resolutions disagree); "
                f"try the time-domain solver or a larger rtol")
        val = np.where(val < 0, 0.0, val)  # a negative value within its error bar is zero
        values[k] = val[inverse]
        errors[k] = err[inverse]
    return values, errors
