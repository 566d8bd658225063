"""Predicted against measured learning curves on real data, and spectrum reports.

:func:`predicted_curve` is the DMFT curve of a data set from its extracted kernel spectrum;
:func:`compare_curves` puts it beside kernel regression measured on random P-subsets
(:func:`kdmft.realdata.measured_curve`) for a list of P and times, as one
:class:`xarray.Dataset` over dimensions ``samples`` and ``time``; :func:`deviation_table`
writes the relative deviations as a markdown table and :func:`plot_compare` draws them.

Several outputs (one-hot classes) are trained independently with the same kernel and their
errors add. The DMFT sources are linear (bias ∝ v_k, label-noise part ∝ σ², thermal part ∝ T),
so the summed error of m outputs is exactly the error of one output with task power
v_k = Σ_c v_{c,k}, teacher tail Σ_c tail_c, label noise m σ² and temperature m T:
:func:`summed_output_problem` builds that problem (one solver call for all outputs).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from ._version import __version__
from .errors import InvalidParameterError
from .io import write_text
from .model import Problem
from .plots import save_figure
from .realdata import KernelSpectrum, SpectrumFit, kernel_spectrum, measured_curve

__all__ = ["summed_output_problem", "predicted_curve", "compare_curves", "deviation_table",
           "plot_compare", "spectrum_report", "write_spectrum_files", "plot_spectrum"]

CURVES = ("test_error", "bias", "noise_variance", "thermal_variance", "train_error")


def summed_output_problem(spec: KernelSpectrum, samples: int, *, weight_decay: float = 0.0,
                          temperature: float = 0.0, label_noise_var: float = 0.0,
                          info: dict | None = None) -> Problem:
    """The single-output Problem whose errors equal the errors summed over ``spec.outputs`` outputs.

    ``temperature`` and ``label_noise_var`` are per output; the problem carries m T and m σ²
    (module docstring). ``info`` records the per-output values and m.
    """
    m = int(spec.outputs)
    meta = {"outputs": m, "temperature_per_output": float(temperature),
            "label_noise_var_per_output": float(label_noise_var), "points": int(spec.n)}
    meta.update(info or {})
    return Problem(spec.eigenvalues, spec.task_power, samples, label_noise_var=m * float(label_noise_var),
                   weight_decay=weight_decay, temperature=m * float(temperature),
                   teacher_tail=spec.tail_power, info=meta)


def predicted_curve(spec: KernelSpectrum, samples: int, times: Sequence[float] | np.ndarray, *,
                    weight_decay: float = 0.0, temperature: float = 0.0, label_noise_var: float = 0.0,
                    method: str = "laplace") -> xr.Dataset:
    """DMFT learning curve (summed over outputs) from an extracted spectrum; see :func:`kdmft.learning_curve`."""
    from .theory import learning_curve

    problem = summed_output_problem(spec, samples, weight_decay=weight_decay, temperature=temperature,
                                    label_noise_var=label_noise_var)
    return learning_curve(problem, times, method=method)


def _parse_samples(samples: Sequence[int], n: int) -> list[int]:
    out = []
    for p in samples:
        if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or not 1 <= p < n:
            raise InvalidParameterError("samples", f"integers in [1, {n - 1}] for this data set", p)
        out.append(int(p))
    if not out:
        raise InvalidParameterError("samples", "a non-empty list of integers", samples)
    return out


def compare_curves(K: np.ndarray, Y: np.ndarray, samples: Sequence[int], times: Sequence[float] | np.ndarray,
                   *, weight_decay: float = 0.0, temperature: float = 0.0, label_noise_var: float = 0.0,
                   subsets: int = 20, seed: int = 0, sampling: str = "heldout",
                   spec: KernelSpectrum | None = None,
                   attrs: dict | None = None, progress: Callable[[int, int], None] | None = None) -> xr.Dataset:
    """DMFT prediction from the spectrum of K beside measured kernel regression, for each P.

    Parameters
    ----------
    K : array (n, n)
        Kernel Gram matrix of the data set (the population).
    Y : array (n,) or (n, m)
        Centred targets (m outputs whose errors add).
    samples : list of int
        Training-set sizes P (each < n).
    times : list of float
        Training times t >= 0 (finite), SDE units.
    weight_decay, temperature, label_noise_var : float
        g, T and σ² (T and σ² per output).
    subsets, seed
        Random P-subsets per P and their seed (subset j of every P uses spawn key j).
    sampling : {"heldout", "population"}
        How subsets are drawn and the test error measured (:func:`kdmft.realdata.measured_curve`).
    spec : KernelSpectrum, optional
        The spectrum of (K, Y) if already computed.

    Returns
    -------
    xarray.Dataset over (samples, time) with ``predicted_<curve>``, ``measured_<curve>`` and
    ``measured_<curve>_se`` for test error, bias, noise and thermal variance and train error,
    ``relative_deviation`` = predicted/measured - 1 of the test error, and ``deviation_z`` =
    (predicted - measured)/SE. Config, version and seed are in ``attrs``.
    """
    from .theory import check_times

    K = np.asarray(K, dtype=np.float64)
    n = K.shape[0]
    P_list = _parse_samples(samples, n)
    t = check_times(times)
    if np.any(np.isinf(t)):
        raise InvalidParameterError("times", "finite (measured curves are at finite training times)", "inf")
    spec = kernel_spectrum(K, Y) if spec is None else spec
    data = {f"predicted_{c}": np.empty((len(P_list), t.size)) for c in CURVES}
    data.update({f"measured_{c}{s}": np.empty((len(P_list), t.size)) for c in CURVES for s in ("", "_se")})
    total = len(P_list) * int(subsets)
    for i, P in enumerate(P_list):
        theory = predicted_curve(spec, P, t, weight_decay=weight_decay, temperature=temperature,
                                 label_noise_var=label_noise_var)
        cb = None if progress is None else (lambda done, _tot, i=i: progress(i * int(subsets) + done, total))
        meas = measured_curve(K, Y, P, t, weight_decay=weight_decay, temperature=temperature,
                              label_noise_var=label_noise_var, subsets=subsets, seed=seed,
                              sampling=sampling, progress=cb)
        for c in CURVES:
            data[f"predicted_{c}"][i] = theory[c].values
            data[f"measured_{c}"][i] = meas[c]
            data[f"measured_{c}_se"][i] = meas[c + "_se"]
    units = "target variance units (summed over outputs)"
    ds = xr.Dataset(
        {k: (("samples", "time"), v, {"units": units, "long_name": k.replace("_", " ")}) for k, v in data.items()},
        coords={"samples": ("samples", np.array(P_list), {"long_name": "training-set size P"}),
                "time": ("time", t, {"long_name": "training time t", "units": "SDE time"})})
    with np.errstate(divide="ignore", invalid="ignore"):
        ds["relative_deviation"] = (("samples", "time"),
                                    data["predicted_test_error"] / data["measured_test_error"] - 1.0,
                                    {"long_name": "DMFT / measured - 1 (test error)"})
        ds["deviation_z"] = (("samples", "time"),
                             (data["predicted_test_error"] - data["measured_test_error"])
                             / data["measured_test_error_se"],
                             {"long_name": "(DMFT - measured) / standard error (test error)"})
    meta = {"kdmft_version": __version__, "seed": int(seed), "subsets": int(subsets), "sampling": sampling,
            "points": int(n),
            "modes": int(spec.eigenvalues.size), "outputs": int(spec.outputs), "teacher_tail": spec.tail_power,
            "weight_decay": float(weight_decay), "temperature": float(temperature),
            "label_noise_var": float(label_noise_var)}
    for k, v in (attrs or {}).items():
        meta[k] = json.dumps(v) if isinstance(v, (dict, list, tuple)) else ("" if v is None else v)
    ds.attrs.update(meta)
    return ds


def _pct(x: float) -> str:
    return f"{100 * x:+.1f}%" if math.isfinite(x) else "-"


def deviation_table(ds: xr.Dataset, *, title: str | None = None) -> str:
    """Markdown table: one row per time, per P the relative deviation DMFT/measured - 1 of the
    test error with the measurement's relative standard error in parentheses."""
    P = ds["samples"].values
    lines = []
    if title:
        lines += [f"**{title}**", ""]
    lines.append("| t | " + " | ".join(f"P = {p}" for p in P) + " |")
    lines.append("|---:|" + "---:|" * len(P))
    for j, t in enumerate(ds["time"].values):
        cells = []
        for i in range(P.size):
            dev = float(ds["relative_deviation"].values[i, j])
            rel_se = float(ds["measured_test_error_se"].values[i, j] / ds["measured_test_error"].values[i, j])
            cells.append(f"{_pct(dev)} (±{100 * rel_se:.1f}%)")
        lines.append(f"| {t:.3g} | " + " | ".join(cells) + " |")
    med = np.nanmedian(np.abs(ds["relative_deviation"].values), axis=1)
    lines.append("| median abs. | " + " | ".join(f"{100 * m:.1f}%" for m in med) + " |")
    return "\n".join(lines) + "\n"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_compare(ds: xr.Dataset, path: str | Path, *, title: str = "") -> Path:
    """Test error against t for every P: DMFT lines, measured points with ±1 SE; deviation panel."""
    plt = _plt()
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(7.0, 6.2), sharex=True, constrained_layout=True,
                                  gridspec_kw={"height_ratios": [3, 1.3]})
    t = ds["time"].values
    m = t > 0
    colors = plt.cm.viridis(np.linspace(0.0, 0.85, ds.sizes["samples"]))
    for i, P in enumerate(ds["samples"].values):
        c = colors[i]
        ax.plot(t[m], ds["predicted_test_error"].values[i, m], color=c, lw=1.8, label=f"P = {P} DMFT")
        ax.errorbar(t[m], ds["measured_test_error"].values[i, m], yerr=ds["measured_test_error_se"].values[i, m],
                    fmt="o", ms=3.5, mfc="white", color=c, capsize=2, lw=1, label=f"P = {P} measured")
        rel_se = ds["measured_test_error_se"].values[i, m] / ds["measured_test_error"].values[i, m]
        ax2.errorbar(t[m], 100 * ds["relative_deviation"].values[i, m], yerr=100 * rel_se, fmt="o-", ms=3,
                     color=c, capsize=2, lw=1)
    ax2.axhline(0, color="0.5", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylabel("held-out test error")
    ax2.set_ylabel("DMFT / measured - 1 [%]")
    ax2.set_xlabel("training time t")
    ax.grid(True, alpha=0.3)
    ax2.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path, dpi=120)


def spectrum_report(spec: KernelSpectrum, fit: SpectrumFit, resolved: int, extra: dict | None = None) -> dict:
    """The ``kdmft spectrum --format json`` object.

    Keys: ``eigenvalues`` λ_k, ``task_power`` v_k (summed over outputs), ``alpha_fit``,
    ``alpha_ci`` (from λ_k ∝ k^-(1+α)), and ``fit_window`` [k_lo, k_hi], ``fit_rms``,
    ``task_exponent_fit`` β (v_k ∝ k^-β) with ``task_exponent_ci``, ``task_decay_fit`` a
    (Σ_{j>k} λ_j v_j ∝ k^-a) with ``task_window``, ``tail_power`` (target power in numerically
    null modes), ``resolved_modes`` (modes whose eigenvalue is stable against halving the data),
    ``unresolved_power`` (target power Σ_{k > resolved} λ_k v_k + tail), ``points``, ``outputs``
    and the entries of ``extra``.
    """
    lam, v = spec.eigenvalues, spec.task_power
    power = lam * v
    out = {"eigenvalues": lam.tolist(), "task_power": v.tolist(), "alpha_fit": fit.alpha,
           "alpha_ci": list(fit.alpha_ci), "fit_window": [int(round(x)) for x in fit.window], "fit_rms": fit.rms,
           "task_exponent_fit": fit.task_exponent, "task_exponent_ci": list(fit.task_exponent_ci),
           "task_decay_fit": fit.task_decay, "task_window": [int(round(x)) for x in fit.task_window],
           "tail_power": spec.tail_power, "resolved_modes": int(resolved),
           "unresolved_power": float(power[resolved:].sum() + spec.tail_power),
           "total_power": float(power.sum() + spec.tail_power),
           "points": int(spec.n), "outputs": int(spec.outputs)}
    out.update(extra or {})
    return out


def write_spectrum_files(spec: KernelSpectrum, out_dir: str | Path, report: dict | None = None) -> list[Path]:
    """``eigenvalues.txt`` and ``task_power.txt`` (one value per line, readable by ``kdmft theory
    --spectrum-file/--task-file``) and, with ``report``, ``spectrum.json``; written atomically."""
    out = Path(out_dir)
    paths = [write_text("\n".join(f"{x:.17g}" for x in spec.eigenvalues) + "\n", out / "eigenvalues.txt"),
             write_text("\n".join(f"{x:.17g}" for x in spec.task_power) + "\n", out / "task_power.txt")]
    if report is not None:
        paths.append(write_text(json.dumps(report, indent=1) + "\n", out / "spectrum.json"))
    return paths


def plot_spectrum(spec: KernelSpectrum, fit: SpectrumFit, resolved: int, path: str | Path, *,
                  title: str = "") -> Path:
    """λ_k, λ_k v_k and the residual target power against k (log-log) with the fitted power laws."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.0, 4.8), constrained_layout=True)
    lam = spec.eigenvalues
    k = np.arange(1, lam.size + 1)
    power = lam * spec.task_power
    resid = np.cumsum(power[::-1])[::-1] - power + spec.tail_power
    ax.loglog(k, lam, "-", color="k", lw=1.5, label="eigenvalue λ_k")
    ax.loglog(k, np.where(power > 0, power, np.nan), ".", color="tab:blue", ms=2.5, alpha=0.6,
              label="target power per mode λ_k v_k")
    ax.loglog(k, np.where(resid > 0, resid, np.nan), "-", color="tab:orange", lw=1.2,
              label="residual target power Σ_{j>k} λ_j v_j")
    kw = np.geomspace(*fit.window, 50)
    a0 = float(np.exp(np.mean(np.log(lam[(k >= fit.window[0]) & (k <= fit.window[1])])
                              + (1 + fit.alpha) * np.log(k[(k >= fit.window[0]) & (k <= fit.window[1])]))))
    ax.loglog(kw, a0 * kw ** -(1 + fit.alpha), "--", color="tab:red", lw=2,
              label=f"fit λ_k ∝ k^-(1+α), α = {fit.alpha:.3f} [{fit.alpha_ci[0]:.3f}, {fit.alpha_ci[1]:.3f}]")
    ax.axvline(resolved, color="0.5", ls=":", lw=1, label=f"resolved modes ({resolved})")
    ax.set_xlabel("mode k")
    ax.set_ylabel("λ_k, power")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path, dpi=120)
