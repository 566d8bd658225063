"""``kdmft spectrum`` and ``kdmft compare``: real-data kernel spectra and predicted-vs-measured curves.

Registered on :data:`kdmft.cli.app` (imported at the end of :mod:`kdmft.cli`). Thin commands:
lazy imports, one library call each (:mod:`kdmft.realdata`, :mod:`kdmft.compare`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .cli import _check_format, _console, _run_guarded, _with_progress, app

Dataset = Annotated[str | None, typer.Option(
    "--dataset", help="Bundled data set: digits, breast_cancer, wine, iris, diabetes (scikit-learn, offline).")]
Data = Annotated[Path | None, typer.Option(
    "--data", help="User features, n rows x d columns (.npy, .csv or whitespace .txt); with --targets.")]
Targets = Annotated[Path | None, typer.Option("--targets", help="User targets, n values (.npy/.csv/.txt).")]
Task = Annotated[str, typer.Option(
    "--task", help="auto, classification (one-hot centred outputs) or regression (centred, unit variance).")]
TargetClass = Annotated[int | None, typer.Option(
    "--target-class", help="Classification: one class against the rest (one output) instead of one-hot.")]
Kernel = Annotated[str, typer.Option(
    "--kernel", help="relu-nngp, relu-ntk, erf-nngp (network kernels), rbf, linear or polynomial.")]
Depth = Annotated[int | None, typer.Option(
    "--depth", help="Hidden layers of a network kernel (default 1); not for rbf/linear/polynomial.")]
Format = Annotated[str, typer.Option("--format", help="Output format: table or json.")]


def _load(dataset, data, targets, task, target_class, kernel, depth):
    """(RealData, K, kernel description) for the command's data options."""
    from .kernels import NETWORK_KERNELS, kernel_matrix
    from .realdata import load_real_data

    rd = load_real_data(dataset, data=None if data is None else str(data),
                        targets=None if targets is None else str(targets), task=task, target_class=target_class)
    if kernel in NETWORK_KERNELS and depth is None:
        depth = 1
    K = kernel_matrix(rd.X, kernel, depth)
    return rd, K, depth


@app.command()
def spectrum(
    dataset: Dataset = None, data: Data = None, targets: Targets = None, task: Task = "auto",
    target_class: TargetClass = None, kernel: Kernel = "relu-nngp", depth: Depth = None, fmt: Format = "table",
    out_dir: Annotated[Path | None, typer.Option(
        "--out-dir", help="Write eigenvalues.txt, task_power.txt (for kdmft theory --spectrum-file/--task-file), "
                          "spectrum.json and spectrum.png here.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random half used to count resolved modes.")] = 0,
) -> None:
    """Kernel spectrum λ_k = eig/n and task power v_k of a data set, with power-law fits."""
    def body():
        from .compare import plot_spectrum, spectrum_report, write_spectrum_files
        from .errors import InvalidParameterError
        from .realdata import fit_spectrum, kernel_spectrum, resolved_modes

        _check_format(fmt)
        if seed < 0:
            raise InvalidParameterError("--seed", "an integer >= 0", seed)
        rd, K, d = _load(dataset, data, targets, task, target_class, kernel, depth)
        spec = kernel_spectrum(K, rd.Y)
        res = resolved_modes(K, seed=seed)
        fit = fit_spectrum(spec, max_mode=res)
        report = spectrum_report(spec, fit, res, {"dataset": rd.name, "kernel": kernel, "depth": d,
                                                  "task": rd.task, "target_class": rd.target_class})
        if out_dir is not None:
            paths = write_spectrum_files(spec, out_dir, report)
            paths.append(plot_spectrum(spec, fit, res, Path(out_dir) / "spectrum.png",
                                       title=f"{rd.name}, {kernel}" + (f" (depth {d})" if d else "")))
        if fmt == "json":
            typer.echo(json.dumps(report))
        else:
            _print_spectrum(report)
        if out_dir is not None:
            for p in paths:
                typer.echo(f"wrote {p}", err=fmt == "json")

    _run_guarded(body)


def _print_spectrum(r: dict) -> None:
    c = _console()
    lam, v = r["eigenvalues"], r["task_power"]
    c.print(f"{r['dataset']} ({r['task']}, {r['points']} points, {r['outputs']} output(s)), kernel {r['kernel']}"
            + (f", depth {r['depth']}" if r["depth"] else ""), highlight=False)
    c.print(f"modes: {len(lam)} non-null, {r['resolved_modes']} resolved (stable against halving the data)",
            highlight=False)
    k10 = min(10, len(lam))
    c.print(f"λ_1 = {lam[0]:.4g}, λ_{k10} = {lam[k10 - 1]:.4g}, λ_last = λ_{len(lam)} = {lam[-1]:.4g}",
            highlight=False)
    c.print(f"α = {r['alpha_fit']:.4f}  (95% CI [{r['alpha_ci'][0]:.4f}, {r['alpha_ci'][1]:.4f}]; "
            f"λ_k ∝ k^-(1+α) fitted over k in [{r['fit_window'][0]:.0f}, {r['fit_window'][1]:.0f}], "
            f"rms {r['fit_rms']:.3f})", highlight=False)
    c.print(f"task: Σ_(j>k) λ_j v_j ∝ k^-{r['task_decay_fit']:.3f} over k in [{r['task_window'][0]:.0f}, "
            f"{r['task_window'][1]:.0f}], so v_k ∝ k^-β with β = {r['task_exponent_fit']:.3f} "
            f"[{r['task_exponent_ci'][0]:.3f}, {r['task_exponent_ci'][1]:.3f}]", highlight=False)
    c.print(f"target power: total {r['total_power']:.4g}, beyond the resolved modes {r['unresolved_power']:.4g}, "
            f"in numerically null modes (tail, acts as label noise) {r['tail_power']:.3g}", highlight=False)
    c.print("top modes:", highlight=False)
    c.print(f"  {'k':>4}  {'λ_k':>10}  {'v_k':>10}  {'λ_k v_k':>10}", highlight=False)
    for k in range(min(8, len(lam))):
        c.print(f"  {k + 1:4d}  {lam[k]:10.4e}  {v[k]:10.4e}  {lam[k] * v[k]:10.4e}", highlight=False)


def _int_list(text: str, name: str) -> list[int]:
    from .errors import InvalidParameterError

    try:
        out = [int(s) for s in str(text).split(",")]
    except ValueError:
        raise InvalidParameterError(name, "a comma-separated list of integers", text) from None
    return out


@app.command()
def compare(
    dataset: Dataset = None, data: Data = None, targets: Targets = None, task: Task = "auto",
    target_class: TargetClass = None, kernel: Kernel = "relu-nngp", depth: Depth = None,
    samples: Annotated[str, typer.Option("--samples", help="Comma-separated training-set sizes P.")] = "50,100,200",
    times: Annotated[str, typer.Option(
        "--times", help="Comma-separated finite times t >= 0 (SDE units).")] = "0.1,1,10,100,1000,10000",
    weight_decay: Annotated[float, typer.Option("--weight-decay", help="Weight decay g >= 0.")] = 1e-3,
    temperature: Annotated[float, typer.Option(
        "--temperature", help="Langevin temperature T >= 0 per output.")] = 1e-4,
    label_noise_var: Annotated[float, typer.Option(
        "--label-noise-var", help="Label-noise variance σ² >= 0 per output.")] = 0.0,
    subsets: Annotated[int, typer.Option("--subsets", help="Random P-subsets per P (>= 2).")] = 20,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the subsets (>= 0).")] = 0,
    sampling: Annotated[str, typer.Option(
        "--sampling", help="heldout: P distinct points, error on the n - P others; population: P points "
                           "with replacement, error over all n points (the theory's setting).")] = "heldout",
    out_dir: Annotated[Path, typer.Option(
        "--out-dir", "-o", help="Directory for compare_<data>_<kernel>.nc/.png/.md.")] = Path("kdmft-results"),
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Skip the PNG figure.")] = False,
    fmt: Format = "table",
) -> None:
    """DMFT prediction from the data's kernel spectrum against kernel regression trained on random P-subsets."""
    def body():
        import numpy as np

        from .compare import compare_curves, deviation_table, plot_compare
        from .config import parse_times
        from .errors import InvalidParameterError
        from .io import write_netcdf, write_text
        from .model import Problem  # noqa: F401  (validates g, T, σ² through the Problem below)

        _check_format(fmt)
        P_list = _int_list(samples, "--samples")
        if len(set(P_list)) != len(P_list):
            raise InvalidParameterError("--samples", "distinct values", samples)
        t = parse_times(times)
        if np.any(np.isinf(t)):
            raise InvalidParameterError("--times", "finite (measured curves are at finite times)", times)
        for name, val in (("--weight-decay", weight_decay), ("--temperature", temperature),
                          ("--label-noise-var", label_noise_var)):
            if not (np.isfinite(val) and val >= 0):
                raise InvalidParameterError(name, "a finite number >= 0", val)
        if seed < 0:
            raise InvalidParameterError("--seed", "an integer >= 0", seed)
        from .io import check_output_dir

        check_output_dir(out_dir, "--out-dir")
        rd, K, d = _load(dataset, data, targets, task, target_class, kernel, depth)
        config = {"dataset": rd.name, "kernel": kernel, "depth": d, "task": rd.task, "target_class": rd.target_class,
                  "data": None if data is None else str(data), "targets": None if targets is None else str(targets),
                  "samples": P_list, "times": t.tolist(), "weight_decay": weight_decay, "temperature": temperature,
                  "label_noise_var": label_noise_var, "subsets": subsets, "seed": seed, "sampling": sampling}
        ds = _with_progress(lambda cb: compare_curves(
            K, rd.Y, P_list, t, weight_decay=weight_decay, temperature=temperature,
            label_noise_var=label_noise_var, subsets=subsets, seed=seed, sampling=sampling, progress=cb,
            attrs={"dataset": rd.name, "kernel": kernel, "depth": d, "task": rd.task,
                   "config_json": json.dumps(config)}), "training on subsets", enabled=fmt == "table")
        stem = f"compare_{rd.name}_{kernel}" + (f"_L{d}" if d else "") + ("_pop" if sampling == "population" else "")
        title = (f"{rd.name}, {kernel}" + (f" depth {d}" if d else "")
                 + f", g = {weight_decay:.3g}, T = {temperature:.3g}, σ² = {label_noise_var:.3g}, "
                 f"{subsets} subsets ({sampling})")
        table = deviation_table(ds, title=title)
        paths = [write_netcdf(ds, Path(out_dir) / f"{stem}.nc"), write_text(table, Path(out_dir) / f"{stem}.md")]
        if not no_plot:
            paths.append(plot_compare(ds, Path(out_dir) / f"{stem}.png", title=title))
        if fmt == "json":
            typer.echo(json.dumps({
                "samples": P_list, "times": t.tolist(),
                **{k: ds[k].values.tolist() for k in ("predicted_test_error", "measured_test_error",
                                                      "measured_test_error_se", "relative_deviation")}}))
        else:
            typer.echo("relative deviation DMFT/measured - 1 of the test error (relative SE of the measurement):")
            typer.echo(table)
        for p in paths:
            typer.echo(f"wrote {p}", err=fmt == "json")

    _run_guarded(body)
