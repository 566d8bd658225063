"""Real data: kernel spectra of data sets and measured kernel-regression learning curves.

Population. The data set (n points) is treated as the population. The kernel Gram matrix K
(n x n) has eigen-pairs K φ_k = n λ_k φ_k with |φ_k| = 1; the feature of mode k is √λ_k ψ_k with
ψ_k(x_i) = √n φ_k[i], so that K(x, x') = Σ_k λ_k ψ_k(x) ψ_k(x') and (1/n) Σ_i ψ_k ψ_l = δ_kl.

Targets. A target y (n values) has teacher weights w̄_k = (φ_k·y) / √(n λ_k), hence task power
v_k = (φ_k·y)² / (n λ_k) and λ_k v_k = (φ_k·y)²/n. A classification target with C classes is
one-hot and centred, C outputs y_c = 1[label = c] - p_c trained independently with the same
kernel; their errors add, so the task power is v_k = Σ_c (φ_k·y_c)² / (n λ_k) and every
measured error is the sum over outputs (the initial test error is Σ_c p_c (1 - p_c)). One class
against the rest (``target_class``) is a single output. A regression target is centred and
divided by its standard deviation, so that the initial test error is 1 (the errors are
fractions of the target variance).

Resolution. Modes whose eigenvalue is below ``rel_cutoff · λ_1`` are numerically null: their
target power is returned as ``tail_power``, which acts as label noise (as for a teacher wider
than the student). Beyond that, only the top of the spectrum of n points estimates the kernel's
operator spectrum: :func:`resolved_modes` compares it with the spectrum of a random half of the
points and reports the number of modes whose eigenvalue is stable.

Measured curves train kernel regression on random P-subsets S with the same SDE as the theory,
in function space: f_t(x) = k_xS U diag((1 - e^{-(s+g)t})/(s+g)) Uᵀ y_S with K_SS = U diag(s) Uᵀ,
and the Langevin variance xᵀΣ(t)x = f(0) K(x,x) + k_xS U diag((f(s) - f(0))/s) Uᵀ k_Sx with
f(h) = T (1 - e^{-2(h+g)t})/(h+g). The test error is averaged over the held-out points.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InvalidParameterError

__all__ = ["DATASETS", "DATASET_TASKS", "load_dataset", "load_user_data", "standardise", "infer_task",
           "make_targets", "binary_target", "RealData", "load_real_data", "KernelSpectrum",
           "kernel_spectrum", "resolved_modes", "SpectrumFit", "fit_spectrum", "measured_curve"]


def _sklearn_loader(name: str) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    def load() -> tuple[np.ndarray, np.ndarray]:
        import sklearn.datasets

        d = getattr(sklearn.datasets, f"load_{name}")()
        target = d.target
        target = target.astype(np.int64) if np.issubdtype(target.dtype, np.integer) else target.astype(np.float64)
        return d.data.astype(np.float64), target

    load.__name__ = f"_load_{name}"
    return load


#: Data set name -> loader returning (raw features (n, d), targets (n,)); all bundled with
#: scikit-learn (no download).
DATASETS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    name: _sklearn_loader(name) for name in ("digits", "breast_cancer", "wine", "iris", "diabetes")}

#: Task type of each bundled data set.
DATASET_TASKS = {"digits": "classification", "breast_cancer": "classification", "wine": "classification",
                 "iris": "classification", "diabetes": "regression"}

TASKS = ("auto", "classification", "regression")


def standardise(X: np.ndarray) -> np.ndarray:
    """Columns to zero mean and unit (population) variance; constant columns are dropped."""
    X = np.asarray(X, dtype=np.float64)
    std = X.std(axis=0)
    keep = std > 0
    if not keep.any():
        raise InvalidParameterError("data", "at least one non-constant feature column", "all constant")
    return (X[:, keep] - X[:, keep].mean(axis=0)) / std[keep]


def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Standardised features (:func:`standardise`) and raw targets (labels or values) of a bundled set."""
    try:
        loader = DATASETS[name]
    except KeyError:
        raise InvalidParameterError("dataset", f"one of {sorted(DATASETS)}", name) from None
    X, targets = loader()
    return standardise(X), targets


def _read_matrix(path: str | Path, name: str) -> np.ndarray:
    """A 2-D float array from .npy or .csv/.txt (comma or whitespace separated; '#' comments and
    one non-numeric header line are skipped)."""
    p = Path(path)
    if not p.is_file():
        raise InvalidParameterError(name, "a readable .npy, .csv or .txt file", str(path), detail="file not found")
    try:
        if p.suffix.lower() == ".npy":
            arr = np.load(p, allow_pickle=False)
        else:
            delim = "," if p.suffix.lower() == ".csv" else None
            lines = [ln for ln in p.read_text(encoding="utf-8").splitlines()
                     if ln.strip() and not ln.lstrip().startswith("#")]
            if lines:
                try:
                    [float(tok) for tok in lines[0].split(delim)]
                except ValueError:
                    lines = lines[1:]  # a header line
            arr = np.array([[float(tok) for tok in ln.split(delim)] for ln in lines], dtype=np.float64)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InvalidParameterError(name, "a readable .npy, .csv or .txt file of numbers (rows of equal length)",
                                    str(path), detail=str(exc).splitlines()[0] if str(exc) else "") from None
    if arr.dtype.kind not in "biuf":
        raise InvalidParameterError(name, "a file of real numbers", str(path), detail=f"dtype {arr.dtype}")
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.size == 0:
        raise InvalidParameterError(name, "a non-empty matrix (rows = points)", str(path),
                                    detail=f"shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InvalidParameterError(name, "finite numbers (no NaN or inf)", str(path))
    return arr


def load_user_data(data: str | Path, targets: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Standardised features from ``data`` (n x d, .npy or .csv) and targets (n values) from ``targets``."""
    X = _read_matrix(data, "data")
    y = _read_matrix(targets, "targets")
    if y.shape[1] != 1 and y.shape[0] == 1:
        y = y.T
    if y.shape[1] != 1:
        raise InvalidParameterError("targets", "one value per point (one column)", str(targets),
                                    detail=f"shape {y.shape}")
    y = y[:, 0]
    if y.size != X.shape[0]:
        raise InvalidParameterError("targets", f"one value per data point ({X.shape[0]} values)", str(targets),
                                    detail=f"{y.size} values")
    if X.shape[0] < 4:
        raise InvalidParameterError("data", "at least 4 points", str(data), detail=f"{X.shape[0]} rows")
    return standardise(X), y


def infer_task(targets: np.ndarray) -> str:
    """'classification' for integer-valued targets with at most 50 distinct values, else 'regression'."""
    y = np.asarray(targets, dtype=np.float64)
    if np.all(y == np.round(y)) and np.unique(y).size <= 50:
        return "classification"
    return "regression"


def binary_target(labels: np.ndarray, target_class: int) -> np.ndarray:
    """Centred one-vs-rest target: 1[label == c] minus its mean."""
    classes = np.unique(labels)
    if target_class not in classes:
        raise InvalidParameterError("target_class", f"one of the labels {classes.tolist()}", target_class)
    y = (labels == target_class).astype(np.float64)
    return y - y.mean()


def make_targets(targets: np.ndarray, task: str = "auto", target_class: int | None = None) -> np.ndarray:
    """Training targets (n, m) from raw targets (n,).

    classification: one-hot centred (m = number of classes), or with ``target_class`` the single
    centred one-vs-rest output; regression: centred and divided by the standard deviation (m = 1).
    """
    if task not in TASKS:
        raise InvalidParameterError("task", f"one of {list(TASKS)}", task)
    raw = np.asarray(targets)
    if task == "auto":
        task = infer_task(raw)
    if task == "regression":
        if target_class is not None:
            raise InvalidParameterError("target_class", "unset for a regression target", target_class)
        y = raw.astype(np.float64)
        sd = y.std()
        if not sd > 0:
            raise InvalidParameterError("targets", "not constant", "a constant target")
        return ((y - y.mean()) / sd)[:, None]
    labels = raw
    if not np.all(np.asarray(labels, dtype=np.float64) == np.round(np.asarray(labels, dtype=np.float64))):
        raise InvalidParameterError("targets", "integer class labels for a classification task",
                                    "non-integer values")
    labels = np.asarray(labels, dtype=np.float64).astype(np.int64)
    if target_class is not None:
        return binary_target(labels, target_class)[:, None]
    classes = np.unique(labels)
    if classes.size < 2:
        raise InvalidParameterError("targets", "at least two classes", classes.tolist())
    onehot = (labels[:, None] == classes[None, :]).astype(np.float64)
    return onehot - onehot.mean(axis=0)


@dataclass(frozen=True)
class RealData:
    """Standardised features X (n, d), training targets Y (n, m) and how they were made."""

    X: np.ndarray
    Y: np.ndarray
    task: str
    name: str
    target_class: int | None = None
    info: dict = field(default_factory=dict)

    @property
    def outputs(self) -> int:
        return int(self.Y.shape[1])


def load_real_data(dataset: str | None = None, *, data: str | Path | None = None,
                   targets: str | Path | None = None, task: str = "auto",
                   target_class: int | None = None) -> RealData:
    """A bundled data set by name, or user data (``data`` + ``targets`` files), with its targets.

    ``task`` is 'auto' (bundled: the data set's own task; user data: :func:`infer_task`),
    'classification' or 'regression'. Classification is one-hot over all classes unless
    ``target_class`` picks one class against the rest.
    """
    if task not in TASKS:
        raise InvalidParameterError("task", f"one of {list(TASKS)}", task)
    if dataset is not None:
        if data is not None or targets is not None:
            raise InvalidParameterError("dataset", "given either by name or by data/targets files",
                                        detail="both were given")
        X, raw = load_dataset(dataset)
        kind = DATASET_TASKS[dataset] if task == "auto" else task
        name = dataset
    else:
        if data is None or targets is None:
            raise InvalidParameterError("data, targets", "given together (or a bundled dataset name)")
        X, raw = load_user_data(data, targets)
        kind = infer_task(raw) if task == "auto" else task
        name = Path(data).stem
    Y = make_targets(raw, kind, target_class)
    return RealData(X=X, Y=Y, task=kind, name=name, target_class=target_class,
                    info={"points": X.shape[0], "features": X.shape[1], "outputs": Y.shape[1]})


@dataclass(frozen=True)
class KernelSpectrum:
    """Eigenvalues λ_k (decreasing), task power v_k (summed over outputs), unresolved tail power
    (summed over outputs), eigenvectors φ_k, number of points n and of outputs."""

    eigenvalues: np.ndarray
    task_power: np.ndarray
    tail_power: float
    eigenvectors: np.ndarray
    n: int
    outputs: int = 1


def kernel_spectrum(K: np.ndarray, y: np.ndarray, rel_cutoff: float = 1e-10) -> KernelSpectrum:
    """Spectrum and task power of target ``y`` (n,) or targets (n, m) under the Gram matrix ``K`` of n points.

    λ_k = eig_k(K)/n (decreasing); v_k = Σ_c (φ_k·y_c)²/(n λ_k); modes with λ_k <= rel_cutoff·λ_1
    are dropped and their target power is ``tail_power``.
    """
    K = np.asarray(K, dtype=np.float64)
    n = K.shape[0]
    if K.ndim != 2 or K.shape != (n, n) or n < 2:
        raise InvalidParameterError("K", "a square matrix of at least 2 points", K.shape)
    Y = np.asarray(y, dtype=np.float64)
    Y2 = Y[:, None] if Y.ndim == 1 else Y
    if Y2.ndim != 2 or Y2.shape[0] != n:
        raise InvalidParameterError("y", f"targets of {n} points, shape (n,) or (n, m)", Y.shape)
    evals, evecs = np.linalg.eigh(K)
    order = np.argsort(evals)[::-1]
    evals, evecs = evals[order], evecs[:, order]
    lam = evals / n
    if not lam[0] > 0:
        raise InvalidParameterError("K", "a kernel matrix with a positive eigenvalue", "all eigenvalues <= 0")
    keep = lam > rel_cutoff * lam[0]
    proj = evecs.T @ Y2                            # (n, m)
    power = np.sum(proj**2, axis=1) / n            # λ_k v_k summed over outputs
    lam_k = lam[keep]
    return KernelSpectrum(eigenvalues=lam_k, task_power=power[keep] / lam_k,
                          tail_power=float(power[~keep].sum()), eigenvectors=evecs[:, keep], n=n,
                          outputs=int(Y2.shape[1]))


def resolved_modes(K: np.ndarray, *, rtol: float = 0.2, seed: int = 0, rel_cutoff: float = 1e-10) -> int:
    """Number of leading modes whose eigenvalue λ_k = eig_k(K)/n is stable against halving the data.

    Compares the spectrum of all n points with that of a random half (eig/(n/2)): mode k counts
    as resolved while the median of |λ_j(half)/λ_j(all) - 1| over j in [k, 2k] is at most
    ``rtol`` (a median over a window, because single near-degenerate eigenvalues fluctuate more;
    the window stops at the last non-null mode) and λ_k > rel_cutoff·λ_1. At most n/2. Beyond
    it the eigenvalues are set by the finite sample rather than by the kernel's operator spectrum.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidParameterError("seed", "an integer >= 0", seed)
    K = np.asarray(K, dtype=np.float64)
    n = K.shape[0]
    half = n // 2
    full = np.sort(np.linalg.eigvalsh(K))[::-1][:half] / n
    idx = np.random.default_rng(seed).permutation(n)[:half]
    sub = np.sort(np.linalg.eigvalsh(K[np.ix_(idx, idx)]))[::-1] / half
    live = full > rel_cutoff * full[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = np.where(live, np.abs(sub / full - 1.0), np.inf)
    n_live = int(np.argmin(live)) if not live.all() else half
    for k in range(n_live):
        if np.median(dev[k:min(2 * k + 1, n_live)]) > rtol:
            return k
    return n_live


@dataclass(frozen=True)
class SpectrumFit:
    """Power-law fits of an extracted spectrum.

    ``alpha`` from λ_k ∝ k^-(1+α) (``alpha_ci`` its confidence interval, ``window`` the fitted
    range of k, ``rms`` the residual in natural-log units); ``task_decay`` = a from the residual
    target power Σ_{j>k} λ_j v_j ∝ k^-a, and ``task_exponent`` β = a - α from v_k ∝ k^-β (the
    interval ``task_exponent_ci`` adds the widths of both intervals).
    """

    alpha: float
    alpha_ci: tuple[float, float]
    window: tuple[float, float]
    n_points: int
    rms: float
    task_decay: float
    task_decay_ci: tuple[float, float]
    task_window: tuple[float, float]
    task_exponent: float
    task_exponent_ci: tuple[float, float]


def fit_spectrum(spec: KernelSpectrum, *, max_mode: int | None = None,
                 window: tuple[float, float] | None = None, confidence: float = 0.95) -> SpectrumFit:
    """Fit λ_k ∝ k^-(1+α) and the residual task power over modes k <= max(``max_mode``, 10).

    ``window`` fixes the fitted range of k for both fits; default: detected automatically by
    :func:`kdmft.analysis.fit_power_law` inside [1, max_mode] (default all modes).
    """
    from .analysis import fit_power_law

    lam = spec.eigenvalues
    m = lam.size if max_mode is None else int(min(max(max_mode, 10), lam.size))
    if m < 3:
        raise InvalidParameterError("eigenvalues", "at least 3 non-null modes to fit a power law", m)
    k = np.arange(1, m + 1, dtype=np.float64)
    fit = fit_power_law(k, lam[:m], window=window, confidence=confidence)
    alpha = -fit.slope - 1.0
    alpha_ci = (-fit.slope_ci[1] - 1.0, -fit.slope_ci[0] - 1.0)
    power = lam * spec.task_power
    residual = (np.cumsum(power[::-1])[::-1] - power + spec.tail_power)[:m]  # Σ_{j>k} λ_j v_j
    tfit = fit_power_law(k, residual, window=window, confidence=confidence)
    a = -tfit.slope
    a_ci = (-tfit.slope_ci[1], -tfit.slope_ci[0])
    beta = a - alpha
    half = (a_ci[1] - a_ci[0] + alpha_ci[1] - alpha_ci[0]) / 2
    return SpectrumFit(alpha=alpha, alpha_ci=alpha_ci, window=fit.window, n_points=fit.n_points, rms=fit.rms,
                       task_decay=a, task_decay_ci=a_ci, task_window=tfit.window, task_exponent=beta,
                       task_exponent_ci=(beta - half, beta + half))


def _f_thermal(h: np.ndarray, g: float, T: float, t: np.ndarray) -> np.ndarray:
    """f(h) = T (1 - e^{-2(h+g)t})/(h+g) on a (len(h), len(t)) grid (2Tt at h + g = 0)."""
    d = (h + g)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        val = -np.expm1(-2.0 * d * t[None, :]) / np.where(d > 0, d, 1.0)
    return T * np.where(d > 0, val, 2.0 * t[None, :])


def measured_curve(K: np.ndarray, y: np.ndarray, samples: int, times: np.ndarray, *,
                   weight_decay: float = 0.0, temperature: float = 0.0, label_noise_var: float = 0.0,
                   subsets: int = 50, seed: int = 0, sampling: str = "heldout",
                   progress: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
    """Learning curve of kernel regression trained on random P-subsets of the n points.

    Expectations over Langevin noise and label noise are exact; the mean and standard error
    are over subsets. Times must be finite and >= 0. With targets (n, m) every output is trained
    independently (same kernel, independent noises) and the errors are summed over outputs.

    ``sampling``: ``"heldout"`` (default) draws P distinct points and measures the test error on
    the n - P others; ``"population"`` draws P points with replacement and measures the error
    over all n points, which is exactly the setting of the theory when the n points are the
    population (iid training samples; a test point is a fresh draw from the same n points). The
    two differ by O(P/n): held-out points are never training points.

    Returns
    -------
    dict with ``test_error``, ``train_error``, ``bias``, ``noise_variance``,
    ``thermal_variance`` and their ``_se`` (arrays over times).
    """
    n = K.shape[0]
    P = samples
    if isinstance(P, bool) or not isinstance(P, (int, np.integer)) or not 1 <= P < n:
        raise InvalidParameterError("samples", f"an integer in [1, {n - 1}] for this data set", samples)
    P = int(P)
    if isinstance(subsets, bool) or not isinstance(subsets, (int, np.integer)) or subsets < 2:
        raise InvalidParameterError("subsets", "an integer >= 2", subsets)
    Y = np.asarray(y, dtype=np.float64)
    Y = Y[:, None] if Y.ndim == 1 else Y
    if Y.ndim != 2 or Y.shape[0] != n:
        raise InvalidParameterError("y", f"targets of {n} points, shape (n,) or (n, m)", Y.shape)
    m_out = Y.shape[1]
    t = np.asarray(times, dtype=np.float64)
    if t.ndim != 1 or not np.all(np.isfinite(t)) or np.any(t < 0):
        raise InvalidParameterError("times", "finite numbers >= 0", times)
    if sampling not in ("heldout", "population"):
        raise InvalidParameterError("sampling", "'heldout' or 'population'", sampling)
    g, T, s2 = float(weight_decay), float(temperature), float(label_noise_var)
    keys = ("test_error", "train_error", "bias", "noise_variance", "thermal_variance")
    acc = {k: [] for k in keys}
    diagK = np.diag(K)
    for j in range(int(subsets)):
        rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(j,)))
        if sampling == "heldout":
            perm = rng.permutation(n)
            S, H = perm[:P], perm[P:]
        else:
            S, H = rng.integers(0, n, size=P), np.arange(n)
        s, U = np.linalg.eigh(K[np.ix_(S, S)])
        s = np.clip(s, 0.0, None)
        d = (s + g)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            phi = np.where(d > 0, -np.expm1(-d * t[None, :]) / np.where(d > 0, d, 1.0), t[None, :])
        A = K[np.ix_(H, S)] @ U                      # (nH, P)
        c = U.T @ Y[S]                               # (P, m)
        f_H = np.einsum("hp,pt,pm->htm", A, phi, c, optimize=True)   # (nH, nt, m)
        bias = np.mean(np.sum((f_H - Y[H][:, None, :]) ** 2, axis=2), axis=0)
        A2 = A * A
        noise = m_out * s2 * np.mean(A2 @ (phi * phi), axis=0)
        fs = _f_thermal(s, g, T, t)
        f0 = _f_thermal(np.zeros(1), g, T, t)[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(s[:, None] > 1e-12 * s.max(), (fs - f0[None, :]) / s[:, None], 0.0)
        thermal = m_out * (f0 * diagK[H].mean() + np.mean(A2 @ q, axis=0))
        r_train = s[:, None] * phi - 1.0             # (K φ(K) - I) in the eigenbasis
        c2 = np.sum(c * c, axis=1)
        train = (np.sum(r_train**2 * c2[:, None], axis=0) + m_out * s2 * np.sum(r_train**2, axis=0)
                 + m_out * T * np.sum(s[:, None] * _f_thermal(s, g, 1.0, t), axis=0)) / P
        for k, val in zip(keys, (bias + noise + thermal, train, bias, noise, thermal), strict=True):
            acc[k].append(val)
        if progress is not None:
            progress(j + 1, int(subsets))
    out = {}
    for k in keys:
        arr = np.array(acc[k])
        out[k] = arr.mean(axis=0)
        out[k + "_se"] = arr.std(axis=0, ddof=1) / math.sqrt(arr.shape[0])
    return out
