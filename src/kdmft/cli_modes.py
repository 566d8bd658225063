"""``kdmft modes``: the effective single-mode processes of the DMFT against exact simulation.

Registered on :data:`kdmft.cli.app` (imported at the end of :mod:`kdmft.cli`). A thin command over
:func:`kdmft.theory.single_mode.mode_process`, :func:`kdmft.simulate.simulate_modes` and
:func:`kdmft.theory.single_mode.compare_modes`.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated

import typer

from .cli import (
    Alpha,
    BayesNoise,
    Format,
    Lambda1,
    Modes,
    NoiseVar,
    PriorVar,
    Samples,
    SpectrumFile,
    TaskExponent,
    TaskFile,
    TeacherModes,
    Temperature,
    Times,
    WeightDecay,
    _console,
    _echo_warnings,
    _problem_and_times,
    _run_guarded,
    _with_progress,
    app,
)


@app.command()
def modes(
    modes: Modes = None, alpha: Alpha = None, lambda1: Lambda1 = 1.0, spectrum_file: SpectrumFile = None,
    task_exponent: TaskExponent = None, task_file: TaskFile = None, samples: Samples = None,
    weight_decay: WeightDecay = None, temperature: Temperature = None, label_noise_var: NoiseVar = 0.0,
    teacher_modes: TeacherModes = None, prior_var: PriorVar = None, noise_var: BayesNoise = None,
    times: Times = None, fmt: Format = "table",
    mode_index: Annotated[str, typer.Option(
        "--mode-index", help="Comma-separated 1-based modes k (1 = largest eigenvalue).")] = "1,4,16",
    dt: Annotated[float, typer.Option("--dt", help="Time-domain grid step (SDE time units).")] = 1e-2,
    realizations: Annotated[int, typer.Option("--realizations", help="Simulated data sets (>= 2).")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (>= 0).")] = 0,
    random_teacher: Annotated[bool, typer.Option(
        "--random-teacher", help="Draw w̄ ~ N(0, diag v) per data set (default: fixed w̄_k = sqrt(v_k)).")] = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write histograms and QQ plots to this PNG.")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write theory, comparison and samples to this netCDF file.")] = None,
) -> None:
    """Single-mode processes: DMFT mean/variance/Gaussian shape of w_k(t) against exact simulation."""
    def body():
        import numpy as np
        import xarray as xr

        from .errors import FiniteSizeWarning, InvalidParameterError
        from .simulate import simulate_modes
        from .theory.single_mode import check_mode_indices, compare_modes, mode_process

        problem, t = _problem_and_times(fmt, times, modes, alpha, lambda1, spectrum_file, task_exponent, task_file,
                                        samples, weight_decay, temperature, label_noise_var, teacher_modes,
                                        prior_var, noise_var)
        from .io import check_output_file

        if out is not None and plot is not None and Path(out).resolve() == Path(plot).resolve():
            raise InvalidParameterError("--plot", "a different file from --out", str(plot))
        for flag, path in (("--out", out), ("--plot", plot)):
            if path is not None:
                check_output_file(path, flag)
        try:
            ks = [int(x) for x in mode_index.split(",")]
        except ValueError:
            raise InvalidParameterError("--mode-index", "comma-separated integers >= 1", mode_index) from None
        check_mode_indices(ks, problem.modes, "--mode-index")
        teacher = "random" if random_teacher else None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            proc = mode_process(problem, ks, t, dt=dt)
        _echo_warnings(caught, FiniteSizeWarning)
        sim = _with_progress(lambda cb: simulate_modes(problem, ks, t, realizations, seed, teacher=teacher,
                                                       progress=cb), "simulating", enabled=fmt == "table")
        cmp = compare_modes(proc, sim)
        written = []
        if out is not None:
            from .io import write_netcdf

            ds = xr.merge([proc, cmp, sim.rename({"amplitude": "sim_amplitude", "teacher": "sim_teacher"})],
                          combine_attrs="override")
            ds.attrs.update({"kind": "mode_comparison", "seed": int(seed), "realizations": int(realizations),
                             "teacher": sim.attrs["teacher"]})
            written.append(write_netcdf(ds, out))
        if plot is not None:
            from .plots import plot_mode_distributions

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                written.append(plot_mode_distributions(
                    proc, sim, plot, title=f"N = {problem.modes}, P = {problem.samples}, g = {problem.weight_decay:g}, "
                    f"T = {problem.temperature:g}, σ² = {problem.label_noise_var:g}; {realizations} data sets"))
        if fmt == "json":
            keys = ("theory_mean", "sample_mean", "sample_mean_se", "theory_variance", "sample_variance",
                    "sample_variance_se", "ks_pvalue")
            payload = {"modes": [int(k) for k in cmp["mode"].values], "times": [float(x) for x in t]}
            for key in keys:
                payload[key] = [[None if not np.isfinite(x) else float(x) for x in row] for row in cmp[key].values]
            typer.echo(json.dumps(payload))
        else:
            _print_modes_table(cmp)
        for p in written:
            typer.echo(f"wrote {p}", err=fmt == "json")

    _run_guarded(body)


def _print_modes_table(cmp) -> None:
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("k", "t", "mean DMFT", "mean sim", "var DMFT", "var sim", "KS p"):
        table.add_column(name, justify="right", no_wrap=True)
    for i, k in enumerate(cmp["mode"].values):
        for j, t in enumerate(cmp["time"].values):
            c = cmp.isel(mode=i, time=j)
            table.add_row(str(int(k)), f"{t:.4g}", f"{float(c.theory_mean):.5g}",
                          f"{float(c.sample_mean):.5g} ± {float(c.sample_mean_se):.2g}",
                          f"{float(c.theory_variance):.5g}",
                          f"{float(c.sample_variance):.5g} ± {float(c.sample_variance_se):.2g}",
                          "-" if not float(c.theory_variance) > 0 else f"{float(c.ks_pvalue):.3f}")
    _console().print(table)
