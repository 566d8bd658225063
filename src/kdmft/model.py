"""The learning problem: spectrum, task, data size and training regime (THEORY.md section 2).

A :class:`Problem` holds resolved arrays and scalars, validated once. It is immutable; use
:meth:`Problem.replace` to change a field. Solvers and the simulator take a ``Problem``.

Training is the SDE ``dw = -[∇L(w) + g w] dt + sqrt(2T) dB``, ``w(0) = 0``, with the
un-normalised loss ``L = ½ Σ_μ (w·x_μ - y_μ)²``. Time t is measured in the units of this SDE.

Bayesian dictionary: a Gaussian-process posterior with noise variance σ_n² and prior variance
σ_w² is the t -> inf limit of Langevin training with ``T = σ_n²`` and ``g = σ_n² / σ_w²``
(prior precision g/T = 1/σ_w²). Note: the paper's "β = 10, gβ = 10³" would mean g = 100 here,
which freezes learning at P = N = 100; its g is evidently normalised differently, and kdmft
does not guess that normalisation.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InvalidParameterError
from .spectra import power_law_spectrum, power_law_tail, power_law_task

__all__ = ["Problem", "bayesian_to_langevin", "langevin_to_bayesian"]


#: Magnitudes kdmft accepts: g, T, σ² and the teacher tail up to MAX_SCALE, eigenvalues in
#: [MIN_EIGENVALUE, MAX_SCALE]. Far beyond any use, and far enough inside float64 that the sums of
#: products the solvers form (λ² σ² P, T Σ λ / g, ...) cannot overflow or underflow to NaN.
MAX_SCALE = 1e50
MIN_EIGENVALUE = 1e-200


def _nonneg(value: object, name: str) -> float:
    accepted = f"a non-negative finite number <= {MAX_SCALE:g}"
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidParameterError(name, accepted, value) from None
    if not math.isfinite(x) or x < 0 or x > MAX_SCALE:
        raise InvalidParameterError(name, accepted, value)
    return x


def _float_array(values: object, name: str) -> np.ndarray:
    try:
        return np.array(values, dtype=np.float64, copy=True)
    except (TypeError, ValueError):
        raise InvalidParameterError(name, "an array of numbers", type(values).__name__) from None


def _positive(value: object, name: str) -> float:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidParameterError(name, "a positive finite number", value) from None
    if not math.isfinite(x) or x <= 0:
        raise InvalidParameterError(name, "a positive finite number", value)
    return x


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        if isinstance(value, float) and value.is_integer() and value >= 1:
            return int(value)
        raise InvalidParameterError(name, "a positive integer", value)
    return int(value)


def bayesian_to_langevin(prior_var: float, noise_var: float) -> tuple[float, float]:
    """Convert a GP prior variance σ_w² and noise variance σ_n² to (g, T) = (σ_n²/σ_w², σ_n²)."""
    sw = _positive(prior_var, "prior_var")
    sn = _positive(noise_var, "noise_var")
    return sn / sw, sn


def langevin_to_bayesian(weight_decay: float, temperature: float) -> tuple[float, float]:
    """Convert (g, T) with g, T > 0 to (prior variance T/g, noise variance T)."""
    g = _positive(weight_decay, "weight_decay")
    t = _positive(temperature, "temperature")
    return t / g, t


@dataclass(frozen=True, eq=False)
class Problem:
    """A validated learning problem.

    Parameters
    ----------
    eigenvalues : array (N,)
        Feature-covariance (kernel) eigenvalues λ_k > 0 of the student's N modes.
    task_power : array (N,)
        Teacher power per mode v_k = E[w̄_k²] >= 0.
    samples : int
        Number of training samples P >= 1.
    label_noise_var : float
        Label-noise variance σ² >= 0.
    weight_decay : float
        Weight decay g >= 0 (ridge parameter at t -> inf).
    temperature : float
        Langevin temperature T >= 0.
    teacher_tail : float
        Power Σ_{k>N} λ_k v_k of teacher modes the student lacks (teacher wider than the
        student). It acts as extra label noise in training and adds itself to the test error.
    info : dict
        How the problem was built (for example ``alpha``, ``lambda1``); copied into results.
    """

    eigenvalues: np.ndarray
    task_power: np.ndarray
    samples: int
    label_noise_var: float = 0.0
    weight_decay: float = 0.0
    temperature: float = 0.0
    teacher_tail: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lam = _float_array(self.eigenvalues, "eigenvalues")
        if lam.ndim != 1 or lam.size == 0:
            raise InvalidParameterError("eigenvalues", "a non-empty one-dimensional array",
                                        f"shape {lam.shape}")
        ok = np.isfinite(lam) & (lam >= MIN_EIGENVALUE) & (lam <= MAX_SCALE)
        if not np.all(ok):
            bad = int(np.flatnonzero(~ok)[0])
            raise InvalidParameterError("eigenvalues", f"finite numbers in [{MIN_EIGENVALUE:g}, {MAX_SCALE:g}]",
                                        f"entry {bad} = {lam[bad]}")
        v = _float_array(self.task_power, "task_power")
        if v.ndim == 0:
            v = np.full_like(lam, float(v))
        if v.shape != lam.shape:
            raise InvalidParameterError("task_power", f"an array of the same length as eigenvalues ({lam.size})",
                                        f"length {v.size}")
        if not np.all(np.isfinite(v)) or np.any(v < 0) or np.any(v > MAX_SCALE):
            bad = int(np.flatnonzero(~(np.isfinite(v) & (v >= 0) & (v <= MAX_SCALE)))[0])
            raise InvalidParameterError("task_power", f"finite numbers in [0, {MAX_SCALE:g}]",
                                        f"entry {bad} = {v[bad]}")
        lam.setflags(write=False)
        v.setflags(write=False)
        object.__setattr__(self, "eigenvalues", lam)
        object.__setattr__(self, "task_power", v)
        object.__setattr__(self, "samples", _positive_int(self.samples, "samples"))
        for name in ("label_noise_var", "weight_decay", "temperature", "teacher_tail"):
            object.__setattr__(self, name, _nonneg(getattr(self, name), name))
        object.__setattr__(self, "info", dict(self.info))

    # -- constructors -------------------------------------------------------------------
    @classmethod
    def power_law(cls, modes: int, alpha: float, samples: int, *, lambda1: float = 1.0,
                  task_exponent: float = 0.0, teacher_modes: float | None = None,
                  label_noise_var: float = 0.0, weight_decay: float = 0.0,
                  temperature: float = 0.0) -> Problem:
        """Power-law problem λ_k = lambda1 k^-(1+alpha), v_k = k^-task_exponent, k <= modes.

        ``teacher_modes`` (M > modes, may be ``math.inf``) makes the teacher wider than the
        student; its extra modes enter through :attr:`teacher_tail`.
        """
        lam = power_law_spectrum(modes, alpha, lambda1)
        if not (lam[-1] >= MIN_EIGENVALUE and lam[0] <= MAX_SCALE):
            name, val = ("lambda1", lambda1) if not lam[0] <= MAX_SCALE else ("alpha", alpha)
            raise InvalidParameterError(name, f"such that λ_k = λ_1 k^-(1+α) stays in [{MIN_EIGENVALUE:g}, "
                                        f"{MAX_SCALE:g}] for k <= N = {lam.size}", val,
                                        detail=f"λ_N = {lam[-1]:.3g}" if lam[0] <= MAX_SCALE else "")
        v = power_law_task(modes, task_exponent)
        tail = 0.0
        if teacher_modes is not None:
            if not (isinstance(teacher_modes, (int, float, np.integer, np.floating))
                    and not isinstance(teacher_modes, bool)
                    and (math.isinf(teacher_modes) or float(teacher_modes).is_integer())
                    and teacher_modes >= lam.size):
                raise InvalidParameterError("teacher_modes", f"an integer >= modes ({lam.size}) or inf",
                                            teacher_modes)
            tail = power_law_tail(lam.size, float(teacher_modes), alpha, lambda1, task_exponent)
        info = {"spectrum": "power_law", "alpha": float(alpha), "lambda1": float(lambda1),
                "task_exponent": float(task_exponent)}
        if teacher_modes is not None:
            info["teacher_modes"] = float(teacher_modes)
        return cls(lam, v, samples, label_noise_var=label_noise_var, weight_decay=weight_decay,
                   temperature=temperature, teacher_tail=tail, info=info)

    def replace(self, **changes: Any) -> Problem:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def with_bayesian(self, prior_var: float, noise_var: float) -> Problem:
        """A copy whose (g, T) encode a GP posterior with the given prior and noise variances."""
        g, t = bayesian_to_langevin(prior_var, noise_var)
        return self.replace(weight_decay=g, temperature=t)

    # -- derived quantities -------------------------------------------------------------
    @property
    def modes(self) -> int:
        """Number N of student modes."""
        return int(self.eigenvalues.size)

    @property
    def effective_noise_var(self) -> float:
        """Label noise seen in training: σ² plus the teacher's tail power."""
        return self.label_noise_var + self.teacher_tail

    @property
    def signal_power(self) -> float:
        """Σ_k λ_k v_k: the student-visible target power (test error at t = 0 minus the tail)."""
        return float(np.sum(self.eigenvalues * self.task_power))

    @property
    def isotropic_task(self) -> bool:
        return bool(np.all(self.task_power == self.task_power[0]))

    def attrs(self) -> dict[str, Any]:
        """Flat netCDF-compatible description of the problem (scalars only)."""
        out: dict[str, Any] = {
            "modes": self.modes,
            "samples": self.samples,
            "label_noise_var": self.label_noise_var,
            "weight_decay": self.weight_decay,
            "temperature": self.temperature,
            "teacher_tail": self.teacher_tail,
        }
        for k, val in self.info.items():
            if isinstance(val, (bool, np.bool_)):
                out[k] = int(val)
            elif isinstance(val, (int, float, str, np.integer, np.floating)):
                out[k] = val
        return out
