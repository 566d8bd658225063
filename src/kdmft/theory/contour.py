"""Fixed Talbot contour for numerical inverse Laplace transforms.

Nodes s(θ) = r θ (cot θ + i), θ_k = kπ/M, |k| < M (Abate & Valkó, Int. J. Numer. Meth. Eng.
60, 979 (2004)). With dz = i r (1 + iσ(θ)) dθ, σ(θ) = θ + (θ cot θ - 1) cot θ, the Bromwich
integral f(t) = (1/2πi) ∫ F(z) e^{zt} dz becomes the trapezoidal sum

    f(t) ≈ Σ_{|k|<M} c_k F(z_k) e^{z_k t},     c_k = r (1 + iσ_k) / (2M).

Real functions satisfy F(z̄) = conj F(z), so only the M nodes with θ >= 0 are evaluated; the sum
over the full contour is then Re Σ_{k>=0} ω_k F(z_k) e^{z_k t} with ω_0 = c_0, ω_k = 2 c_k.

A contour scaled for the largest time t_hi of a window (r t_hi = 2 M q_hi / 5) serves every time
in [t_hi / ratio, t_hi]; the defaults were chosen by measuring the error on sums of poles spread
over seven decades (see ``benchmarks/contour_accuracy.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TalbotRule", "group_windows"]


@dataclass(frozen=True)
class TalbotRule:
    """Talbot nodes for one window of times, upper half of the contour only.

    Attributes
    ----------
    z : complex array (M,)
        Nodes with Im z >= 0; z[0] = r is real.
    c : complex array (M,)
        Quadrature weights c_k (full-contour weights; the lower half is the conjugate).
    """

    z: np.ndarray
    c: np.ndarray

    @classmethod
    def for_window(cls, nodes: int, t_hi: float, q_hi: float) -> TalbotRule:
        m = int(nodes)
        theta = np.arange(m) * np.pi / m
        r = 2.0 * m * q_hi / (5.0 * t_hi)
        z = np.empty(m, dtype=np.complex128)
        sig = np.zeros(m)
        z[0] = r
        th = theta[1:]
        cot = 1.0 / np.tan(th)
        z[1:] = r * th * (cot + 1j)
        sig[1:] = th + (th * cot - 1.0) * cot
        c = r * (1.0 + 1j * sig) / (2.0 * m)
        return cls(z=z, c=c)

    @property
    def z_full(self) -> np.ndarray:
        """All 2M - 1 nodes: the upper half followed by the conjugates of z[1:]."""
        return np.concatenate([self.z, np.conj(self.z[1:])])

    def full_weights(self, t: np.ndarray) -> np.ndarray:
        """c_k e^{z_k t} on the full contour, shape (len(t), 2M - 1)."""
        zf = self.z_full
        cf = np.concatenate([self.c, np.conj(self.c[1:])])
        return cf[None, :] * np.exp(np.outer(t, zf))

    def half_weights(self, t: np.ndarray) -> np.ndarray:
        """ω_k e^{z_k t} on the upper half (ω_0 = c_0, ω_k = 2 c_k), shape (len(t), M)."""
        w = 2.0 * self.c
        w[0] = self.c[0]
        return w[None, :] * np.exp(np.outer(t, self.z))


def group_windows(times: np.ndarray, ratio: float) -> list[np.ndarray]:
    """Split sorted positive ``times`` into consecutive groups with max/min <= ratio."""
    groups: list[np.ndarray] = []
    i = 0
    n = times.size
    while i < n:
        j = i
        while j + 1 < n and times[j + 1] <= ratio * times[i]:
            j += 1
        groups.append(times[i:j + 1])
        i = j + 1
    return groups
