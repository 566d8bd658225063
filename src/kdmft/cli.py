"""Command-line interface: a thin shell over the public API.

Exit codes: 0 success, 1 a computation could not be completed (for example a solver that
cannot verify its accuracy), 2 bad input (one-line message on stderr, no traceback, no file
written).
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  help="kdmft: typical-case learning curves of kernel / random-feature regression "
                       "(dynamical mean-field theory) beside exact simulation.")

# -- shared problem options ----------------------------------------------------------------
Modes = Annotated[int | None, typer.Option("--modes", help="Number N of student modes (power-law spectrum).")]
Alpha = Annotated[float | None, typer.Option("--alpha", help="Spectral exponent α > 0: λ_k = λ_1 k^-(1+α).")]
Lambda1 = Annotated[float, typer.Option("--lambda1", help="Largest eigenvalue λ_1 > 0 of the power law.")]
SpectrumFile = Annotated[Path | None, typer.Option(
    "--spectrum-file", help="Eigenvalues λ_k > 0 from a .npy/.csv/.txt file (instead of --modes/--alpha).")]
TaskExponent = Annotated[float | None, typer.Option(
    "--task-exponent", help="Task power v_k = k^-β (default β = 0: isotropic task).")]
TaskFile = Annotated[Path | None, typer.Option("--task-file", help="Task power v_k >= 0 from a file.")]
Samples = Annotated[int | None, typer.Option("--samples", help="Number P of training samples.")]
WeightDecay = Annotated[float | None, typer.Option("--weight-decay", help="Weight decay g >= 0 (default 0).")]
Temperature = Annotated[float | None, typer.Option("--temperature", help="Langevin temperature T >= 0 (default 0).")]
NoiseVar = Annotated[float, typer.Option("--label-noise-var", help="Label-noise variance σ² >= 0.")]
TeacherModes = Annotated[float | None, typer.Option(
    "--teacher-modes", help="Teacher modes M >= N (inf allowed); the extra modes act as label noise.")]
PriorVar = Annotated[float | None, typer.Option(
    "--prior-var", help="GP prior variance σ_w² (with --noise-var: g = σ_n²/σ_w², T = σ_n²).")]
BayesNoise = Annotated[float | None, typer.Option("--noise-var", help="GP noise variance σ_n² (sets T).")]
Times = Annotated[str | None, typer.Option(
    "--times", help="Comma-separated times t >= 0 in SDE units; 'inf' gives the t -> inf limit.")]
Format = Annotated[str, typer.Option("--format", help="Output format: table or json.")]


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _problem_config(modes, alpha, lambda1, spectrum_file, task_exponent, task_file, samples,
                    weight_decay, temperature, label_noise_var, teacher_modes, prior_var, noise_var):
    from .config import ProblemConfig
    from .errors import InvalidParameterError

    if samples is None:
        raise InvalidParameterError("--samples", "given (a positive integer)")
    if spectrum_file is None and (modes is None or alpha is None):
        raise InvalidParameterError("--modes/--alpha", "given together, or replaced by --spectrum-file")
    return ProblemConfig(modes=modes, alpha=alpha, lambda1=lambda1,
                         spectrum_file=None if spectrum_file is None else str(spectrum_file),
                         task_exponent=task_exponent, task_file=None if task_file is None else str(task_file),
                         samples=samples, weight_decay=weight_decay, temperature=temperature,
                         label_noise_var=label_noise_var, teacher_modes=teacher_modes,
                         prior_var=prior_var, noise_var=noise_var)


def _problem_and_times(fmt, times, *problem_options):
    """Validate --format, build the Problem from the shared problem flags and parse --times."""
    from .config import parse_times
    from .errors import InvalidParameterError

    _check_format(fmt)
    pc = _problem_config(*problem_options)
    if times is None:
        raise InvalidParameterError("--times", "given (comma-separated numbers >= 0, inf allowed)")
    t = parse_times(times)
    return pc.build(), t


def _check_format(fmt: str) -> str:
    from .errors import InvalidParameterError

    if fmt not in ("table", "json"):
        raise InvalidParameterError("--format", "'table' or 'json'", fmt)
    return fmt


def _emit(ds, fmt: str, *, with_se: bool) -> None:
    from .results import to_json_dict

    diverging = [(float(t), k) for k in ("test_error", "train_error", "bias", "noise_variance",
                                         "thermal_variance")
                 for t, x in zip(ds["time"].values, ds[k].values, strict=True) if not math.isfinite(x)]
    if diverging:
        names = sorted({k for _, k in diverging})
        shown = "written as null" if fmt == "json" else "shown as inf"
        typer.echo(f"note: {', '.join(names)} diverge(s) at t = inf for this problem "
                   f"({shown}): " + _divergence_note(ds, names), err=True)
    if fmt == "json":
        typer.echo(json.dumps(to_json_dict(ds, with_se=with_se)))
    else:
        _print_table(ds, with_se=with_se)


def _divergence_note(ds, names: list[str]) -> str:
    P, N = ds.attrs["samples"], ds.attrs["modes"]
    why = []
    if "thermal_variance" in names:
        why.append(f"with g = 0, T > 0 and P = {P} <= N = {N} the Langevin noise is not confined: "
                   + ("it diffuses for ever in the null space of XᵀX" if P < N else
                      "at P = N the smallest eigenvalues of XᵀX approach 0"))
    if "noise_variance" in names:
        why.append(f"at the interpolation threshold P = N = {N} with g = 0 the label-noise variance diverges"
                   if P == N else f"near the interpolation threshold (P = {P}, N = {N}) with g = 0 the mean "
                   "over data sets of the label-noise variance is infinite (smallest eigenvalue of XᵀX near 0)")
    return "; ".join(why) or "see the documentation"


def _print_table(ds, *, with_se: bool, rows: int | None = None) -> None:
    import numpy as np
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    cols = ["test_error", "bias", "noise_variance", "thermal_variance", "train_error"]
    table.add_column("t", justify="right")
    for c in cols:
        table.add_column(c, justify="right")
    t = ds["time"].values
    idx = np.arange(t.size) if rows is None else _table_rows(t.size, rows)
    for i in idx:
        cells = [_fmt(t[i], 6)]
        for c in cols:
            cell = _fmt(ds[c].values[i], 8)
            if with_se and c + "_se" in ds:
                cell += f" ± {ds[c + '_se'].values[i]:.2g}"
            cells.append(cell)
        table.add_row(*cells)
    _console().print(table)


def _table_rows(n: int, rows: int):
    """At most about ``rows`` row indices of n, evenly strided (log-spaced times stay evenly spaced), last kept."""
    import numpy as np

    if n <= rows:
        return np.arange(n)
    step = math.ceil((n - 1) / (rows - 1))
    return np.unique(np.r_[np.arange(0, n - 1, step), n - 1])


def _fmt(x: float, digits: int = 4) -> str:
    return "inf" if math.isinf(x) else f"{x:.{digits}g}"


def _run_guarded(fn) -> None:
    """Run a command body; map kdmft errors to one-line messages and exit codes."""
    from .errors import InvalidParameterError, KdmftError

    try:
        fn()
    except InvalidParameterError as exc:
        _fail(str(exc), 2)
    except KdmftError as exc:
        _fail(str(exc), 1)


_SHAPES_HELP = ("Shapes (all three flags): constant:value=V, exponential:rate=R[,floor=F], step:at=T1/T2,"
                "values=V0/V1/V2, cosine:duration=D[,floor=F], warmup:duration=D[,start=S].")


@app.command()
def theory(
    modes: Modes = None, alpha: Alpha = None, lambda1: Lambda1 = 1.0, spectrum_file: SpectrumFile = None,
    task_exponent: TaskExponent = None, task_file: TaskFile = None, samples: Samples = None,
    weight_decay: WeightDecay = None, temperature: Temperature = None, label_noise_var: NoiseVar = 0.0,
    teacher_modes: TeacherModes = None, prior_var: PriorVar = None, noise_var: BayesNoise = None,
    times: Times = None, fmt: Format = "table",
    method: Annotated[str | None, typer.Option(
        "--method", "--solver", help="Solver: laplace or time-domain (default: time-domain when --dt, --grid or a "
        "schedule is given, else laplace).")] = None,
    dt: Annotated[float | None, typer.Option(
        "--dt", help="Time step of the uniform time-domain grid (SDE time units, default 0.01).")] = None,
    grid: Annotated[str | None, typer.Option(
        "--grid", help="Time grid of the time-domain solver: uniform (step --dt, t <= 20000 dt) or graded "
        "(non-uniform, for long horizons; cost independent of t).")] = None,
    lr_schedule: Annotated[str | None, typer.Option(
        "--lr-schedule", help="Learning-rate factor η(t), e.g. warmup:duration=1 (time-domain solver). "
        + _SHAPES_HELP)] = None,
    wd_schedule: Annotated[str | None, typer.Option(
        "--weight-decay-schedule", help="Factor on g, e.g. step:at=5,values=1/0.1 (time-domain solver).")] = None,
    temp_schedule: Annotated[str | None, typer.Option(
        "--temperature-schedule", help="Factor on T, e.g. exponential:rate=0.5 (time-domain solver).")] = None,
) -> None:
    """Typical-case (DMFT) test/train error and its bias / noise / thermal split at given times."""
    if method is None:
        method = "time-domain" if (dt, grid, lr_schedule, wd_schedule, temp_schedule) != (None,) * 5 else "laplace"
    def body():
        from .errors import FiniteSizeWarning
        from .theory import learning_curve

        problem, t = _problem_and_times(fmt, times, modes, alpha, lambda1, spectrum_file, task_exponent, task_file,
                                        samples, weight_decay, temperature, label_noise_var, teacher_modes,
                                        prior_var, noise_var)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # divergences are reported by _emit
            ds = learning_curve(problem, t, method=method, dt=dt, grid=grid,
                                schedule=_cli_schedule(lr_schedule, wd_schedule, temp_schedule))
        _echo_warnings(caught, FiniteSizeWarning)
        _emit(ds, fmt, with_se=False)

    _run_guarded(body)


def _echo_warnings(caught, *categories) -> None:
    """Print recorded warnings of the given categories to stderr, one line each, once per message."""
    seen = set()
    for w in caught:
        if issubclass(w.category, categories) and str(w.message) not in seen:
            seen.add(str(w.message))
            typer.echo(f"warning: {w.message}", err=True)


def _cli_schedule(lr: str | None, wd: str | None, temp: str | None):
    """Schedule from the --*-schedule flags (None when none is given)."""
    if lr is None and wd is None and temp is None:
        return None
    from .schedules import Schedule, parse_shape

    return Schedule(learning_rate=None if lr is None else parse_shape(lr, "--lr-schedule"),
                    weight_decay=None if wd is None else parse_shape(wd, "--weight-decay-schedule"),
                    temperature=None if temp is None else parse_shape(temp, "--temperature-schedule"))


@app.command()
def simulate(
    modes: Modes = None, alpha: Alpha = None, lambda1: Lambda1 = 1.0, spectrum_file: SpectrumFile = None,
    task_exponent: TaskExponent = None, task_file: TaskFile = None, samples: Samples = None,
    weight_decay: WeightDecay = None, temperature: Temperature = None, label_noise_var: NoiseVar = 0.0,
    teacher_modes: TeacherModes = None, prior_var: PriorVar = None, noise_var: BayesNoise = None,
    times: Times = None, fmt: Format = "table",
    realizations: Annotated[int, typer.Option("--realizations", help="Number of data sets (>= 2).")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (>= 0).")] = 0,
) -> None:
    """Exact simulation averaged over data sets: mean and standard error of every observable."""
    def body():
        from .errors import HeavyTailWarning
        from .simulate import simulate as run_sim

        problem, t = _problem_and_times(fmt, times, modes, alpha, lambda1, spectrum_file, task_exponent, task_file,
                                        samples, weight_decay, temperature, label_noise_var, teacher_modes,
                                        prior_var, noise_var)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = _with_progress(lambda cb: run_sim(problem, t, realizations, seed, progress=cb),
                                "simulating", enabled=fmt == "table")
        _echo_warnings(caught, HeavyTailWarning)
        _emit(ds, fmt, with_se=True)

    _run_guarded(body)


def _with_progress(fn, label: str, *, enabled: bool = True):
    """Call fn(callback) with a rich progress bar on stderr (hidden when not a terminal)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        return fn(None)
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def cb(done, total):
            bar.update(task, completed=done, total=total)

        return fn(cb)


@app.command()
def run(
    config: Annotated[Path | None, typer.Argument(help="TOML config file (default: the built-in problem).")] = None,
    dataset: Annotated[str | None, typer.Option(
        "--dataset", help="Use a real data set's kernel spectrum (digits, breast_cancer, wine, iris, "
                          "diabetes; kernel etc. in the config's [dataset] table).")] = None,
    output_dir: Annotated[Path | None, typer.Option(
        "--output-dir", "-o", help="Directory for the results file and figure (default kdmft-results).")] = None,
    realizations: Annotated[int | None, typer.Option(
        "--realizations", help="Simulated data sets (default 2000).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed (default 0).")] = None,
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Skip the PNG figure.")] = False,
    solver: Annotated[str | None, typer.Option(
        "--solver", help="DMFT solver: laplace or time-domain (default: [theory] solver, else laplace).")] = None,
    dt: Annotated[float | None, typer.Option(
        "--dt", help="Time step of the time-domain solver (SDE time units; default [theory] dt, else 0.01).")] = None,
    grid: Annotated[str | None, typer.Option(
        "--grid", help="Time grid of the time-domain solver: uniform or graded (default: [theory] grid, "
        "else uniform).")] = None,
) -> None:
    """Main job: DMFT curve beside ground truth, a table, a netCDF results file and a figure."""
    def body():
        from .config import RunConfig
        from .errors import FiniteSizeWarning, HeavyTailWarning
        from .run import run_dataset, run_problem, write_outputs

        cfg = RunConfig.from_toml(config) if config is not None else RunConfig()
        if dataset is not None:
            cfg.dataset.name = dataset
        if output_dir is not None:
            cfg.output.dir = str(output_dir)
        if realizations is not None:
            cfg.simulation.realizations = realizations
        if seed is not None:
            cfg.simulation.seed = seed
            cfg.dataset.seed = seed
        if no_plot:
            cfg.output.plot = False
        if solver is not None:
            cfg.theory.solver = solver
        if dt is not None:
            cfg.theory.dt = dt
        if grid is not None:
            cfg.theory.grid = grid
        from .io import check_output_dir

        check_output_dir(cfg.output.dir, "--output-dir")   # before minutes of work, not after
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if cfg.dataset.name is not None:
                ds = _with_progress(lambda cb: run_dataset(cfg, progress=cb), "training on subsets")
                stem = f"kdmft_run_{cfg.dataset.name}"
            else:
                ds = _with_progress(lambda cb: run_problem(cfg, progress=cb), "simulating")
                stem = "kdmft_run"
        _echo_warnings(caught, HeavyTailWarning, FiniteSizeWarning)
        paths = write_outputs(ds, cfg.output.dir, stem, plot=cfg.output.plot)
        _print_run_summary(ds)
        for p in paths:
            typer.echo(f"wrote {p}")

    _run_guarded(body)


def _console():
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # files and pipes: wide enough that rows never wrap
        console = Console(width=140)
    return console


def _solver_line(a: dict) -> str:
    """'time-domain solver, graded grid; schedule: T × exponential(...)' for non-default solvers/schedules."""
    from .schedules import schedule_summary

    if a.get("method", "laplace") == "laplace" and "schedule" not in a:
        return ""
    line = f"{a.get('method')} solver"
    if a.get("method") == "time-domain":
        line += f", {a.get('grid', 'uniform')} grid" + (f" (dt = {a['dt']:g})" if "dt" in a else "")
    if "schedule" in a:
        line += "; schedule: " + schedule_summary(a["schedule"])
    return line


def _print_run_summary(ds) -> None:
    from rich.table import Table

    console = _console()
    truth = "sim" if "sim_test_error" in ds else ("measured" if "measured_test_error" in ds else None)
    a = ds.attrs
    console.print(f"kdmft {a['kdmft_version']}  N = {a['modes']}  P = {a['samples']}  "
                  f"g = {a['weight_decay']:.4g}  T = {a['temperature']:.4g}  σ² = {a['label_noise_var']:.4g}"
                  + (f"  ({a['realizations']} data sets, seed {a['seed']})" if truth == "sim" else "")
                  + (f"  ({a['subsets']} random subsets, seed {a['seed']})" if truth == "measured" else ""),
                  highlight=False)
    solver = _solver_line(a)
    if solver:
        console.print(solver, highlight=False)
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("t", justify="right", no_wrap=True)
    table.add_column("test error", justify="right", no_wrap=True)
    if truth:
        table.add_column("simulation" if truth == "sim" else "measured", justify="right", no_wrap=True)
        table.add_column("dev.", justify="right", no_wrap=True)
    for c in ("bias", "noise var.", "thermal var.", "train error"):
        table.add_column(c, justify="right", no_wrap=True)
    t = ds["time"].values
    n = t.size
    idx = _table_rows(n, 13)
    for i in idx:
        row = [_fmt(t[i], 3), _fmt(ds.test_error.values[i])]
        if truth:
            m, se = ds[f"{truth}_test_error"].values[i], ds[f"{truth}_test_error_se"].values[i]
            th = ds.test_error.values[i]
            row += [f"{_fmt(m)} ± {se:.1g}",
                    f"{100 * (th / m - 1):+.2f}%" if math.isfinite(m) and math.isfinite(th) and m > 0 else "-"]
        row += [_fmt(ds[k].values[i]) for k in ("bias", "noise_variance", "thermal_variance", "train_error")]
        table.add_row(*row)
    console.print(table)
    if a.get("stopping_status") == "interior":
        console.print(f"optimal stopping (DMFT): t* = {a['t_star']:.4g}, E(t*) = {a['test_error_at_t_star']:.5g}",
                      highlight=False)
    elif a.get("stopping_status") == "not computed with a schedule":
        console.print("optimal stopping: not computed with a schedule (the stopping analysis assumes a constant "
                      "protocol)", highlight=False)
    else:
        console.print(f"no early-stopping optimum in the time window (test error {a.get('stopping_status')})",
                      highlight=False)
    if truth == "measured":
        console.print(f"agreement: median |DMFT/measured - 1| = {100 * a['median_abs_relative_deviation']:.1f}%, "
                      f"max = {100 * a['max_abs_relative_deviation']:.1f}%", highlight=False)


# -- kdmft sweep / analyze (issue 4) --------------------------------------------------------
def _list_opt(flag: str, what: str):
    return Annotated[str | None, typer.Option(flag, help=what + " A comma-separated list sweeps it.")]


SwModes = _list_opt("--modes", "Number N of student modes.")
SwAlpha = _list_opt("--alpha", "Spectral exponent α > 0.")
SwLambda1 = _list_opt("--lambda1", "Largest eigenvalue λ_1 (default 1).")
SwTaskExp = _list_opt("--task-exponent", "Task power v_k = k^-β (default 0).")
SwSamples = _list_opt("--samples", "Number P of training samples.")
SwDecay = _list_opt("--weight-decay", "Weight decay g >= 0 (default 0).")
SwTemp = _list_opt("--temperature", "Langevin temperature T >= 0 (default 0).")
SwNoise = _list_opt("--label-noise-var", "Label-noise variance σ² >= 0 (default 0).")
SwTeacher = _list_opt("--teacher-modes", "Teacher modes M >= N (inf allowed).")
SwPrior = _list_opt("--prior-var", "GP prior variance σ_w² (with --noise-var).")
SwBayesNoise = _list_opt("--noise-var", "GP noise variance σ_n² (sets T).")


@app.command()
def sweep(
    config: Annotated[Path | None, typer.Argument(help="Sweep TOML file (flags override its values).")] = None,
    modes: SwModes = None, alpha: SwAlpha = None, lambda1: SwLambda1 = None, spectrum_file: SpectrumFile = None,
    task_exponent: SwTaskExp = None, task_file: TaskFile = None, samples: SwSamples = None,
    weight_decay: SwDecay = None, temperature: SwTemp = None, label_noise_var: SwNoise = None,
    teacher_modes: SwTeacher = None, prior_var: SwPrior = None, noise_var: SwBayesNoise = None,
    times: Times = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output netCDF file (.nc); cache in <out>.cache "
                                                            "(default kdmft-results/sweep.nc).")] = None,
    simulate_: Annotated[bool | None, typer.Option("--simulate/--no-simulate",
                                                   help="Also simulate every point exactly.")] = None,
    realizations: Annotated[int | None, typer.Option("--realizations", help="Data sets per simulated point.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Base seed; point seeds derive from it.")] = None,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="Address of a running Dask scheduler.")] = None,
    serial: Annotated[bool, typer.Option("--serial", help="Run in this process, without Dask.")] = False,
    workers: Annotated[int | None, typer.Option("--workers", help="Processes of the local Dask cluster.")] = None,
    method: Annotated[str | None, typer.Option("--method", help="Theory solver (default laplace).")] = None,
    t_min: Annotated[float | None, typer.Option(
        "--t-min", help="Start of the t* search (default: smallest positive output time).")] = None,
    t_max: Annotated[float | None, typer.Option(
        "--t-max", help="End of the t* search (default: largest finite output time).")] = None,
) -> None:
    """Grid of problems (lists of parameters) x times: DMFT curves, t*, optional simulation; resumable."""
    def body():
        from .config import parse_times
        from .errors import InvalidParameterError
        from .sweep import SweepConfig, cache_dir_for, cache_status, parse_list, run_sweep

        cfg = SweepConfig.from_toml(config) if config is not None else SweepConfig(defaults="theory")
        flags = {"modes": modes, "alpha": alpha, "lambda1": lambda1, "task_exponent": task_exponent,
                 "samples": samples, "weight_decay": weight_decay, "temperature": temperature,
                 "label_noise_var": label_noise_var, "teacher_modes": teacher_modes, "prior_var": prior_var,
                 "noise_var": noise_var}
        for k, v in flags.items():
            if v is not None:
                cfg.problem[k] = parse_list(v, k)
        for k, v in (("spectrum_file", spectrum_file), ("task_file", task_file)):
            if v is not None:
                cfg.problem[k] = str(v)
        if times is not None:
            cfg.times = parse_times(times)
        elif config is None:
            raise InvalidParameterError("--times", "given (comma-separated numbers >= 0, inf allowed)")
        for k, v in (("simulate", simulate_), ("realizations", realizations), ("seed", seed),
                     ("scheduler", scheduler), ("workers", workers), ("method", method), ("t_min", t_min),
                     ("t_max", t_max)):
            if v is not None:
                setattr(cfg, k, v)
        cfg.serial = cfg.serial or serial
        if out is not None:
            cfg.out = str(out)
        if cfg.out is None:
            cfg.out = str(Path("kdmft-results") / "sweep.nc")
        cached, total = cache_status(cfg)
        if cached:
            typer.echo(f"resuming: {cached} of {total} points cached in {cache_dir_for(cfg.out)}", err=True)
        how = "serially" if cfg.serial else (f"on {cfg.scheduler}" if cfg.scheduler else "on a local Dask cluster")
        if total - cached:
            typer.echo(f"computing {total - cached} point(s) {how}", err=True)
        ds = _with_progress(lambda cb: run_sweep(cfg, progress=cb), "sweep points")
        if "divergence_note" in ds.attrs:
            typer.echo(f"note: {ds.attrs['divergence_note']} (stored as inf)", err=True)
        dims = [d for d in ds.dims if d != "time"]
        typer.echo(f"{total} points over {', '.join(dims) or 'no swept parameter'} x {ds.sizes['time']} times; "
                   f"interior optimum at {int((ds.stopping_status.values == 0).sum())} points")
        typer.echo(f"wrote {cfg.out}")

    _run_guarded(body)


@app.command()
def analyze(
    results: Annotated[Path, typer.Argument(help="Sweep results file (.nc) written by kdmft sweep.")],
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help="Report directory (default "
                                                                    "<results without .nc>_report).")] = None,
) -> None:
    """Report on a sweep: exponent fits beside THEORY.md predictions, claims (i)-(iv), (g, T) diagram."""
    def body():
        from .io import read_netcdf
        from .report import analyze as run_analysis

        ds = read_netcdf(results)
        target = out_dir if out_dir is not None else results.with_name(results.stem + "_report")
        rep = run_analysis(ds, target)
        for p in rep.files:
            typer.echo(f"wrote {p}")

    _run_guarded(body)


def _click_classes() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """Usage-error, exit and abort exception classes of typer's click (vendored or not)."""
    usage: list[type] = []
    exits: list[type] = [typer.Exit]
    aborts: list[type] = [typer.Abort]
    try:
        from typer._click import exceptions as tce  # typer >= 0.22 vendors click

        usage.append(tce.ClickException)
    except ImportError:
        pass
    try:
        import click

        usage.append(click.ClickException)
        exits.append(click.exceptions.Exit)
        aborts.append(click.exceptions.Abort)
    except ImportError:
        pass
    return tuple(usage), tuple(exits), tuple(aborts)


def main() -> None:
    """Console entry point: usage errors become one-line messages with exit code 2."""
    usage, exits, aborts = _click_classes()
    try:
        rv = app(standalone_mode=False)
    except usage as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `kdmft`: show the help
            typer.echo(exc.format_message())
            sys.exit(0)
        typer.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(2)
    except exits as exc:
        sys.exit(exc.exit_code)
    except aborts:
        typer.echo("aborted", err=True)
        sys.exit(130)
    # Without standalone mode click returns the exit code of typer.Exit instead of raising it.
    sys.exit(rv if isinstance(rv, int) else 0)


from . import cli_modes, cli_realdata  # noqa: E402,F401  (register `kdmft modes`, `spectrum`, `compare`)

if __name__ == "__main__":
    main()
