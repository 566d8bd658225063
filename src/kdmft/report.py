"""Analysis report of a sweep: exponents, optimal stopping, the paper's claims, phase diagram.

:func:`analyze` reads a sweep Dataset (:func:`kdmft.sweep.run_sweep`, ``kdmft sweep``) and
writes ``report.md`` (numbers and tables), ``report.json`` (the same numbers, machine-readable)
and PNG figures into a directory. Every section runs only when the sweep has the dimensions it
needs, and says so otherwise:

- claim (i): the optimum where the decreasing bias meets the growing variance (any sweep with
  an interior optimum): B(t*)/V(t*) against the population value q/r, and the rate balance
  -dB/dln t = dV/dln t (= 1 at a true optimum);
- claim (iv): exponents of E against t (per point), P (``samples``) and N (``modes``);
- claim (iii): E(t*) and t* against P and T, t* against α/(2(1+α)T), and where the finite-P
  theory departs from the population approximation (learned modes k* against P);
- claim (ii): weight decay (``weight_decay`` with T > 0): variance suppression and shift of t*;
- phase diagram: t* and E(t*) over (``weight_decay``, ``temperature``).

All exponents come from :func:`kdmft.analysis.fit_power_law` (log-log least squares with a
confidence interval, automatic window) and stand beside
:func:`kdmft.analysis.population_exponents`. For a deterministic curve the interval measures
the curvature left in the fit window, not noise.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .analysis import PowerLawFit, fit_power_law, population_exponents, population_optimum, population_t_star
from .errors import InvalidParameterError
from .io import ensure_dir, write_text
from .plots import save_figure

__all__ = ["Report", "analyze", "point_parameters"]

_MAX_ROWS = 12


@dataclass
class Report:
    """What :func:`analyze` wrote: the markdown text, the numbers and the file paths."""

    text: str
    numbers: dict[str, Any]
    files: list[Path] = field(default_factory=list)


# -- helpers ------------------------------------------------------------------------------
def _swept(ds: xr.Dataset) -> list[str]:
    return [d for d in ds.dims if d != "time"]


def point_parameters(ds: xr.Dataset, sel: dict[str, Any]) -> dict[str, float]:
    """Effective parameters (P, N, α, β, λ_1, g, T, σ², M) of one point: coordinate or attribute.

    The Bayesian pair (``prior_var``, ``noise_var``) is converted to g = σ_n²/σ_w², T = σ_n².
    """
    def get(name: str, default: float | None = None) -> float | None:
        if name in sel:
            return float(sel[name])
        if name in ds.coords and ds[name].ndim == 0:
            return float(ds[name])
        v = ds.attrs.get(name, default)
        return None if v is None else float(v)

    out = {"samples": get("samples"), "modes": get("modes"), "alpha": get("alpha"),
           "task_exponent": get("task_exponent", 0.0), "lambda1": get("lambda1", 1.0),
           "label_noise_var": get("label_noise_var", 0.0), "teacher_modes": get("teacher_modes")}
    pv, nv = get("prior_var"), get("noise_var")
    if pv is not None and nv is not None:
        out["weight_decay"], out["temperature"] = nv / pv, nv
    else:
        out["weight_decay"], out["temperature"] = get("weight_decay", 0.0), get("temperature", 0.0)
    return out


def _slices(ds: xr.Dataset, exclude: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    dims = [d for d in _swept(ds) if d not in exclude]
    vals = [ds[d].values.tolist() for d in dims]
    return [dict(zip(dims, combo, strict=True)) for combo in itertools.product(*vals)]


def _sel_text(sel: dict[str, Any]) -> str:
    short = {"samples": "P", "modes": "N", "alpha": "α", "lambda1": "λ1", "weight_decay": "g",
             "temperature": "T", "label_noise_var": "σ²", "task_exponent": "β", "teacher_modes": "M",
             "prior_var": "σ_w²", "noise_var": "σ_n²"}
    return ", ".join(f"{short.get(k, k)} = {_g(v)}" for k, v in sel.items()) or "(whole sweep)"


def _g(x: float, digits: int = 4) -> str:
    if x is None:
        return "-"
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}g}"


def _fit(x: np.ndarray, y: np.ndarray, **kw) -> PowerLawFit | None:
    try:
        return fit_power_law(x, y, **kw)
    except InvalidParameterError:
        return None


def _fit_cells(fit: PowerLawFit | None) -> list[str]:
    if fit is None:
        return ["n/a (fewer than 3 usable points)", "-", "-"]
    lo, hi = fit.slope_ci
    return [f"{fit.slope:.4f} [{lo:.4f}, {hi:.4f}]", f"{_g(fit.window[0], 3)} – {_g(fit.window[1], 3)}",
            str(fit.n_points)]


def _fit_json(fit: PowerLawFit | None) -> dict[str, Any] | None:
    if fit is None:
        return None
    return {"slope": fit.slope, "slope_ci": list(fit.slope_ci), "prefactor": fit.prefactor,
            "window": list(fit.window), "n_points": fit.n_points, "rms": fit.rms}


def _table(header: list[str], rows: list[list[str]], max_rows: int = _MAX_ROWS) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows[:max_rows]:
        out.append("| " + " | ".join(r) + " |")
    if len(rows) > max_rows:
        out.append(f"\n({len(rows) - max_rows} more rows in report.json)")
    return out


def _inside(pred: float | None, fit: PowerLawFit | None) -> str:
    if pred is None or fit is None:
        return "-"
    return "yes" if fit.slope_ci[0] <= pred <= fit.slope_ci[1] else f"no ({fit.slope - pred:+.3f})"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    return save_figure(fig, path, dpi=110, bbox_inches="tight")


def _late_time(ds: xr.Dataset) -> float:
    t = ds["time"].values
    return float(t[np.isfinite(t)].max())


def _asymptotic_value(da: xr.DataArray) -> tuple[xr.DataArray, str]:
    """The values at t = inf where they are all finite, else at the largest finite time."""
    t = da["time"].values
    if np.isinf(t).any():
        v = da.sel(time=np.inf)
        if np.all(np.isfinite(v.values)):
            return v, "t = inf"
    tl = _late_time(da.to_dataset(name="x"))
    return da.sel(time=tl), f"t = {_g(tl)} (largest finite time)"


def _exponents_for(p: dict[str, float]) -> dict[str, float] | None:
    if p["alpha"] is None:
        return None
    try:
        return population_exponents(p["alpha"], p["task_exponent"])
    except InvalidParameterError:
        return None


# -- sections -----------------------------------------------------------------------------
def _overview(ds: xr.Dataset) -> tuple[list[str], dict]:
    dims = _swept(ds)
    st = ds["stopping_status"].values
    counts = {name: int((st == code).sum()) for name, code in (("interior", 0), ("decreasing", 1),
                                                              ("increasing", 2))}
    fixed = {k: ds.attrs[k] for k in ("samples", "modes", "alpha", "lambda1", "weight_decay", "temperature",
                                      "label_noise_var", "task_exponent", "teacher_modes", "prior_var",
                                      "noise_var", "spectrum_file", "task_file") if k in ds.attrs}
    lines = ["## Sweep", "",
             f"- kdmft {ds.attrs.get('kdmft_version')}, method {ds.attrs.get('method')}, "
             f"{int(np.prod([ds.sizes[d] for d in dims]) if dims else 1)} points, {ds.sizes['time']} times "
             f"({_g(float(ds.time.min()))} … {_g(float(ds.time.max()))}).",
             "- swept: " + (", ".join(f"`{d}` ({ds.sizes[d]} values: {_g(float(ds[d].min()))} … "
                                      f"{_g(float(ds[d].max()))})" for d in dims) or "nothing"),
             "- fixed: " + ", ".join(f"{k} = {v}" for k, v in fixed.items()),
             f"- optimal stopping searched in t ∈ [{_g(ds.attrs.get('stopping_t_min'))}, "
             f"{_g(ds.attrs.get('stopping_t_max'))}] on the continuous DMFT curve: {counts['interior']} points "
             f"with an interior optimum, {counts['decreasing']} still decreasing at the end of the window, "
             f"{counts['increasing']} increasing from its start (these have t_opt = NaN)."]
    if "divergence_note" in ds.attrs:
        lines.append(f"- divergent values (stored as inf): {ds.attrs['divergence_note']}.")
    return lines + [""], {"dims": dims, "stopping_counts": counts, "fixed": {k: str(v) for k, v in fixed.items()}}


def _claim_i(ds: xr.Dataset, out: Path) -> tuple[list[str], dict, list[Path]]:
    lines = ["## (i) The optimum: decreasing bias meets growing variance", ""]
    rows, recs = [], []
    for sel in _slices(ds):
        pt = ds.sel(sel) if sel else ds
        if int(pt["stopping_status"]) != 0:
            continue
        p = point_parameters(ds, sel)
        ex = _exponents_for(p)
        b, v = float(pt["bias_opt"]), float(pt["variance_opt"])
        br, vr = float(pt["bias_rate_opt"]), float(pt["variance_rate_opt"])
        pred = ex["bias_over_variance"] if ex else None
        rec = {"point": sel, "t_opt": float(pt["t_opt"]), "test_error_opt": float(pt["test_error_opt"]),
               "bias": b, "variance": v, "bias_over_variance": b / v if v > 0 else math.inf,
               "rate_balance": br / vr if vr > 0 else math.inf, "local_bias_exponent": br / b if b > 0 else None,
               "local_variance_exponent": vr / v if v > 0 else None, "predicted_bias_over_variance": pred}
        recs.append(rec)
        rows.append([_sel_text(sel), _g(rec["t_opt"]), _g(rec["test_error_opt"]), _g(b), _g(v),
                     _g(rec["bias_over_variance"], 3), _g(pred, 3), _g(rec["rate_balance"], 5),
                     _g(rec["local_bias_exponent"], 3), _g(rec["local_variance_exponent"], 3)])
    if not recs:
        lines += ["No point of this sweep has an interior optimum (E(t) is monotone in the window: without "
                  "temperature or label noise nothing grows, and strong weight decay removes the optimum).", ""]
        return lines, {"points": []}, []
    bv = np.array([r["bias_over_variance"] for r in recs])
    rb = np.array([r["rate_balance"] for r in recs])
    pred = np.array([np.nan if r["predicted_bias_over_variance"] is None else r["predicted_bias_over_variance"]
                     for r in recs])
    lines += [f"At t* the bias decreases exactly as fast as the variance grows: over the {len(recs)} points with "
              f"an optimum, -dB/dln t ÷ dV/dln t at t* = {np.median(rb):.5f} (median; range "
              f"{rb.min():.5f} – {rb.max():.5f}; 1 at an exact optimum, the rest is the finite-difference "
              f"and solver error). The bias is not equal to the variance there: B(t*)/V(t*) = "
              f"{np.median(bv):.3g} (median; range {bv.min():.3g} – {bv.max():.3g}); the population "
              f"approximation predicts B/V = q/r = 1/(α+β) = {_g(np.nanmedian(pred), 3)} (bias ∝ t^-r, variance "
              f"∝ t^q, so r B = q V at the optimum). Where the ratio differs, the local exponents "
              f"-dln B/dln t and dln V/dln t at t* (last two columns) differ from r = (α+β)/(1+α) and "
              f"q = 1/(1+α): finite P renormalises the learning rates of the modes near the learning front, and a "
              f"finite N flattens the bias once all modes are learned.", ""]
    lines += _table(["point", "t*", "E(t*)", "B(t*)", "V(t*)", "B/V", "B/V pop.", "rate balance",
                     "-dlnB/dlnt", "dlnV/dlnt"], rows)
    # figure: the most central interior point
    i = len(recs) // 2
    sel = recs[i]["point"]
    pt = ds.sel(sel) if sel else ds
    t = ds["time"].values
    m = np.isfinite(t) & (t > 0)
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    var = pt["noise_variance"].values + pt["thermal_variance"].values
    ax.loglog(t[m], pt["test_error"].values[m], "k-", lw=3, alpha=0.6, label="test error E")
    ax.loglog(t[m], pt["bias"].values[m], "-", color="tab:blue", lw=1.2, label="bias B")
    pos = m & (var > 0)
    ax.loglog(t[pos], var[pos], "-", color="tab:red", label="variance V (noise + thermal)")
    ts, es = recs[i]["t_opt"], recs[i]["test_error_opt"]
    ax.axvline(ts, ls="--", color="gray")
    ax.plot([ts], [es], "k*", ms=12, label=f"t* = {ts:.3g}")
    ax.set_xlabel("t")
    ax.set_ylabel("error")
    ax.set_title(_sel_text(sel), fontsize=9)
    ax.legend(fontsize=8)
    ax = axes[1]
    tt = np.array([r["t_opt"] for r in recs])
    ax.semilogx(tt, bv, "o", label="B(t*)/V(t*) (DMFT)")
    if np.isfinite(pred).any():
        ax.axhline(np.nanmedian(pred), color="k", ls=":", label="population q/r")
    ax.semilogx(tt, rb, "x", color="tab:green", label="rate balance (=1 at optimum)")
    ax.set_yscale("log")   # B/V spans decades when the optimum sits on a bias plateau
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_formatter(_plt().NullFormatter())
    ax.set_xlabel("t*")
    ax.legend(fontsize=8)
    path = _save(fig, out / "claim_i_optimum.png")
    lines += ["", f"![claim (i)]({path.name})", ""]
    return lines, {"points": recs, "median_bias_over_variance": float(np.median(bv)),
                   "median_rate_balance": float(np.median(rb)),
                   "predicted_bias_over_variance": float(np.nanmedian(pred)) if np.isfinite(pred).any() else None
                   }, [path]


def _population_window(p: dict[str, float]) -> tuple[float, float]:
    """(t_lo, t_hi): from the first learned mode to the time the learning front
    k*(t) = (2Pλ_1 t)^(1/(1+α)) reaches min(P, N) (beyond it the population approximation fails)."""
    P, N, a, l1 = p["samples"], p["modes"], p["alpha"], p["lambda1"]
    n = min(P, N) if N is not None else P
    return 1 / (2 * P * l1), n ** (1 + a) / (2 * P * l1)


def _exponent_t(ds: xr.Dataset, out: Path) -> tuple[list[str], dict, list[Path]]:
    lines = ["## (iv-a) E against t", ""]
    rows, recs = [], []
    curves = []
    for sel in _slices(ds):
        pt = ds.sel(sel) if sel else ds
        p = point_parameters(ds, sel)
        ex = _exponents_for(p)
        gf = p["weight_decay"] == 0 and p["temperature"] == 0 and p["label_noise_var"] == 0 \
            and p["teacher_modes"] is None
        if p["weight_decay"] != 0:
            continue
        var = "test_error" if gf else "bias"
        t = ds["time"].values
        m = np.isfinite(t) & (t > 0)
        y = pt[var].values[m]
        pred = ex["E_t"] if ex else None
        lo, hi = _population_window(p) if p["alpha"] is not None and p["modes"] is not None else (None, None)
        # Search the straight window inside the population window [10 t_lo, t_hi] (an automatic
        # search over the whole curve would pick the widest straight part: the late plateau).
        inwin = (t[m] >= 10 * lo) & (t[m] <= hi) if lo is not None else np.ones(y.size, bool)
        fit = _fit(t[m][inwin], y[inwin], min_decades=0.5, min_points=4) if inwin.sum() >= 4 else None
        if fit is None:
            fit = _fit(t[m], y)
        rec = {"point": sel, "variable": var, "fit": _fit_json(fit), "predicted": pred,
               "population_window": [lo, hi]}
        recs.append(rec)
        rows.append([_sel_text(sel), var, *_fit_cells(fit), _g(pred, 4), _inside(pred, fit),
                     f"{_g(lo, 3)} – {_g(hi, 3)}"])
        if len(curves) < 5:
            curves.append((sel, var, t[m], y, fit))
    if not recs:
        lines += ["Every point has weight decay g > 0, where E(t) saturates at the ridge value instead of a "
                  "power law: no t-exponent measured.", ""]
        return lines, {"points": []}, []
    slopes = np.array([r["fit"]["slope"] for r in recs if r["fit"]])
    lines += ["Fits of the test error (gradient flow: g = T = σ² = 0) or, where variance grows, of the bias "
              "alone (g = 0), against t over the straight window detected inside [10/(2Pλ_1), t_hi] (the whole "
              "curve if that holds fewer than 4 times). Population prediction: E ∝ t^-(α+β)/(1+α) for "
              "1/(2Pλ_1) ≪ t ≪ t_hi, where t_hi is the time the learning "
              "front k*(t) = (2Pλ_1 t)^(1/(1+α)) reaches min(P, N) (last column). Beyond t_hi the finite-N "
              "bias floor (all modes learned) or the finite-P renormalisation (modes beyond P are learned "
              "slowly, the interpolation regime) bends the curve.", ""]
    if slopes.size:
        lines += [f"Fitted slopes: median {np.median(slopes):.4f}, range {slopes.min():.4f} – {slopes.max():.4f}.",
                  ""]
    lines += _table(["point", "fitted", "slope [95% CI]", "window in t", "n", "population", "inside CI?",
                     "population window"], rows)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for sel, var, t, y, fit in curves:
        (line,) = ax.loglog(t, y, "-", label=f"{_sel_text(sel)} ({var})")
        if fit is not None:
            tw = t[(t >= fit.window[0]) & (t <= fit.window[1])]
            ax.loglog(tw, fit.predict(tw), "--", color=line.get_color(), lw=2, alpha=0.6)
    ax.set_xlabel("t")
    ax.set_ylabel("error")
    ax.set_title("E (or bias) against t; dashed: power-law fit over its window", fontsize=9)
    ax.legend(fontsize=7)
    path = _save(fig, out / "exponent_t.png")
    lines += ["", f"![E against t]({path.name})", ""]
    return lines, {"points": recs}, [path]


def _exponent_dim(ds: xr.Dataset, out: Path, dim: str) -> tuple[list[str], dict, list[Path]]:
    """E at t -> inf against P (dim = samples) or N (dim = modes)."""
    sym = "P" if dim == "samples" else "N"
    lines = [f"## (iv-{'b' if dim == 'samples' else 'c'}) E against {sym}", ""]
    if dim not in ds.dims or ds.sizes[dim] < 3:
        lines += [f"Not in this sweep (needs `{dim}` with at least 3 values; see examples/scaling_"
                  f"{'Pt' if dim == 'samples' else 'N'}.toml).", ""]
        return lines, {}, []
    val, when = _asymptotic_value(ds["test_error"])
    rows, recs, curves = [], [], []
    for sel in _slices(ds, exclude=(dim,)):
        y = val.sel(sel) if sel else val
        x = ds[dim].values.astype(np.float64)
        fit = _fit(x, y.values, min_decades=0.5, min_points=4)
        p = point_parameters(ds, {**sel, dim: float(x.max())})
        ex = _exponents_for(p)
        pred = ex["E_P" if dim == "samples" else "E_N"] if ex else None
        if dim == "samples":
            ok = p["weight_decay"] == 0 and p["temperature"] == 0 and p["label_noise_var"] == 0 and \
                p["modes"] is not None and p["modes"] >= 4 * x.max()
            cond = "g = T = σ² = 0, N ≥ 4 P_max" if ok else "conditions not met (needs g = T = σ² = 0, N ≫ P)"
        else:
            M = p["teacher_modes"]
            ok = M is not None and M > x.max() and p["samples"] >= 10 * x.max()
            cond = "teacher wider, P ≥ 10 N_max" if ok else "conditions not met (needs teacher_modes > N, P ≫ N)"
        recs.append({"slice": sel, "at": when, "fit": _fit_json(fit), "predicted": pred, "conditions_met": ok})
        rows.append([_sel_text(sel), *_fit_cells(fit), _g(pred, 4), _inside(pred, fit), cond])
        if len(curves) < 6:
            curves.append((sel, x, y.values, fit))
    why = ("At finite t the curve saturates once Pt exceeds the slowest learned mode's time; with g > 0 the "
           "ridge regularisation flattens it at small P; with σ² > 0 or T > 0 the variance adds a P^-1-like "
           "term; as P approaches N the interpolation peak (g = 0) bends it upwards, and for P > N all modes "
           "are learned and E drops to the teacher tail."
           if dim == "samples" else
           "The teacher's modes beyond N are unlearnable and give E ≈ Σ_{k>N} λ_k v_k ∝ N^-(α+β); in training "
           "they act as label noise, which at g = 0 adds the variance tail·N/(P−N), so E(N) bends upwards as N "
           "approaches P.")
    lines += [f"Test error at {when} against {sym}, fitted per slice of the other swept parameters. Population "
              f"prediction: E ∝ {sym}^-(α+β). {why}", ""]
    lines += _table(["slice", "slope [95% CI]", f"window in {sym}", "n", "prediction", "inside CI?", "conditions"],
                    rows)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for sel, x, y, fit in curves:
        (line,) = ax.loglog(x, y, "o-", ms=3, label=_sel_text(sel))
        if fit is not None:
            xw = x[(x >= fit.window[0]) & (x <= fit.window[1])]
            ax.loglog(xw, fit.predict(xw), "--", color=line.get_color(), lw=2, alpha=0.6)
    ax.set_xlabel(sym)
    ax.set_ylabel(f"E at {when}")
    ax.legend(fontsize=7)
    path = _save(fig, out / f"exponent_{sym}.png")
    lines += ["", f"![E against {sym}]({path.name})", ""]
    return lines, {"slices": recs}, [path]


def _claim_iii(ds: xr.Dataset, out: Path) -> tuple[list[str], dict, list[Path]]:
    lines = ["## (iii) E(t*) ∝ P^-α/(1+α) and t* ≈ α/(2(1+α)T)", ""]
    have = [d for d in ("samples", "temperature") if d in ds.dims and ds.sizes[d] >= 3]
    if not have:
        lines += ["Not in this sweep (needs `samples` and/or `temperature` with at least 3 values; see "
                  "examples/sweep_PT.toml).", ""]
        return lines, {}, []
    numbers: dict[str, Any] = {}
    figs: list[Path] = []
    # per-point departure from the population t*
    dep = []
    for sel in _slices(ds):
        pt = ds.sel(sel) if sel else ds
        p = point_parameters(ds, sel)
        if int(pt["stopping_status"]) != 0 or p["alpha"] is None or p["temperature"] <= 0:
            continue
        tp = population_t_star(p["alpha"], p["samples"], p["temperature"], task_exponent=p["task_exponent"],
                               lambda1=p["lambda1"])
        k_front = (2 * p["samples"] * p["lambda1"] * tp) ** (1 / (1 + p["alpha"]))
        tpn = math.nan
        if p["modes"] is not None and p["teacher_modes"] is None and p["modes"] <= 100_000:  # cost ∝ N
            k = np.arange(1, int(p["modes"]) + 1, dtype=np.float64)
            tpn = population_optimum(p["lambda1"] * k ** -(1 + p["alpha"]), k ** -p["task_exponent"],
                                     p["samples"], p["temperature"])
        dep.append({"point": sel, "t_opt": float(pt["t_opt"]), "t_pop": tp, "ratio": float(pt["t_opt"]) / tp,
                    "t_pop_finite_N": tpn, "ratio_finite_N": float(pt["t_opt"]) / tpn,
                    "learned_modes": k_front, "learned_fraction_P": k_front / p["samples"],
                    "learned_fraction_N": k_front / p["modes"] if p["modes"] else None})
    for dim in ("samples", "temperature"):
        if dim not in have:
            continue
        sym = "P" if dim == "samples" else "T"
        rows, recs = [], []
        for sel in _slices(ds, exclude=(dim,)):
            sub = ds.sel(sel) if sel else ds
            x = ds[dim].values.astype(np.float64)
            p = point_parameters(ds, {**sel, dim: float(x[0])})
            ex = _exponents_for(p)
            ok = p["weight_decay"] == 0 and p["label_noise_var"] == 0
            for var, key in (("test_error_opt", f"Eopt_{sym}"), ("t_opt", f"topt_{sym}")):
                fit = _fit(x, sub[var].values, min_decades=0.5, min_points=4)
                pred = ex[key] if ex else None
                recs.append({"slice": sel, "variable": var, "fit": _fit_json(fit), "predicted": pred,
                             "conditions_met": ok})
                rows.append([_sel_text(sel), "E(t*)" if var == "test_error_opt" else "t*", *_fit_cells(fit),
                             _g(pred, 4), _inside(pred, fit), "g = σ² = 0" if ok else "g or σ² > 0"])
        numbers[f"against_{sym}"] = recs
        lines += [f"### against {sym}", ""]
        lines += _table(["slice", "quantity", "slope [95% CI]", f"window in {sym}", "n", "population",
                         "inside CI?", "conditions"], rows, max_rows=2 * _MAX_ROWS)
        lines += [""]
    if dep:
        r = np.array([d["ratio"] for d in dep])
        f = np.array([d["learned_fraction_P"] for d in dep])
        bins = [(0, 0.05), (0.05, 0.2), (0.2, 0.5), (0.5, math.inf)]
        brow = []
        rn = np.array([d["ratio_finite_N"] for d in dep])
        cut = np.array([d["t_pop_finite_N"] / d["t_pop"] for d in dep])
        for lo, hi in bins:
            m = (f >= lo) & (f < hi)
            if m.any():
                brow.append([f"{lo:g} – {hi:g}", str(int(m.sum())), f"{np.median(r[m] - 1) * 100:+.1f} %",
                             f"{np.max(np.abs(r[m] - 1)) * 100:.1f} %", f"{np.nanmedian(cut[m] - 1) * 100:+.1f} %",
                             f"{np.nanmedian(rn[m] - 1) * 100:+.1f} %"])
        numbers["t_star_departure"] = {"points": dep, "median_abs_dev": float(np.median(np.abs(r - 1))),
                                       "bins": brow}
        lines += ["### Where the finite-P theory departs from the population t*", "",
                  "t*_pop is the population optimum (α/(2(1+α)T) for an isotropic task; "
                  "`kdmft.analysis.population_t_star` in general). The approximation needs the learning front "
                  "at t*, k* = (2Pλ_1 t*_pop)^(1/(1+α)) modes, to be far below P (and N): the modes near the "
                  "front are learned at the renormalised rate Pλ_k G instead of Pλ_k, and once k* ~ P the "
                  "memory kernel slows learning and the variance grows faster, so t* comes earlier. "
                  "Two effects are separated: the spectrum's cutoff at N (t*_pop,N minimises the population sums "
                  "with the actual N modes; for α = 0.5 the variance rate Σ λ_k e^{-2Pλ_k t} converges only like "
                  "N^-1/2, so a finite N shifts t* even in the population limit) and the finite-P "
                  "renormalisation (DMFT t* against t*_pop,N). By learned fraction k*/P:", ""]
        lines += _table(["k*/P", "points", "median t*/t*_pop − 1", "max |t*/t*_pop − 1|",
                         "median t*_pop,N/t*_pop − 1 (cutoff)", "median t*/t*_pop,N − 1 (finite P)"], brow)
        lines += [""]
        plt = _plt()
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        ax = axes[0]
        ax.semilogx(f, r, "o")
        ax.axhline(1, color="k", ls=":")
        ax.set_xlabel("learned fraction k*/P at t*_pop")
        ax.set_ylabel("t* / t*_pop")
        ax.set_title("departure of the finite-P t* from the population value", fontsize=9)
        ax = axes[1]
        if "samples" in ds.dims and "temperature" in ds.dims:
            others = _slices(ds, exclude=("samples", "temperature"))
            sub = ds.sel(others[0]) if others and others[0] else ds
            for P in sub["samples"].values[:: max(1, sub.sizes["samples"] // 5)]:
                s2 = sub.sel(samples=P)
                ax.loglog(s2["temperature"].values, s2["test_error_opt"].values, "o-", ms=3, label=f"P = {P}")
            ax.set_xlabel("T")
            ax.set_ylabel("E(t*)")
            ax.legend(fontsize=7)
        else:
            ax.axis("off")
        figs.append(_save(fig, out / "claim_iii_stopping.png"))
        lines += [f"![claim (iii)]({figs[-1].name})", ""]
    return lines, numbers, figs


def _claim_ii(ds: xr.Dataset, out: Path) -> tuple[list[str], dict, list[Path]]:
    lines = ["## (ii) Weight decay suppresses the variance growth yet barely moves t*", ""]
    if "weight_decay" not in ds.dims or ds.sizes["weight_decay"] < 2:
        lines += ["Not in this sweep (needs `weight_decay` with at least 2 values; see "
                  "examples/weight_decay.toml).", ""]
        return lines, {}, []
    tl = _late_time(ds)
    gvals = ds["weight_decay"].values.astype(np.float64)
    order = np.argsort(gvals)
    recs, rows, summary = [], [], []
    for sel in _slices(ds, exclude=("weight_decay",)):
        sub = (ds.sel(sel) if sel else ds).isel(weight_decay=order)
        g = sub["weight_decay"].values.astype(np.float64)
        ts = sub["t_opt"].values
        var_late = (sub["noise_variance"] + sub["thermal_variance"]).sel(time=tl).values
        var_opt = sub["variance_opt"].values
        e_opt = sub["test_error_opt"].values
        if not np.isfinite(ts[0]):
            continue
        shift = ts / ts[0] - 1
        supp = var_late / var_late[0]
        for i in range(g.size):
            rows.append([_sel_text(sel), _g(g[i]), _g(ts[i]), f"{shift[i] * 100:+.1f} %" if np.isfinite(shift[i])
                         else "no optimum", _g(var_opt[i]), _g(var_late[i]), _g(supp[i], 3), _g(e_opt[i])])
        within = np.isfinite(shift) & (np.abs(shift) <= 0.10)
        # largest g up to which every t* stays within 10 % of the smallest-g value
        k = int(np.argmin(within)) - 1 if not within.all() else g.size - 1
        rec = {"slice": sel, "weight_decay": g.tolist(), "t_opt": ts.tolist(), "t_opt_shift": shift.tolist(),
               "variance_late": var_late.tolist(), "variance_suppression_late": supp.tolist(),
               "variance_opt": var_opt.tolist(), "test_error_opt": e_opt.tolist(), "t_late": tl,
               "g_max_within_10pct": float(g[k]) if k >= 0 else None,
               "suppression_at_g_max_within_10pct": float(supp[k]) if k >= 0 else None}
        recs.append(rec)
        if k > 0:
            summary.append(f"- {_sel_text(sel)}: from g = {_g(g[0])} to g = {_g(g[k])} t* moves by at most "
                           f"{np.nanmax(np.abs(shift[:k + 1])) * 100:.1f} % (to {_g(ts[k])}) while the variance at "
                           f"t = {_g(tl)} falls to {supp[k] * 100:.3g} % of its g = {_g(g[0])} value and V(t*) to "
                           f"{var_opt[k] / var_opt[0] * 100:.3g} %; "
                           + ("beyond, " + (f"at g = {_g(g[k + 1])}, t* shifts by {shift[k + 1] * 100:+.1f} %"
                                           if k + 1 < g.size and np.isfinite(shift[k + 1])
                                           else "the optimum disappears") if k + 1 < g.size
                              else "this holds over the whole range swept") + ".")
        elif k == 0:
            summary.append(f"- {_sel_text(sel)}: already the second g ({_g(g[1])}) moves t* by "
                           f"{shift[1] * 100:+.1f} %.")
    if not recs:
        lines += ["No slice has an optimum at its smallest weight decay (needs T > 0 or σ² > 0).", ""]
        return lines, {}, []
    lines += [f"Variance = label-noise + thermal variance. 'Late' is t = {_g(tl)}, the largest finite time. "
              "Weight decay caps every mode's variance at T/(g + Pλ_k) and (at P ≤ N) stops the linear growth "
              "in the null space, but t* is set where the bias of the modes at the learning front, rate "
              "Pλ_k ≫ g, balances their variance; g only matters for modes with Pλ_k ≲ g, which are learned "
              "after t* as long as g ≲ 1/t*. So t* moves once g approaches 1/t*.", ""]
    lines += summary + [""]
    lines += _table(["slice", "g", "t*", "Δt*", "V(t*)", "V(late)", "V(late)/V_g0(late)", "E(t*)"], rows,
                    max_rows=3 * _MAX_ROWS)
    # figure
    sel = recs[0]["slice"]
    sub = (ds.sel(sel) if sel else ds).isel(weight_decay=order)
    t = ds["time"].values
    m = np.isfinite(t) & (t > 0)
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    cmap = plt.get_cmap("viridis")
    n = sub.sizes["weight_decay"]
    for i in range(n):
        s = sub.isel(weight_decay=i)
        c = cmap(i / max(n - 1, 1))
        ax.loglog(t[m], s["test_error"].values[m], "-", color=c, label=f"g = {_g(float(s.weight_decay), 3)}")
        v = (s["noise_variance"] + s["thermal_variance"]).values[m]
        ax.loglog(t[m][v > 0], v[v > 0], ":", color=c)
        if np.isfinite(float(s["t_opt"])):
            ax.plot([float(s["t_opt"])], [float(s["test_error_opt"])], "*", color=c, ms=10)
    ax.set_xlabel("t")
    ax.set_ylabel("E (solid), variance (dotted)")
    ax.set_title(_sel_text(sel), fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    ax = axes[1]
    g = np.array(recs[0]["weight_decay"])
    gp = np.where(g > 0, g, np.nan)
    ax.semilogx(gp, np.array(recs[0]["t_opt"]) / recs[0]["t_opt"][0], "o-", label="t*(g)/t*(g_min)")
    ax.semilogx(gp, recs[0]["variance_suppression_late"], "s-", label=f"V(t={_g(tl)}; g)/V(g_min)")
    ax.axhline(1, color="k", ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("g (g = 0 not shown on the log axis)")
    ax.legend(fontsize=8)
    path = _save(fig, out / "claim_ii_weight_decay.png")
    lines += ["", f"![claim (ii)]({path.name})", ""]
    return lines, {"slices": recs}, [path]


def _phase(ds: xr.Dataset, out: Path) -> tuple[list[str], dict, list[Path]]:
    lines = ["## Phase diagram over (g, T)", ""]
    if not all(d in ds.dims and ds.sizes[d] >= 2 for d in ("weight_decay", "temperature")):
        lines += ["Not in this sweep (needs `weight_decay` and `temperature` with at least 2 values each; see "
                  "examples/phase_gT.toml).", ""]
        return lines, {}, []
    others = _slices(ds, exclude=("weight_decay", "temperature"))
    sel = others[0]
    sub = (ds.sel(sel) if sel else ds).transpose("weight_decay", "temperature", ...)
    g = sub["weight_decay"].values.astype(np.float64)
    T = sub["temperature"].values.astype(np.float64)
    ts = sub["t_opt"].values
    es = sub["test_error_opt"].values
    st = sub["stopping_status"].values
    boundary = []
    for j, Tj in enumerate(T):
        no = np.flatnonzero(st[:, j] != 0)
        boundary.append({"temperature": float(Tj),
                         "smallest_g_without_optimum": float(g[no].min()) if no.size else None,
                         "t_opt_range": [float(np.nanmin(ts[:, j])), float(np.nanmax(ts[:, j]))]
                         if np.isfinite(ts[:, j]).any() else None})
    tl = _late_time(sub)
    e_late = sub["test_error"].sel(time=tl).values
    gain = e_late / es
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    fig.subplots_adjust(wspace=0.4)
    for ax, arr, title in ((axes[0], ts, "t* (optimal stopping time)"), (axes[1], es, "E(t*)"),
                           (axes[2], gain, f"E(t={_g(tl)}) / E(t*): gain of stopping")):
        with np.errstate(divide="ignore", invalid="ignore"):
            la = np.log10(arr)
        im = ax.imshow(la, origin="lower", aspect="auto", cmap="viridis")
        bad = ~np.isfinite(la)
        if bad.any():
            ax.imshow(np.where(bad, 1.0, np.nan), origin="lower", aspect="auto", cmap="Greys", vmin=0, vmax=2)
        ax.set_xticks(range(T.size), [_g(x, 2) for x in T], rotation=60, fontsize=7)
        ax.set_yticks(range(g.size), [_g(x, 2) for x in g], fontsize=7)
        ax.set_xlabel("temperature T")
        ax.set_ylabel("weight decay g")
        ax.set_title(title + " (log10; grey: no optimum)", fontsize=9)
        fig.colorbar(im, ax=ax)
    path = _save(fig, out / "phase_gT.png")
    n_int = int((st == 0).sum())
    p0 = point_parameters(ds, {**sel, "weight_decay": float(g.min()), "temperature": float(T[0])})
    i0 = int(np.argmin(g))
    pop_txt = ""
    if p0["alpha"] is not None:
        pop = np.array([population_t_star(p0["alpha"], p0["samples"], Tj, task_exponent=p0["task_exponent"],
                                          lambda1=p0["lambda1"]) for Tj in T])
        ratio = ts[i0] / pop
        if np.isfinite(ratio).any():
            pop_txt = (f" At g = {_g(g[i0])}, t*/t*_pop (t*_pop = α/(2(1+α)T) for an isotropic task) ranges over "
                       f"{np.nanmin(ratio):.3g} – {np.nanmax(ratio):.3g} along T (finite P = {_g(p0['samples'])}, "
                       f"N = {_g(p0['modes'])}: see claim (iii)).")
    gt = np.array([b["smallest_g_without_optimum"] or np.nan for b in boundary]) * np.nanmax(ts[i0:i0 + 1], axis=0)
    lines += [f"{_sel_text(sel)}: {n_int} of {st.size} (g, T) cells have an interior optimum. t* ranges over "
              f"{_g(np.nanmin(ts))} – {_g(np.nanmax(ts))} and E(t*) over {_g(np.nanmin(es))} – "
              f"{_g(np.nanmax(es))}.{pop_txt} Weight decay leaves t* almost unchanged until g approaches 1/t*; "
              f"then the optimum disappears (grey cells: E decreases monotonically to its ridge plateau). The "
              f"boundary value g_c·t*(g_min) is {_g(np.nanmin(gt), 3)} – {_g(np.nanmax(gt), 3)} over T.", ""]
    rows = [[_g(b["temperature"]), _g(b["smallest_g_without_optimum"]),
             "-" if b["t_opt_range"] is None else f"{_g(b['t_opt_range'][0])} – {_g(b['t_opt_range'][1])}"]
            for b in boundary]
    lines += _table(["T", "smallest g without optimum", "t* range over g"], rows, max_rows=2 * _MAX_ROWS)
    lines += ["", f"![phase diagram]({path.name})", ""]
    return lines, {"slice": sel, "boundary": boundary, "interior_cells": n_int, "cells": int(st.size),
                   "t_opt": ts.tolist(), "test_error_opt": es.tolist(),
                   "weight_decay": g.tolist(), "temperature": T.tolist()}, [path]


# -- front door ---------------------------------------------------------------------------
def _json_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else str(float(x))
    return x


#: Variables of a sweep file that the report reads.
_REQUIRED = ("time", "test_error", "bias", "noise_variance", "thermal_variance", "t_opt", "test_error_opt",
             "stopping_status", "bias_opt", "variance_opt", "bias_rate_opt", "variance_rate_opt")


def analyze(ds: xr.Dataset, out_dir: str | Path) -> Report:
    """Analyse a sweep Dataset; write ``report.md``, ``report.json`` and figures into ``out_dir``.

    Parameters
    ----------
    ds : xarray.Dataset
        A sweep result (``attrs["kind"] == "sweep"``).
    out_dir : path
        Directory for the report (created if needed; files are written atomically).

    Returns
    -------
    Report
        The markdown text, the numbers (as in report.json) and the paths written.
    """
    if not isinstance(ds, xr.Dataset) or ds.attrs.get("kind") != "sweep":
        raise InvalidParameterError("results", "a sweep results file (written by kdmft sweep)",
                                    detail="its kind attribute is not 'sweep'")
    missing = [k for k in _REQUIRED if k not in ds.variables]
    if missing:
        raise InvalidParameterError("results", "a sweep results file (written by kdmft sweep)",
                                    detail=f"it lacks {', '.join(missing)}")
    out = Path(out_dir)
    ensure_dir(out, "--out-dir")
    text = ["# kdmft sweep analysis", ""]
    numbers: dict[str, Any] = {}
    files: list[Path] = []
    lines, nums = _overview(ds)
    text += lines
    numbers["sweep"] = nums
    for name, fn in (("claim_i", _claim_i), ("exponent_t", _exponent_t),
                     ("exponent_P", lambda d, o: _exponent_dim(d, o, "samples")),
                     ("exponent_N", lambda d, o: _exponent_dim(d, o, "modes")),
                     ("claim_iii", _claim_iii), ("claim_ii", _claim_ii), ("phase_gT", _phase)):
        lines, nums, figs = fn(ds, out)
        text += lines
        numbers[name] = nums
        files += figs
    text += ["---", "Slopes are least-squares fits in log-log coordinates (kdmft.analysis.fit_power_law) over "
             "the widest window where a straight line leaves ≤ 2 % rms residual; the interval is the 95 % "
             "t-interval of the slope, which for these deterministic curves measures the curvature left in the "
             "window. Population predictions: kdmft.analysis.population_exponents (THEORY.md section 5)."]
    md = "\n".join(text) + "\n"
    files.insert(0, write_text(md, out / "report.md"))
    files.insert(1, write_text(json.dumps(_json_safe(numbers), indent=1), out / "report.json"))
    return Report(md, numbers, files)
