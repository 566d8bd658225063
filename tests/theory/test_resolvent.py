"""The self-consistency G(z): physical branch, against an independent fixed point and all roots."""

from __future__ import annotations

import numpy as np
import pytest

from kdmft.errors import ConvergenceError
from kdmft.theory.contour import TalbotRule
from kdmft.theory.resolvent import _verify, solve_kappa


def _fixed_point_ru(w, lam, P, iters=400000, tol=1e-14):
    """Damped fixed point in R_u from 0 (THEORY.md section 4), written independently here."""
    ru = np.zeros_like(w)
    for _ in range(iters):
        new = (lam[None, :] / (w[:, None] + P * lam[None, :] / (1 + ru[:, None]))).sum(1)
        done = np.max(np.abs(new - ru)) < tol * (1 + np.max(np.abs(ru)))
        ru = 0.5 * ru + 0.5 * new
        if done:
            break
    return ru


@pytest.mark.parametrize("P", [30, 100, 300], ids=lambda P: f"P{P}")
@pytest.mark.parametrize("g", [0.0, 1e-3], ids=lambda g: f"g{g}")
@pytest.mark.parametrize("t", [0.01, 10.0, 1e4], ids=lambda t: f"t{t:g}")
def test_kappa_matches_damped_fixed_point(P, g, t):
    lam = np.arange(1, 101) ** -1.5
    rule = TalbotRule.for_window(24, t, 0.7)
    w = rule.z + g
    kappa = solve_kappa(w, lam, P)
    ru = kappa / w * (lam[None, :] / (kappa[:, None] + P * lam[None, :])).sum(1)
    ref = _fixed_point_ru(w, lam, P)
    np.testing.assert_allclose(ru, ref, rtol=1e-9)
    assert np.all(ru.imag[1:] < 0)  # Im R_u opposite to Im z on the upper half contour
    assert kappa[0].imag == 0 and kappa[0].real > 0


def _all_roots(w, lam, P):
    """All roots κ of κ (1 - Σ λ/(κ + Pλ)) = w, as polynomial roots (small N only)."""
    poles = [np.poly1d([1.0, P * lk]) for lk in lam]
    prod = np.poly1d([1.0])
    for q in poles:
        prod = prod * q
    # κ Π(κ+Pλ_j) - κ Σ_k λ_k Π_{j≠k}(κ+Pλ_j) - w Π(κ+Pλ_j) = 0
    s = np.poly1d([0.0])
    for k, lk in enumerate(lam):
        others = np.poly1d([1.0])
        for j, q in enumerate(poles):
            if j != k:
                others = others * q
        s = s + lk * others
    poly = np.poly1d([1.0, 0.0]) * prod - np.poly1d([1.0, 0.0]) * s - w * prod
    return poly.roots


@pytest.mark.parametrize("w", [0.3 + 0.2j, -0.05 + 0.01j, -2.0 + 0.3j, 1e-4 + 1e-3j])
def test_physical_root_is_unique_and_chosen(w):
    lam = np.array([1.0, 0.35, 0.19, 0.125])
    P = 3  # below the threshold N = 4
    roots = _all_roots(w, lam, P)
    physical = roots[roots.imag * np.sign(w.imag) > 0]
    assert physical.size == 1  # the sign condition identifies one root
    kappa = solve_kappa(np.array([w]), lam, P)
    assert kappa[0] == pytest.approx(physical[0], rel=1e-9)
    for r in roots[roots.imag * np.sign(w.imag) <= 0]:  # every other root is rejected
        with pytest.raises(ConvergenceError, match="physical branch"):
            _verify(np.array([r]), np.array([w]), lam, P, np.array([True]))


def test_bad_start_still_lands_on_physical_branch():
    lam = np.arange(1, 51) ** -1.5
    rule = TalbotRule.for_window(24, 100.0, 0.7)
    w = rule.z + 0.0
    good = solve_kappa(w, lam, 40)
    bad_start = -np.conj(good) * 3.0 + 5.0
    again = solve_kappa(w, lam, 40, start=bad_start)
    np.testing.assert_allclose(again, good, rtol=1e-10)


def test_rejects_lower_half_plane():
    with pytest.raises(ValueError):
        solve_kappa(np.array([1.0 - 1.0j]), np.ones(3), 2)
