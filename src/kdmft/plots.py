"""Figures (matplotlib, Agg backend; files are written atomically)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from .io import atomic_path

__all__ = ["plot_learning_curve", "plot_real_data", "plot_mode_distributions", "save_figure"]

_COLORS = {"test_error": "k", "bias": "tab:blue", "noise_variance": "tab:orange",
           "thermal_variance": "tab:red"}
_LABELS = {"test_error": "test error", "bias": "bias", "noise_variance": "label-noise variance",
           "thermal_variance": "thermal variance"}


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, *, dpi: int = 130, **savefig_kw) -> Path:
    """Write matplotlib figure ``fig`` as PNG atomically (no partial file on failure) and close it."""
    out = Path(path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", **savefig_kw)
    _figure().close(fig)
    return out


def _finite_positive(t: np.ndarray) -> np.ndarray:
    return np.isfinite(t) & (t > 0)


def plot_learning_curve(theory: xr.Dataset, path: str | Path, *, simulation: xr.Dataset | None = None,
                        t_star: float | None = None, e_star: float | None = None,
                        title: str = "") -> Path:
    """Test error and its bias / variance parts against t (log axes).

    Theory as lines, simulation as points with ±1 standard-error bars, and the optimal stopping
    time as a dashed vertical line with a marker at (t*, E(t*)).
    """
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7.0, 4.8), constrained_layout=True)
    t = theory["time"].values
    m = _finite_positive(t)
    for name, color in _COLORS.items():
        y = theory[name].values[m]
        if name != "test_error" and not np.any(y > 0):
            continue  # a part that is identically zero (no noise, T = 0) is not drawn
        ax.plot(t[m], np.where(y > 0, y, np.nan), color=color, lw=2 if name == "test_error" else 1.4,
                label=f"{_LABELS[name]} (DMFT)")
        if simulation is not None and name in simulation:
            ts = simulation["time"].values
            ms = _finite_positive(ts)
            ys, es = simulation[name].values[ms], simulation[name + "_se"].values[ms]
            ok = ys > 0
            label = "exact simulation (open circles, ±1 SE)" if name == "test_error" else None
            ax.errorbar(ts[ms][ok], ys[ok], yerr=es[ok], fmt="o", ms=3.5, color=color, mfc="white",
                        capsize=2, lw=1, label=label)
    if t_star is not None and np.isfinite(t_star):
        ax.axvline(t_star, color="0.4", ls="--", lw=1)
        if e_star is not None:
            ax.plot([t_star], [e_star], marker="*", ms=12, color="gold", mec="k",
                    label=f"optimal stopping t* = {t_star:.3g}", ls="none")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"training time t [{theory['time'].attrs.get('units', '').split(' (')[0]}]")
    ax.set_ylabel("error")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return save_figure(fig, path)


def plot_real_data(theory: xr.Dataset, measured: xr.Dataset, path: str | Path, *, title: str = "") -> Path:
    """Predicted (DMFT) against measured (kernel regression) test error, with relative deviation."""
    plt = _figure()
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(7.0, 6.0), sharex=True, constrained_layout=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    t = theory["time"].values
    m = _finite_positive(t)
    for name in ("test_error", "bias", "thermal_variance"):
        y = theory[name].values[m]
        if name != "test_error" and not np.any(y > 0):
            continue
        color = _COLORS[name]
        ax.plot(t[m], y, color=color, lw=2 if name == "test_error" else 1.2, label=f"{_LABELS[name]} (DMFT)")
        ax.errorbar(t[m], measured[name].values[m], yerr=measured[name + "_se"].values[m], fmt="o",
                    ms=3.5, mfc="white", color=color, capsize=2, lw=1,
                    label=f"{_LABELS[name]} (measured)")
    dev = theory["test_error"].values[m] / measured["test_error"].values[m] - 1
    ax2.axhline(0, color="0.5", lw=1)
    ax2.plot(t[m], 100 * dev, "o-", color="k", ms=3)
    ax2.set_ylabel("DMFT / measured - 1 [%]")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax2.set_xlabel("training time t")
    ax.set_ylabel("held-out test error")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax2.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_mode_distributions(process: xr.Dataset, samples: xr.Dataset, path: str | Path, *,
                            reference: xr.Dataset | None = None, title: str = "") -> Path:
    """Histograms of simulated w_k(t) against the DMFT Gaussian, and a QQ plot per mode.

    One row per mode: a panel per time with the histogram of ``samples`` (and of ``reference``,
    e.g. DMFT samples, as a step line when given) over the theory density, then a QQ plot of the
    standardised residuals z = (w_k - m_k w̄_k)/sqrt(c_k(t,t)) against N(0, 1).
    """
    from scipy import stats

    plt = _figure()
    modes = samples["mode"].values
    times = samples["time"].values
    p = process.sel(mode=modes, time=times)
    K, nt = modes.size, times.size
    fig, axes = plt.subplots(K, nt + 1, figsize=(2.6 * (nt + 1), 2.3 * K), constrained_layout=True, squeeze=False)
    w = samples["amplitude"].values
    wbar = samples["teacher"].values
    for i, k in enumerate(modes):
        qq = axes[i, nt]
        for j, t in enumerate(times):
            ax = axes[i, j]
            m = float(p["mean_factor"].values[i, j])
            sd = float(np.sqrt(p["variance"].values[i, j]))
            x = w[:, i, j]
            ax.hist(x, bins=40, density=True, color="0.75", label="simulation")
            if reference is not None:
                ax.hist(reference["amplitude"].values[:, i, j], bins=40, density=True, histtype="step",
                        color="tab:blue", label="DMFT samples")
            if sd > 0:
                # Theory density: the mixture over the samples' teacher values (one Gaussian if fixed).
                grid = np.linspace(x.min(), x.max(), 200)
                centres = np.unique(np.round(m * wbar[:, i], 12))
                if centres.size <= 1:
                    dens = stats.norm.pdf(grid, centres[0] if centres.size else 0.0, sd)
                else:
                    sd_tot = float(np.sqrt(sd**2 + m * m * np.var(wbar[:, i])))
                    dens = stats.norm.pdf(grid, m * float(np.mean(wbar[:, i])), sd_tot)
                ax.plot(grid, dens, color="k", lw=1.4, label="DMFT")
                z = np.sort((x - m * wbar[:, i]) / sd)
                q = stats.norm.ppf((np.arange(z.size) + 0.5) / z.size)
                qq.plot(q, z, ".", ms=2, label=f"t = {t:.3g}")
            ax.set_title(f"k = {k}, t = {t:.3g}", fontsize=8)
            ax.tick_params(labelsize=7)
            if i == 0 and j == 0:
                ax.legend(fontsize=6)
        lim = 4.0
        qq.plot([-lim, lim], [-lim, lim], "k-", lw=1)
        qq.set_xlim(-lim, lim)
        qq.set_ylim(-lim, lim)
        qq.set_title(f"k = {k}: QQ of residuals", fontsize=8)
        qq.set_xlabel("N(0,1) quantile", fontsize=7)
        qq.tick_params(labelsize=7)
        qq.legend(fontsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)
