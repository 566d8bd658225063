"""Validated run configuration, from TOML files or command-line flags.

A config file has up to five tables; every key is optional and defaults to the built-in
problem (λ_k = k^-3/2, N = P = 100, isotropic task, Langevin training with weak weight decay):

.. code-block:: toml

    [problem]            # spectrum: modes + alpha (+ lambda1), or spectrum_file
    modes = 100
    alpha = 0.5
    samples = 100
    weight_decay = 0.01  # or prior_var / noise_var (Bayesian parametrisation)
    temperature = 0.05
    label_noise_var = 0.0
    task_exponent = 0.0  # or task_file
    # teacher_modes = 1000

    [times]              # log-spaced grid, or an explicit list `values`
    start = 0.01
    stop = 10000.0
    num = 49

    [simulation]
    enabled = true
    realizations = 2000
    seed = 0

    [dataset]            # real data instead of a power law (kdmft run --dataset NAME)
    name = "digits"
    kernel = "relu-nngp"   # relu-nngp, relu-ntk, erf-nngp, rbf, linear, polynomial; depth = 1
    target_class = 0       # or one_hot = true; data/targets files instead of name
    subsets = 50

    [output]
    dir = "kdmft-results"

Relative file paths in a config file are resolved against the file's directory.
Unknown tables or keys are errors, not warnings.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InvalidParameterError
from .io import read_toml
from .model import Problem, bayesian_to_langevin
from .spectra import load_array_file

__all__ = ["ProblemConfig", "TimesConfig", "SimulationConfig", "DatasetConfig", "OutputConfig",
           "RunConfig", "parse_times", "split_numbers"]


def _typed(table: str, key: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, bool) and bool not in kinds:
        raise InvalidParameterError(f"{table}.{key}", _kind_name(kinds), value)
    if not isinstance(value, kinds):
        raise InvalidParameterError(f"{table}.{key}", _kind_name(kinds), value)
    return value


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
             list: "a list"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _from_table(cls, table: str, data: dict[str, Any]):
    if not isinstance(data, dict):
        raise InvalidParameterError(f"[{table}]", "a TOML table", data)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise InvalidParameterError(f"{table}.{key}", f"one of the keys {sorted(fields)}",
                                        key, detail="unknown key")
        kwargs[key] = _typed(table, key, value, cls._types[key])
    return cls(**kwargs)


@dataclass
class ProblemConfig:
    """How to build a :class:`~kdmft.model.Problem` (power law or files)."""

    modes: int | None = None
    alpha: float | None = None
    lambda1: float = 1.0
    spectrum_file: str | None = None
    task_exponent: float | None = None
    task_file: str | None = None
    samples: int = 100
    weight_decay: float | None = None
    temperature: float | None = None
    label_noise_var: float = 0.0
    teacher_modes: float | None = None
    prior_var: float | None = None
    noise_var: float | None = None

    _types = {"modes": int, "alpha": float, "lambda1": float, "spectrum_file": str,
              "task_exponent": float, "task_file": str, "samples": int, "weight_decay": float,
              "temperature": float, "label_noise_var": float, "teacher_modes": (int, float),
              "prior_var": float, "noise_var": float}

    #: Built-in default problem of ``kdmft run``.
    DEFAULTS = {"modes": 100, "alpha": 0.5, "weight_decay": 0.01, "temperature": 0.05}

    def resolved(self) -> ProblemConfig:
        """Fill unset spectrum / training fields with the built-in defaults."""
        c = dataclasses.replace(self)
        if c.spectrum_file is None:
            c.modes = self.DEFAULTS["modes"] if c.modes is None else c.modes
            c.alpha = self.DEFAULTS["alpha"] if c.alpha is None else c.alpha
        if c.task_file is None and c.task_exponent is None:
            c.task_exponent = 0.0
        if c.prior_var is None and c.noise_var is None:
            c.weight_decay = self.DEFAULTS["weight_decay"] if c.weight_decay is None else c.weight_decay
            c.temperature = self.DEFAULTS["temperature"] if c.temperature is None else c.temperature
        return c

    def build(self, base_dir: Path | None = None) -> Problem:
        """Validate and build the Problem; relative file paths are taken from ``base_dir``."""
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        if self.spectrum_file is not None and (self.modes is not None or self.alpha is not None):
            raise InvalidParameterError("spectrum", "given either by modes and alpha or by spectrum_file",
                                        detail="both were given")
        if self.task_file is not None and self.task_exponent is not None:
            raise InvalidParameterError("task", "given either by task_exponent or by task_file",
                                        detail="both were given")
        bayes = self.prior_var is not None or self.noise_var is not None
        if bayes and (self.weight_decay is not None or self.temperature is not None):
            raise InvalidParameterError("training", "given either by weight_decay and temperature "
                                        "or by prior_var and noise_var", detail="both were given")
        if bayes:
            if self.prior_var is None or self.noise_var is None:
                raise InvalidParameterError("prior_var, noise_var", "given together")
            g, T = bayesian_to_langevin(self.prior_var, self.noise_var)
        else:
            g = 0.0 if self.weight_decay is None else self.weight_decay
            T = 0.0 if self.temperature is None else self.temperature
        common = dict(label_noise_var=self.label_noise_var, weight_decay=g, temperature=T)
        if self.spectrum_file is None:
            if self.modes is None or self.alpha is None:
                raise InvalidParameterError("spectrum", "given by modes and alpha, or by spectrum_file")
            if self.task_file is not None:
                problem = Problem.power_law(self.modes, self.alpha, self.samples, lambda1=self.lambda1,
                                            teacher_modes=self.teacher_modes, **common)
                v = _read(self.task_file, "task_file", base)
                _check_task(v, problem.modes)
                info = dict(problem.info, task="file", task_file=str(self.task_file))
                info.pop("task_exponent", None)
                if self.teacher_modes is not None:
                    raise InvalidParameterError("teacher_modes", "used with a power-law task (task_exponent)",
                                                detail="a task file does not define the teacher's tail")
                return problem.replace(task_power=v, info=info)
            return Problem.power_law(self.modes, self.alpha, self.samples, lambda1=self.lambda1,
                                     task_exponent=self.task_exponent or 0.0,
                                     teacher_modes=self.teacher_modes, **common)
        if self.teacher_modes is not None:
            raise InvalidParameterError("teacher_modes", "used with a power-law spectrum (modes, alpha)",
                                        detail="a spectrum file has no tail law")
        lam = _read(self.spectrum_file, "spectrum_file", base)
        if np.any(lam <= 0):
            bad = int(np.flatnonzero(lam <= 0)[0])
            raise InvalidParameterError("spectrum_file", "positive eigenvalues", str(self.spectrum_file),
                                        detail=f"entry {bad} is {lam[bad]}")
        info: dict[str, Any] = {"spectrum": "file", "spectrum_file": str(self.spectrum_file)}
        if self.task_file is not None:
            v = _read(self.task_file, "task_file", base)
            _check_task(v, lam.size)
            info["task"] = "file"
            info["task_file"] = str(self.task_file)
        else:
            beta = self.task_exponent or 0.0
            if not math.isfinite(beta):
                raise InvalidParameterError("task_exponent", "a finite real number", beta)
            v = np.arange(1, lam.size + 1, dtype=np.float64) ** (-beta)
            info["task_exponent"] = beta
        return Problem(lam, v, self.samples, info=info, **common)


def _read(path: str, name: str, base: Path) -> np.ndarray:
    p = Path(path)
    return load_array_file(p if p.is_absolute() else base / p, name)


def _check_task(v: np.ndarray, n: int) -> None:
    if v.size != n:
        raise InvalidParameterError("task_file", f"as long as the spectrum ({n} values)",
                                    f"{v.size} values")
    if np.any(v < 0):
        bad = int(np.flatnonzero(v < 0)[0])
        raise InvalidParameterError("task_file", "non-negative task powers", f"entry {bad} = {v[bad]}")


def split_numbers(text: str, flag: str, accepted: str) -> list[tuple[str, float]]:
    """Split a comma-separated command-line value into (item, float) pairs.

    An empty item or one that is not a number raises InvalidParameterError naming ``flag``.
    """
    items = [s.strip() for s in str(text).split(",")]
    if any(s == "" for s in items):
        raise InvalidParameterError(flag, accepted, text)
    out = []
    for s in items:
        try:
            out.append((s, float(s)))
        except ValueError:
            raise InvalidParameterError(flag, accepted, s) from None
    return out


def parse_times(text: str) -> np.ndarray:
    """Parse "t1,t2,..." (``inf`` allowed) into an array; errors name ``--times``."""
    out = []
    for s, x in split_numbers(text, "--times", "a comma-separated list of numbers >= 0 (inf allowed)"):
        if math.isnan(x) or x < 0:
            raise InvalidParameterError("--times", "numbers >= 0 or inf", s)
        out.append(x)
    return np.array(out)


@dataclass
class TimesConfig:
    """Output times: an explicit list, or ``num`` log-spaced points in [start, stop]."""

    start: float = 1e-2
    stop: float = 1e4
    num: int = 49
    values: list | None = None

    _types = {"start": float, "stop": float, "num": int, "values": list}

    def array(self) -> np.ndarray:
        if self.values is not None:
            try:
                arr = np.array([float(x) for x in self.values])
            except (TypeError, ValueError):
                raise InvalidParameterError("times.values", "a list of numbers >= 0", self.values) from None
            if arr.size == 0 or np.any(np.isnan(arr)) or np.any(arr < 0):
                raise InvalidParameterError("times.values", "a non-empty list of numbers >= 0", self.values)
            return arr
        if not (0 < self.start < self.stop < math.inf):
            raise InvalidParameterError("times.start, times.stop", "0 < start < stop < inf",
                                        (self.start, self.stop))
        if self.num < 2:
            raise InvalidParameterError("times.num", "an integer >= 2", self.num)
        return np.logspace(math.log10(self.start), math.log10(self.stop), self.num)


@dataclass
class SimulationConfig:
    enabled: bool = True
    realizations: int = 2000
    seed: int = 0

    _types = {"enabled": bool, "realizations": int, "seed": int}


@dataclass
class DatasetConfig:
    """Real-data spectrum (``kdmft run --dataset NAME``)."""

    name: str | None = None
    kernel: str = "relu-nngp"
    depth: int = 1
    target_class: int | None = None  # classification: this class against the rest (default 0)
    subsets: int = 50
    seed: int = 0
    data: str | None = None          # user data instead of name: features file (.npy/.csv)
    targets: str | None = None       # ... and targets file
    task: str = "auto"               # auto, classification or regression
    one_hot: bool = False            # classification: all classes one-hot (outputs add)
    sampling: str = "heldout"        # heldout or population (see kdmft.realdata.measured_curve)

    _types = {"name": str, "kernel": str, "depth": int, "target_class": int, "subsets": int,
              "seed": int, "data": str, "targets": str, "task": str, "one_hot": bool, "sampling": str}


@dataclass
class OutputConfig:
    dir: str = "kdmft-results"
    plot: bool = True

    _types = {"dir": str, "plot": bool}


@dataclass
class TheoryConfig:
    """DMFT solver of ``kdmft run``: ``solver`` = "laplace" or "time-domain"; for the time-domain
    solver ``grid`` = "uniform" (step ``dt``) or "graded" (long horizons)."""

    solver: str = "laplace"
    dt: float | None = None
    grid: str | None = None

    _types = {"solver": str, "dt": float, "grid": str}


@dataclass
class ScheduleConfig:
    """``[schedule.learning_rate]``, ``[schedule.weight_decay]``, ``[schedule.temperature]`` tables
    (see :mod:`kdmft.schedules`); a schedule needs the time-domain solver."""

    learning_rate: dict | None = None
    weight_decay: dict | None = None
    temperature: dict | None = None

    _types = {"learning_rate": dict, "weight_decay": dict, "temperature": dict}

    def build(self):
        """The :class:`~kdmft.schedules.Schedule`, or None when no table is given."""
        from .schedules import schedule_from_dict

        return schedule_from_dict({k: v for k, v in dataclasses.asdict(self).items() if v is not None})


@dataclass
class RunConfig:
    """Everything ``kdmft run`` needs; ``to_dict`` is stored in results files."""

    problem: ProblemConfig = field(default_factory=ProblemConfig)
    times: TimesConfig = field(default_factory=TimesConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    theory: TheoryConfig = field(default_factory=TheoryConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    base_dir: str = "."

    _tables = {"problem": ProblemConfig, "times": TimesConfig, "simulation": SimulationConfig,
               "dataset": DatasetConfig, "output": OutputConfig, "theory": TheoryConfig,
               "schedule": ScheduleConfig}

    @classmethod
    def from_dict(cls, data: dict[str, Any], base_dir: str | Path = ".") -> RunConfig:
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in cls._tables:
                raise InvalidParameterError(f"[{key}]", f"one of the tables {sorted(cls._tables)}", key,
                                            detail="unknown table")
            kwargs[key] = _from_table(cls._tables[key], key, value)
        return cls(**kwargs, base_dir=str(base_dir))

    @classmethod
    def from_toml(cls, path: str | Path) -> RunConfig:
        return cls.from_dict(read_toml(path), base_dir=Path(path).resolve().parent)

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for name in self._tables:
            sub = dataclasses.asdict(getattr(self, name))
            out[name] = {k: v for k, v in sub.items() if v is not None}
        return out
