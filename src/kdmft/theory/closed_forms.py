"""Closed forms every solver must reproduce (THEORY.md section 5).

All functions are pure and take plain arrays: ``lam`` (λ_k), ``v`` (v_k), ``P`` and scalars.
``noise_var`` is the label-noise variance seen in training (σ² plus any teacher tail).
Results are dicts with the keys of :data:`kdmft.results.COMPONENTS`; a divergent value is
``math.inf``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize

__all__ = ["initial_errors", "ridge_kappa", "stationary_errors", "population_curve"]


def initial_errors(lam: np.ndarray, v: np.ndarray, noise_var: float) -> dict[str, float]:
    """Errors at t = 0 with w(0) = 0: E = Σ λ_k v_k, E_tr = Σ λ_k v_k + σ²."""
    sig = float(np.sum(lam * v))
    return {"bias": sig, "noise_variance": 0.0, "thermal_variance": 0.0,
            "train_bias": sig, "train_noise_variance": float(noise_var),
            "train_thermal_variance": 0.0}


def _ridgeless_kappa(lam: np.ndarray, P: int) -> float:
    """κ_0 > 0 solving Σ λ_k/(κ + P λ_k) = 1 when P < N; 0 when P >= N."""
    if P >= lam.size:
        return 0.0
    f = lambda k: np.sum(lam / (k + P * lam)) - 1.0  # noqa: E731
    hi = float(np.sum(lam))
    return float(optimize.brentq(f, 0.0, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500))


def ridge_kappa(lam: np.ndarray, P: int, g: float) -> float:
    """Effective regularisation κ solving κ = g + κ Σ_k λ_k/(P λ_k + κ) (so G(0) = g/κ)."""
    k0 = _ridgeless_kappa(lam, P)
    if g == 0:
        return k0
    h = lambda k: k * (1.0 - np.sum(lam / (k + P * lam))) - g  # noqa: E731
    hi = g + float(np.sum(lam))
    return float(optimize.brentq(h, k0, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500))


def stationary_errors(lam: np.ndarray, v: np.ndarray, P: int, g: float, T: float,
                      noise_var: float) -> dict[str, float]:
    """Errors at t -> inf (ridge regression / GP posterior; ridgeless limit when g = 0).

    bias = Σ v λ κ²/(κ + Pλ)² / (1 - γ), noise = σ² γ/(1 - γ), thermal = T Σ λ/(g + Pλ G(0)),
    with γ = Σ P λ²/(P λ + κ)². Train errors: G(0)² (bias + noise + σ²) and T (1 - G(0)).
    At g = 0 the thermal variance diverges when P <= N (null space of XᵀX), the noise part when
    P = N.
    """
    N = lam.size
    kappa = ridge_kappa(lam, P, g)
    if kappa > 0:
        frac = kappa / (kappa + P * lam)  # κ/(κ + Pλ), in (0, 1)
        gamma = float(np.sum(P * lam**2 / (kappa + P * lam) ** 2))
        G0 = g / kappa
        bias = float(np.sum(v * lam * frac**2)) / (1.0 - gamma)
        noise = noise_var * gamma / (1.0 - gamma)
        if T == 0:
            thermal = 0.0
        elif g == 0:  # G(0) = 0: the null space of XᵀX keeps diffusing
            thermal = math.inf
        else:
            thermal = T * float(np.sum(lam / (g + P * lam * G0)))
    else:  # g = 0 and P >= N: κ = 0, G(0) = 1 - N/P, γ = N/P
        G0 = 1.0 - N / P
        bias = 0.0
        if P > N:
            noise = noise_var * N / (P - N)
            thermal = T * N / (P - N)
        else:
            noise = math.inf if noise_var > 0 else 0.0
            thermal = math.inf if T > 0 else 0.0
    if G0 == 0:  # interpolation: the training data are fitted exactly
        train_bias = train_noise = 0.0
    else:
        train_bias = G0**2 * bias
        train_noise = G0**2 * (noise + noise_var)
    return {"bias": bias, "noise_variance": noise, "thermal_variance": thermal,
            "train_bias": train_bias, "train_noise_variance": train_noise,
            "train_thermal_variance": T * (1.0 - G0)}


def population_curve(lam: np.ndarray, v: np.ndarray, P: int, T: float,
                     times: np.ndarray) -> dict[str, np.ndarray]:
    """Population (P ≫ learned modes) approximation for g = 0 (THEORY.md section 5).

    bias(t) ≈ Σ v λ e^{-2Pλt},  thermal(t) ≈ (T/P) Σ (1 - e^{-2Pλt}).
    """
    t = np.asarray(times, dtype=np.float64)
    x = 2.0 * P * np.outer(t, lam)
    return {"bias": np.exp(-x) @ (v * lam), "thermal_variance": (T / P) * (-np.expm1(-x)).sum(axis=1)}
