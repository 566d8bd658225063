"""The main job: theory beside ground truth for one problem, as a results Dataset.

:func:`run_problem` puts the DMFT curve beside the exact simulation of a synthetic problem;
:func:`run_dataset` puts it beside kernel regression measured on a real data set. Both return
one :class:`xarray.Dataset` (theory variables as is, ``sim_*`` or ``measured_*`` for the
ground truth) with the full config, version and seed in ``attrs``; :func:`write_outputs`
saves it and its figure.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

from ._version import __version__
from .analysis import optimal_stopping, stopping_window
from .config import RunConfig
from .errors import InvalidParameterError
from .io import write_netcdf
from .model import Problem
from .results import curve_dataset
from .simulate import simulate
from .theory import learning_curve

__all__ = ["run_problem", "run_dataset", "write_outputs", "dataset_problem"]

Progress = Callable[[int, int], None]

#: Training defaults of ``kdmft run --dataset`` when [problem] does not set them: weak weight
#: decay and a temperature small against the target variance (~0.09 for one digit vs rest).
DATASET_DEFAULTS = {"weight_decay": 1e-3, "temperature": 1e-4}


def _merge(theory: xr.Dataset, truth: xr.Dataset, prefix: str) -> xr.Dataset:
    truth = truth.rename({k: f"{prefix}_{k}" for k in truth.data_vars})
    ds = xr.merge([theory, truth.drop_attrs() if hasattr(truth, "drop_attrs") else truth],
                  combine_attrs="override")
    return ds


def _attrs_common(cfg: RunConfig, problem: Problem, resolved) -> dict:
    """Attributes of a run: the config with the values actually used, version, problem."""
    used = dataclasses.replace(cfg, problem=resolved)
    return {"config_json": json.dumps(used.to_dict()), "kdmft_version": __version__, **problem.attrs()}


def run_problem(cfg: RunConfig, progress: Progress | None = None) -> xr.Dataset:
    """DMFT curve, exact simulation and optimal stopping for the config's problem."""
    pc = cfg.problem.resolved()
    problem = pc.build(Path(cfg.base_dir))
    schedule = cfg.schedule.build()
    scheduled = schedule is not None and not schedule.is_constant
    times = cfg.times.array() if scheduled else np.concatenate([cfg.times.array(), [math.inf]])
    if cfg.theory.solver == "laplace" and cfg.theory.dt is None and cfg.theory.grid is None and schedule is None:
        theory = learning_curve(problem, times)
    else:
        theory = learning_curve(problem, times, method=cfg.theory.solver, dt=cfg.theory.dt, schedule=schedule,
                                grid=cfg.theory.grid)
    finite = times[np.isfinite(times)]
    if scheduled:  # optimal_stopping assumes a constant protocol
        from types import SimpleNamespace

        stop = SimpleNamespace(t_star=math.nan, test_error=math.nan, status="not computed with a schedule")
    else:
        lo, hi = stopping_window(finite)
        stop = optimal_stopping(problem, t_min=lo, t_max=hi)
    ds = theory
    attrs = _attrs_common(cfg, problem, pc)
    if cfg.simulation.enabled and scheduled:
        from .simulate import simulate_schedule

        sim = simulate_schedule(problem, times, schedule, cfg.simulation.realizations, cfg.simulation.seed,
                                progress=progress)
        ds = _merge(theory, sim, "sim")
        attrs.update(seed=cfg.simulation.seed, realizations=cfg.simulation.realizations)
    elif cfg.simulation.enabled:
        sim = simulate(problem, times, cfg.simulation.realizations, cfg.simulation.seed, progress=progress)
        ds = _merge(theory, sim, "sim")
        attrs.update(seed=cfg.simulation.seed, realizations=cfg.simulation.realizations)
    ds.attrs = dict(theory.attrs)
    ds.attrs.update(attrs)
    ds.attrs.update(t_star=stop.t_star, test_error_at_t_star=stop.test_error, stopping_status=stop.status,
                    kind="run", contents="theory" + (" and exact simulation (sim_*)" if cfg.simulation.enabled else ""))
    return ds


def dataset_problem(cfg: RunConfig):
    """Spectrum, task and Problem of the config's real data set; returns (problem, K, Y).

    The data are a bundled set (``[dataset] name``) or user files (``data`` + ``targets``,
    relative to the config's directory). Classification targets are one class against the rest
    (``target_class``, default 0) or, with ``one_hot``, all classes; the Problem of several
    outputs is :func:`kdmft.compare.summed_output_problem` (errors summed over outputs; its
    ``info`` keeps the per-output T and σ²).
    """
    from .compare import summed_output_problem
    from .kernels import kernel_matrix
    from .realdata import kernel_spectrum, load_real_data

    dc = cfg.dataset
    if dc.name is None and dc.data is None:
        raise InvalidParameterError("dataset", "a data set name (or data and targets files)")
    base = Path(cfg.base_dir)

    def _path(p):
        return None if p is None else str(p if Path(p).is_absolute() else base / p)

    if dc.one_hot and dc.target_class is not None:
        raise InvalidParameterError("dataset.target_class", "unset with one_hot = true", dc.target_class)
    pc = cfg.problem
    spectral = [k for k in ("modes", "alpha", "spectrum_file", "task_exponent", "task_file", "teacher_modes")
                if getattr(pc, k) is not None]
    if spectral:
        raise InvalidParameterError(f"problem.{spectral[0]}", "unset when a data set is used",
                                    getattr(pc, spectral[0]), detail="the data set defines the spectrum and the "
                                    "task; keep only samples and the training keys in [problem] "
                                    "(see examples/digits.toml)")
    rd = load_real_data(dc.name, data=_path(dc.data), targets=_path(dc.targets), task=dc.task)
    if rd.task == "classification" and not dc.one_hot:
        rd = load_real_data(dc.name, data=_path(dc.data), targets=_path(dc.targets), task=rd.task,
                            target_class=0 if dc.target_class is None else dc.target_class)
    elif rd.task == "regression" and dc.target_class is not None:
        raise InvalidParameterError("dataset.target_class", "unset for a regression target", dc.target_class)
    K = kernel_matrix(rd.X, dc.kernel, dc.depth)
    Y = rd.Y
    spec = kernel_spectrum(K, Y)
    if pc.prior_var is not None or pc.noise_var is not None:
        from .model import bayesian_to_langevin

        if pc.prior_var is None or pc.noise_var is None:
            raise InvalidParameterError("prior_var, noise_var", "given together")
        g, T = bayesian_to_langevin(pc.prior_var, pc.noise_var)
    else:
        g = DATASET_DEFAULTS["weight_decay"] if pc.weight_decay is None else pc.weight_decay
        T = DATASET_DEFAULTS["temperature"] if pc.temperature is None else pc.temperature
    if not 1 <= pc.samples < spec.n:
        raise InvalidParameterError("samples", f"an integer in [1, {spec.n - 1}] for {rd.name}", pc.samples)
    problem = summed_output_problem(
        spec, pc.samples, weight_decay=g, temperature=T, label_noise_var=pc.label_noise_var,
        info={"spectrum": f"{rd.name}/{dc.kernel}", "dataset": rd.name, "kernel": dc.kernel,
              "depth": dc.depth, "task": rd.task, "target_class": rd.target_class, "points": spec.n})
    return problem, K, Y


def _dataset_resolved(cfg: RunConfig, problem: Problem):
    """The [problem] table of a data-set run with the training values actually used."""
    if cfg.problem.prior_var is not None:
        return cfg.problem
    return dataclasses.replace(cfg.problem, weight_decay=problem.weight_decay,
                               temperature=problem.info["temperature_per_output"])


def run_dataset(cfg: RunConfig, progress: Progress | None = None) -> xr.Dataset:
    """DMFT prediction from a real data set's kernel spectrum beside measured kernel regression."""
    from .realdata import measured_curve

    problem, K, y = dataset_problem(cfg)
    times = cfg.times.array()
    times = times[np.isfinite(times)]
    theory = learning_curve(problem, times)
    dc = cfg.dataset
    meas = measured_curve(K, y, problem.samples, times, weight_decay=problem.weight_decay,
                          temperature=problem.info["temperature_per_output"],
                          label_noise_var=problem.info["label_noise_var_per_output"],
                          subsets=dc.subsets, seed=dc.seed, sampling=dc.sampling, progress=progress)
    measured = curve_dataset(times, meas, {})
    ds = _merge(theory, measured, "measured")
    dev = theory["test_error"].values / meas["test_error"] - 1.0
    ds["relative_deviation"] = ("time", dev, {"long_name": "DMFT / measured - 1 (test error)"})
    lo, hi = stopping_window(times)
    stop = optimal_stopping(problem, t_min=lo, t_max=hi)
    ds.attrs = dict(theory.attrs)
    ds.attrs.update(_attrs_common(cfg, problem, _dataset_resolved(cfg, problem)))
    ds.attrs.update(kind="run", contents="theory and measured kernel regression (measured_*)",
                    seed=dc.seed, subsets=dc.subsets, t_star=stop.t_star,
                    test_error_at_t_star=stop.test_error, stopping_status=stop.status,
                    median_abs_relative_deviation=float(np.median(np.abs(dev))),
                    max_abs_relative_deviation=float(np.max(np.abs(dev))))
    return ds


def write_outputs(ds: xr.Dataset, out_dir: str | Path, stem: str, *, plot: bool = True) -> list[Path]:
    """Write ``<stem>.nc`` and (if ``plot``) ``<stem>.png`` into ``out_dir``, atomically."""
    from .plots import plot_learning_curve, plot_real_data

    out = Path(out_dir)
    paths = [write_netcdf(ds, out / f"{stem}.nc")]
    if plot:
        png = out / f"{stem}.png"
        if "measured_test_error" in ds:
            measured = ds[[k for k in ds.data_vars if k.startswith("measured_")]]
            measured = measured.rename({k: k[len("measured_"):] for k in measured.data_vars})
            title = (f"{ds.attrs.get('dataset')} ({ds.attrs.get('kernel')}), P = {ds.attrs['samples']}, "
                     f"g = {ds.attrs['weight_decay']:.3g}, T = {ds.attrs['temperature']:.3g}")
            paths.append(plot_real_data(ds, measured, png, title=title))
        else:
            sim = None
            if "sim_test_error" in ds:
                sim = ds[[k for k in ds.data_vars if k.startswith("sim_")]]
                sim = sim.rename({k: k[len("sim_"):] for k in sim.data_vars})
            title = (f"N = {ds.attrs['modes']}, P = {ds.attrs['samples']}, g = {ds.attrs['weight_decay']:.3g}, "
                     f"T = {ds.attrs['temperature']:.3g}, σ² = {ds.attrs['label_noise_var']:.3g}")
            if "alpha" in ds.attrs:
                title = f"λ_k ∝ k^-{1 + ds.attrs['alpha']:.3g}, " + title
            if ds.attrs.get("schedule"):
                from .schedules import schedule_summary

                title += "\nschedule: " + schedule_summary(ds.attrs["schedule"])
            status = ds.attrs.get("stopping_status")
            paths.append(plot_learning_curve(
                ds, png, simulation=sim,
                t_star=ds.attrs.get("t_star") if status == "interior" else None,
                e_star=ds.attrs.get("test_error_at_t_star"), title=title))
    return paths
