"""Kernel spectra λ_k and task powers v_k: power laws and arrays read from files.

Conventions (THEORY.md section 2): features x ~ N(0, Λ) with Λ = diag(λ_1 … λ_N); the
teacher weight on mode k has variance v_k, so mode k carries λ_k v_k of the target's power.
A power-law spectrum is λ_k = λ_1 k^-(1+α); a power-law task is v_k = k^-β (β = task exponent,
β = 0 is the isotropic task v_k = 1).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy import special

from .errors import InvalidParameterError

__all__ = [
    "power_law_spectrum",
    "power_law_task",
    "power_law_tail",
    "load_array_file",
]

# Largest number of tail terms summed term by term; beyond it the Hurwitz zeta function is used.
_DIRECT_TAIL_TERMS = 2_000_000


def _check_modes(modes: object, name: str = "modes") -> int:
    if isinstance(modes, bool) or not isinstance(modes, (int, np.integer)) or modes < 1:
        raise InvalidParameterError(name, "a positive integer", modes)
    return int(modes)


def _check_positive(value: object, name: str) -> float:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidParameterError(name, "a positive finite number", value) from None
    if not math.isfinite(x) or x <= 0:
        raise InvalidParameterError(name, "a positive finite number", value)
    return x


def _check_finite(value: object, name: str) -> float:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidParameterError(name, "a finite real number", value) from None
    if not math.isfinite(x):
        raise InvalidParameterError(name, "a finite real number", value)
    return x


def power_law_spectrum(modes: int, alpha: float, lambda1: float = 1.0) -> np.ndarray:
    """Eigenvalues λ_k = lambda1 · k^-(1+alpha), k = 1 … modes (float64, decreasing)."""
    n = _check_modes(modes)
    a = _check_positive(alpha, "alpha")
    l1 = _check_positive(lambda1, "lambda1")
    k = np.arange(1, n + 1, dtype=np.float64)
    return l1 * k ** (-(1.0 + a))


def power_law_task(modes: int, exponent: float = 0.0) -> np.ndarray:
    """Task power v_k = k^-exponent, k = 1 … modes (exponent 0: isotropic, v_k = 1)."""
    n = _check_modes(modes)
    b = _check_finite(exponent, "task_exponent")
    k = np.arange(1, n + 1, dtype=np.float64)
    return k ** (-b)


def power_law_tail(modes: int, teacher_modes: float, alpha: float, lambda1: float = 1.0,
                   task_exponent: float = 0.0) -> float:
    """Power Σ_{k=modes+1}^{teacher_modes} λ_k v_k of the teacher modes the student lacks.

    ``teacher_modes`` may be ``math.inf`` (needs alpha + task_exponent > 0 to converge).
    """
    n = _check_modes(modes)
    p = 1.0 + _check_positive(alpha, "alpha") + _check_finite(task_exponent, "task_exponent")
    l1 = _check_positive(lambda1, "lambda1")
    m = teacher_modes
    if m is None or (not math.isinf(m) and m <= n):
        return 0.0
    if math.isinf(m):
        if p <= 1.0:
            raise InvalidParameterError(
                "task_exponent", "greater than -alpha when teacher_modes is infinite",
                task_exponent, detail="the teacher's power would be infinite")
        return l1 * float(special.zeta(p, n + 1))
    m = int(m)
    if m - n <= _DIRECT_TAIL_TERMS:
        k = np.arange(m, n, -1, dtype=np.float64)  # smallest terms first
        return l1 * float(np.sum(k ** (-p)))
    if p <= 1.0:
        raise InvalidParameterError(
            "teacher_modes", f"at most modes + {_DIRECT_TAIL_TERMS} when alpha + task_exponent <= 0",
            teacher_modes)
    return l1 * float(special.zeta(p, n + 1) - special.zeta(p, m + 1))


def load_array_file(path: str | Path, name: str) -> np.ndarray:
    """Read a one-dimensional float64 array from a .npy, .csv or .txt file.

    ``name`` is the parameter the file stands for (``spectrum_file``, ``task_file``); it
    appears in every error message. A single row or a single column is accepted; values
    must be finite. Range checks (positive, non-negative) are the caller's.
    """
    p = Path(path)
    if not p.is_file():
        raise InvalidParameterError(name, "a readable .npy, .csv or .txt file", str(path),
                                    detail="file not found")
    try:
        if p.suffix.lower() == ".npy":
            arr = np.load(p, allow_pickle=False)
        else:
            delim = "," if p.suffix.lower() == ".csv" else None
            with p.open("r", encoding="utf-8") as fh:
                text = fh.read()
            if not text.strip():
                raise InvalidParameterError(name, "a non-empty file of numbers", str(path),
                                            detail="file is empty")
            rows = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
            arr = np.array([[float(tok) for tok in (ln.split(delim) if delim else ln.split())
                             if tok.strip() != ""] for ln in rows], dtype=object)
            try:
                arr = np.array(arr.tolist(), dtype=np.float64)
            except ValueError:
                raise InvalidParameterError(name, "one column or one row of numbers", str(path),
                                            detail="rows have different lengths") from None
    except InvalidParameterError:
        raise
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InvalidParameterError(name, "a readable .npy, .csv or .txt file of numbers", str(path),
                                    detail=str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                                    ) from None
    arr = np.asarray(arr)
    if arr.dtype.kind not in "biuf":
        raise InvalidParameterError(name, "a file of real numbers", str(path),
                                    detail=f"array has dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise InvalidParameterError(name, "one column or one row of numbers", str(path),
                                    detail=f"array has shape {arr.shape}")
    if arr.size == 0:
        raise InvalidParameterError(name, "a non-empty file of numbers", str(path), detail="no values")
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise InvalidParameterError(name, "finite numbers (no NaN or inf)", str(path),
                                    detail=f"entry {bad} is {arr[bad]}")
    return arr
