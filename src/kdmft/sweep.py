"""Parameter sweeps: a grid of problems, a per-point disk cache, serial or Dask execution.

A sweep is the Cartesian product of lists of problem parameters (P, N, α, λ_1, g, T, σ², task
exponent, teacher width, or the Bayesian pair σ_w², σ_n²) evaluated at one list of times. Each
grid point is one :class:`~kdmft.model.Problem`; for each the DMFT curve is computed at the
times, the optimal stopping time t* by continuous minimisation
(:func:`kdmft.analysis.optimal_stopping`), the bias / variance split at t*, and optionally an
exact simulation. The result is one :class:`xarray.Dataset` whose dimensions are the swept
parameters (those given as lists) plus ``time``.

Conventions
-----------
- A parameter given as a list (a TOML array, or a comma-separated value on the command line)
  is a dimension named like the parameter (``samples``, ``modes``, ``alpha``, ``lambda1``,
  ``weight_decay``, ``temperature``, ``label_noise_var``, ``task_exponent``, ``teacher_modes``,
  ``prior_var``, ``noise_var``), in that order, then ``time``. A single value is an attribute.
- Times are sorted and made unique (``inf`` allowed: the stationary limit).
- ``t_opt`` and ``test_error_opt`` are NaN where E(t) has no interior minimum in the search
  window; ``stopping_status`` (0 interior, 1 decreasing, 2 increasing) says which.
- Divergent t = inf values (thermal variance at g = 0, T > 0, P <= N; noise variance at
  P = N, g = 0) are ``inf``; the attribute ``divergence_note`` says where and why.
- Resume: each finished point is stored in ``<out>.cache/<key>.npz``; the key hashes the
  point's problem (file contents, not paths), times, method, stopping window, simulation
  settings, seed and the kdmft version, so a rerun recomputes only missing points and a changed
  setting never reuses a stale one.
- Seeds: point seed = hash(base seed, the point's problem parameters), independent of grid
  order and of how the points were executed; serial and Dask runs agree bit for bit (every
  point runs with single-threaded BLAS).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ._version import __version__
from .config import ProblemConfig, TimesConfig, parse_times, split_numbers
from .errors import ConvergenceError, InvalidParameterError, KdmftError
from .io import atomic_path, ensure_dir, read_toml, write_netcdf

__all__ = ["SWEEPABLE", "CURVE_VARIABLES", "STATUS_CODES", "SweepConfig", "PointSpec", "parse_list",
           "point_specs", "compute_point", "cache_status", "run_sweep"]

#: Problem parameters that may be swept, in the order of the output dimensions.
SWEEPABLE: tuple[str, ...] = ("samples", "modes", "alpha", "lambda1", "weight_decay", "temperature",
                              "label_noise_var", "task_exponent", "teacher_modes", "prior_var", "noise_var")
_INT_PARAMS = ("samples", "modes")
_FILE_PARAMS = ("spectrum_file", "task_file")
#: Curves stored over ``time`` (theory; ``sim_<name>`` and ``sim_<name>_se`` when simulated).
CURVE_VARIABLES: tuple[str, ...] = ("test_error", "train_error", "bias", "noise_variance", "thermal_variance")
_STOP_VARIABLES = {
    "t_opt": "optimal stopping time t* (minimum of the continuous DMFT test error)",
    "test_error_opt": "minimal test error E(t*)",
    "bias_opt": "bias at t*",
    "variance_opt": "label-noise plus thermal variance at t*",
    "bias_rate_opt": "-dB/dln t at t* (decrease rate of the bias)",
    "variance_rate_opt": "dV/dln t at t* (growth rate of the variance)",
}
STATUS_CODES: dict[str, int] = {"interior": 0, "decreasing": 1, "increasing": 2}
#: Bump when the content of cache files changes.
CACHE_FORMAT = 1
_RATE_STEP = 0.01  # relative step of the centred difference in ln t for the rates at t*

Progress = Callable[[int, int], None]


# -- parsing ------------------------------------------------------------------------------
def _coerce(name: str, value: Any) -> int | float:
    """One value of parameter ``name`` with the right type; errors name the parameter."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidParameterError(name, "a number", value)
    x = float(value)
    if math.isnan(x):
        raise InvalidParameterError(name, "a number (not NaN)", value)
    if name in _INT_PARAMS:
        if not (math.isfinite(x) and x.is_integer() and x >= 1):
            raise InvalidParameterError(name, "a positive integer", value)
        return int(x)
    if name == "teacher_modes":
        if math.isinf(x):
            return math.inf
        if not x.is_integer():
            raise InvalidParameterError(name, "an integer or inf", value)
    return x


def parse_list(text: str, name: str) -> int | float | list[int | float]:
    """Parse a command-line value: ``"1,2,3"`` gives a list, ``"1"`` a scalar.

    ``inf`` is accepted where the parameter allows it (``teacher_modes``).
    """
    pairs = split_numbers(text, f"--{name.replace('_', '-')}", "a number or a comma-separated list of numbers")
    out = [_coerce(name, x) for _, x in pairs]
    return out if len(out) > 1 else out[0]


def _as_values(name: str, value: Any) -> list[int | float] | int | float | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple, np.ndarray)):
        vals = [_coerce(name, v) for v in value]
        if not vals:
            raise InvalidParameterError(name, "a non-empty list", value)
        if len(set(vals)) != len(vals):
            raise InvalidParameterError(name, "a list without repeated values", value)
        return vals
    return _coerce(name, value)


def _file_hash(path: Path, name: str) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise InvalidParameterError(name, "a readable file", str(path), detail=str(exc)) from None


# -- configuration ------------------------------------------------------------------------
@dataclass
class SweepConfig:
    """A sweep: lists of problem parameters, times, and how to run it.

    Parameters
    ----------
    problem : dict
        ProblemConfig fields (see :class:`kdmft.config.ProblemConfig`); the fields in
        :data:`SWEEPABLE` may be lists (each list becomes a dimension), file fields are scalars.
        Unset fields take the defaults of ``defaults``.
    times : array
        Output times t >= 0 in SDE units (``inf`` allowed); sorted and made unique.
    simulate, realizations, seed : bool, int, int
        Optional exact simulation per point with ``realizations`` data sets; the point's seed
        is derived from ``seed`` and the point's parameters.
    method : str
        Theory solver (see :data:`kdmft.theory.METHODS`).
    t_min, t_max : float, optional
        Search window of t* (default: the smallest positive and the largest finite time).
    out : str, optional
        Output netCDF file; its cache is ``<out>.cache``.
    workers, scheduler, serial
        Execution: a LocalCluster of ``workers`` processes (default: min(CPUs, points)), an
        existing Dask scheduler at ``scheduler``, or serial in this process.
    defaults : {"run", "theory"}
        ``"run"`` fills unset spectrum / training fields like ``kdmft run`` (N = 100, α = 0.5,
        g = 0.01, T = 0.05, P = 100); ``"theory"`` like ``kdmft theory`` (P, N and α required,
        g = T = 0).
    """

    problem: dict[str, Any] = field(default_factory=dict)
    times: np.ndarray = field(default_factory=lambda: TimesConfig().array())
    simulate: bool = False
    realizations: int = 1000
    seed: int = 0
    method: str = "laplace"
    t_min: float | None = None
    t_max: float | None = None
    out: str | None = None
    workers: int | None = None
    scheduler: str | None = None
    serial: bool = False
    base_dir: str = "."
    defaults: str = "run"

    _TABLES = {"problem", "times", "simulation", "stopping", "sweep"}
    _KEYS = {"simulation": {"enabled": bool, "realizations": int, "seed": int},
             "stopping": {"t_min": float, "t_max": float},
             "sweep": {"out": str, "method": str, "workers": int, "scheduler": str, "serial": bool}}

    @classmethod
    def from_dict(cls, data: dict[str, Any], base_dir: str | Path = ".") -> SweepConfig:
        """Build from the tables of a sweep TOML file (unknown tables or keys are errors)."""
        for key in data:
            if key not in cls._TABLES:
                raise InvalidParameterError(f"[{key}]", f"one of the tables {sorted(cls._TABLES)}", key,
                                            detail="unknown table")
        kw: dict[str, Any] = {"base_dir": str(base_dir)}
        prob = data.get("problem", {})
        if not isinstance(prob, dict):
            raise InvalidParameterError("[problem]", "a TOML table", prob)
        known = {f.name for f in dataclasses.fields(ProblemConfig)}
        for k in prob:
            if k not in known:
                raise InvalidParameterError(f"problem.{k}", f"one of the keys {sorted(known)}", k,
                                            detail="unknown key")
        kw["problem"] = dict(prob)
        if "times" in data:
            tt = data["times"]
            if not isinstance(tt, dict):
                raise InvalidParameterError("[times]", "a TOML table", tt)
            tkeys = {"start", "stop", "num", "values", "with_inf"}
            for k in tt:
                if k not in tkeys:
                    raise InvalidParameterError(f"times.{k}", f"one of the keys {sorted(tkeys)}", k,
                                                detail="unknown key")
            with_inf = tt.get("with_inf", False)
            if not isinstance(with_inf, bool):
                raise InvalidParameterError("times.with_inf", "true or false", with_inf)
            tc = TimesConfig(**{k: (float(v) if k in ("start", "stop") and isinstance(v, int)
                                    and not isinstance(v, bool) else v) for k, v in tt.items() if k != "with_inf"})
            if "values" in tt:
                vals = tt["values"]
                if not isinstance(vals, list):
                    raise InvalidParameterError("times.values", "a list of numbers >= 0 (\"inf\" allowed)", vals)
                kw["times"] = parse_times(",".join(str(v) for v in vals)) if vals else tc.array()
            else:
                kw["times"] = tc.array()
            if with_inf:
                kw["times"] = np.append(kw["times"], math.inf)
        for table, keys in cls._KEYS.items():
            sub = data.get(table, {})
            if not isinstance(sub, dict):
                raise InvalidParameterError(f"[{table}]", "a TOML table", sub)
            for k, v in sub.items():
                if k not in keys:
                    raise InvalidParameterError(f"{table}.{k}", f"one of the keys {sorted(keys)}", k,
                                                detail="unknown key")
                kind = keys[k]
                if kind is float and isinstance(v, int) and not isinstance(v, bool):
                    v = float(v)
                if isinstance(v, bool) != (kind is bool) or not isinstance(v, kind):
                    raise InvalidParameterError(f"{table}.{k}", {bool: "true or false", int: "an integer",
                                                                 float: "a number", str: "a string"}[kind], v)
                kw[{"enabled": "simulate"}.get(k, k)] = v
        return cls(**kw)

    @classmethod
    def from_toml(cls, path: str | Path) -> SweepConfig:
        """Read a sweep config file; relative paths in it are taken from its directory."""
        return cls.from_dict(read_toml(path), base_dir=Path(path).resolve().parent)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible description (stored in the results file as ``config_json``)."""
        t = [float(x) if math.isfinite(x) else "inf" for x in np.asarray(self.times, dtype=np.float64)]
        prob = {k: (("inf" if isinstance(v, float) and math.isinf(v) else v) if not isinstance(v, list)
                    else ["inf" if isinstance(x, float) and math.isinf(x) else x for x in v])
                for k, v in self.problem.items() if v is not None}
        return {"problem": prob, "times": {"values": t},
                "simulation": {"enabled": self.simulate, "realizations": self.realizations, "seed": self.seed},
                "stopping": {k: v for k, v in (("t_min", self.t_min), ("t_max", self.t_max)) if v is not None},
                "sweep": {"method": self.method, "defaults": self.defaults}}

    # -- validated pieces ------------------------------------------------------------------
    def resolved_problem(self) -> dict[str, Any]:
        """Problem fields with defaults filled in; list-valued fields are lists."""
        p: dict[str, Any] = {}
        known = {f.name for f in dataclasses.fields(ProblemConfig)}
        for k, v in self.problem.items():
            if k not in known:
                raise InvalidParameterError(k, f"one of the problem keys {sorted(known)}", k, detail="unknown key")
            if k in _FILE_PARAMS:
                if v is not None and not isinstance(v, (str, Path)):
                    raise InvalidParameterError(k, "a single file path (files cannot be swept)", v)
                p[k] = None if v is None else str(v)
            else:
                p[k] = _as_values(k, v)
        if self.defaults == "run":
            d = ProblemConfig.DEFAULTS
            if p.get("spectrum_file") is None:
                p.setdefault("modes", None)
                p.setdefault("alpha", None)
                p["modes"] = d["modes"] if p["modes"] is None else p["modes"]
                p["alpha"] = d["alpha"] if p["alpha"] is None else p["alpha"]
            if p.get("prior_var") is None and p.get("noise_var") is None:
                p["weight_decay"] = d["weight_decay"] if p.get("weight_decay") is None else p["weight_decay"]
                p["temperature"] = d["temperature"] if p.get("temperature") is None else p["temperature"]
            if p.get("samples") is None:
                p["samples"] = ProblemConfig.samples
        elif self.defaults == "theory":
            if p.get("samples") is None:
                raise InvalidParameterError("--samples", "given (a positive integer or a list)")
            if p.get("spectrum_file") is None and (p.get("modes") is None or p.get("alpha") is None):
                raise InvalidParameterError("--modes/--alpha", "given together, or replaced by --spectrum-file")
        else:
            raise InvalidParameterError("defaults", "'run' or 'theory'", self.defaults)
        if p.get("task_file") is None and p.get("task_exponent") is None:
            p["task_exponent"] = 0.0
        if p.get("spectrum_file") is None and p.get("lambda1") is None:
            p["lambda1"] = 1.0
        if p.get("label_noise_var") is None:
            p["label_noise_var"] = 0.0
        if p.get("prior_var") is None and p.get("noise_var") is None:
            p["weight_decay"] = 0.0 if p.get("weight_decay") is None else p["weight_decay"]
            p["temperature"] = 0.0 if p.get("temperature") is None else p["temperature"]
        return {k: v for k, v in p.items() if v is not None}

    def time_grid(self) -> np.ndarray:
        """Sorted unique output times."""
        t = np.asarray(self.times, dtype=np.float64).ravel()
        if t.size == 0 or np.any(np.isnan(t)) or np.any(t < 0):
            raise InvalidParameterError("times", "a non-empty list of numbers >= 0 (inf allowed)", list(t))
        return np.unique(t)

    def stopping_window(self) -> tuple[float, float]:
        """(t_min, t_max) of the t* search (:func:`kdmft.analysis.stopping_window` of the times)."""
        from .analysis import stopping_window

        return stopping_window(self.time_grid(), self.t_min, self.t_max)

    def check(self) -> None:
        """Validate the execution settings (the problems are validated in :func:`point_specs`)."""
        from .theory import METHODS

        if self.method not in METHODS:
            raise InvalidParameterError("method", f"one of {sorted(METHODS)}", self.method)
        if isinstance(self.realizations, bool) or not isinstance(self.realizations, int) or self.realizations < 2:
            raise InvalidParameterError("realizations", "an integer >= 2", self.realizations)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidParameterError("seed", "a non-negative integer", self.seed)
        if self.workers is not None and (isinstance(self.workers, bool) or not isinstance(self.workers, int)
                                         or self.workers < 1):
            raise InvalidParameterError("workers", "a positive integer", self.workers)
        if self.serial and self.scheduler is not None:
            raise InvalidParameterError("--serial/--scheduler", "not given together")
        if self.out is not None and not str(self.out).endswith(".nc"):
            raise InvalidParameterError("out", "a file name ending in .nc", self.out)


# -- points -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PointSpec:
    """Everything needed to compute one grid point (picklable; sent to Dask workers)."""

    index: tuple[int, ...]
    problem: dict[str, Any]
    base_dir: str
    times: np.ndarray
    method: str
    t_min: float
    t_max: float
    simulate: bool
    realizations: int
    seed: int
    key: str


def _canonical(problem: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """The point's problem with file paths replaced by content hashes (for keys and seeds)."""
    out = {}
    for k, v in sorted(problem.items()):
        if k in _FILE_PARAMS:
            p = Path(v)
            out[k + "_sha256"] = _file_hash(p if p.is_absolute() else base_dir / p, k)
        else:
            out[k] = "inf" if isinstance(v, float) and math.isinf(v) else v
    return out


def _point_seed(base_seed: int, canon: dict[str, Any]) -> int:
    """A 63-bit seed from the base seed and the point's parameters (not its grid position)."""
    text = json.dumps({"seed": base_seed, "problem": canon}, sort_keys=True)
    return int.from_bytes(hashlib.sha256(("kdmft-sweep-seed|" + text).encode()).digest()[:8], "big") >> 1


def grid_axes(config: SweepConfig) -> tuple[list[str], dict[str, list], dict[str, Any]]:
    """(dims, coordinate values per dim, fixed scalar fields) of the sweep."""
    prob = config.resolved_problem()
    dims = [k for k in SWEEPABLE if isinstance(prob.get(k), list)]
    coords = {k: prob[k] for k in dims}
    fixed = {k: v for k, v in prob.items() if k not in dims}
    return dims, coords, fixed


def point_specs(config: SweepConfig) -> tuple[list[str], dict[str, list], dict[str, Any], list[PointSpec]]:
    """Expand the grid into validated points (every Problem is built once here, so bad input
    fails before anything is computed)."""
    config.check()
    dims, coords, fixed = grid_axes(config)
    times = config.time_grid()
    t_min, t_max = config.stopping_window()
    base = Path(config.base_dir)
    specs = []
    shape = [len(coords[d]) for d in dims]
    for index in np.ndindex(*shape):
        prob = dict(fixed)
        prob.update({d: coords[d][i] for d, i in zip(dims, index, strict=True)})
        ProblemConfig(**prob).build(base)  # validation only
        canon = _canonical(prob, base)
        seed = _point_seed(config.seed, canon) if config.simulate else 0
        key_src = {"format": CACHE_FORMAT, "version": __version__, "problem": canon,
                   "times": times.tobytes().hex(), "method": config.method, "t_min": t_min, "t_max": t_max,
                   "simulate": config.simulate, "realizations": config.realizations if config.simulate else 0,
                   "seed": seed}
        key = hashlib.sha256(json.dumps(key_src, sort_keys=True).encode()).hexdigest()[:32]
        specs.append(PointSpec(tuple(int(i) for i in index), prob, str(base), times, config.method, t_min,
                               t_max, config.simulate, config.realizations, seed, key))
    return dims, coords, fixed, specs


def compute_point(spec: PointSpec) -> dict[str, Any]:
    """Theory curve, optimal stopping (and simulation) of one point.

    Returns a dict of arrays; on a kdmft error it returns ``{"error": (class name, message)}``
    instead of raising (kdmft's exceptions carry structured arguments that do not survive
    pickling between Dask processes).
    """
    from threadpoolctl import threadpool_limits

    from .analysis import optimal_stopping
    from .errors import DivergenceWarning, FiniteSizeWarning, HeavyTailWarning
    from .simulate import simulate
    from .theory import learning_curve

    try:
        # One BLAS thread: the same floating-point operations in every execution mode, and
        # points (not BLAS) are the unit of parallelism.
        with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
            warnings.simplefilter("ignore", DivergenceWarning)  # reported by divergence_note
            warnings.simplefilter("ignore", HeavyTailWarning)  # stored as sim_test_error_heavy_tail
            warnings.simplefilter("ignore", FiniteSizeWarning)  # one per point would drown the output
            problem = ProblemConfig(**spec.problem).build(Path(spec.base_dir))
            ds = learning_curve(problem, spec.times, method=spec.method)
            out: dict[str, Any] = {k: ds[k].values.astype(np.float64) for k in CURVE_VARIABLES}
            stop = optimal_stopping(problem, t_min=spec.t_min, t_max=spec.t_max)
            out["stopping_status"] = np.int8(STATUS_CODES[stop.status])
            if stop.status == "interior":
                ts = stop.t_star
                h = 1.0 + _RATE_STEP
                near = learning_curve(problem, [ts / h, ts, ts * h], method=spec.method)
                b = near["bias"].values
                v = near["noise_variance"].values + near["thermal_variance"].values
                d = 2.0 * math.log(h)
                vals = {"t_opt": ts, "test_error_opt": stop.test_error, "bias_opt": b[1], "variance_opt": v[1],
                        "bias_rate_opt": -(b[2] - b[0]) / d, "variance_rate_opt": (v[2] - v[0]) / d}
            else:
                vals = dict.fromkeys(_STOP_VARIABLES, math.nan)
            out.update({k: np.float64(x) for k, x in vals.items()})
            if spec.simulate:
                sim = simulate(problem, spec.times, spec.realizations, spec.seed)
                for k in CURVE_VARIABLES:
                    out["sim_" + k] = sim[k].values.astype(np.float64)
                    out["sim_" + k + "_se"] = sim[k + "_se"].values.astype(np.float64)
                out["sim_test_error_heavy_tail"] = sim["test_error_heavy_tail"].values.astype(np.int8)
        return out
    except KdmftError as exc:
        return {"error": (type(exc).__name__, str(exc))}


# -- cache --------------------------------------------------------------------------------
def cache_dir_for(out: str | Path) -> Path:
    """The cache directory of an output file: ``<out>.cache``."""
    return Path(str(out) + ".cache")


def _cache_file(cache: Path, spec: PointSpec) -> Path:
    return cache / f"{spec.key}.npz"


def _load_cached(cache: Path | None, spec: PointSpec) -> dict[str, Any] | None:
    if cache is None:
        return None
    f = _cache_file(cache, spec)
    if not f.is_file():
        return None
    try:
        with np.load(f, allow_pickle=False) as z:
            if str(z["__key__"]) != spec.key:
                return None
            return {k: z[k] for k in z.files if k != "__key__"}
    except (OSError, ValueError, KeyError, EOFError):
        return None  # unreadable: recompute


def _store(cache: Path | None, spec: PointSpec, result: dict[str, Any]) -> None:
    if cache is None:
        return
    ensure_dir(cache, "sweep cache directory (<out>.cache)")
    with atomic_path(_cache_file(cache, spec)) as tmp, tmp.open("wb") as fh:
        np.savez(fh, __key__=np.array(spec.key), **result)


def cache_status(config: SweepConfig, cache: str | Path | None = None) -> tuple[int, int]:
    """(points already cached, total points) of a sweep."""
    _, _, _, specs = point_specs(config)
    c = _resolve_cache(config, cache)
    return sum(_load_cached(c, s) is not None for s in specs), len(specs)


def _resolve_cache(config: SweepConfig, cache: str | Path | None | bool) -> Path | None:
    if cache is False:
        return None
    if cache is not None and cache is not True:
        return Path(cache)
    return cache_dir_for(config.out) if config.out is not None else None


# -- execution ----------------------------------------------------------------------------
def _raise_point_error(spec: PointSpec, err: tuple[str, str]) -> None:
    name, msg = err
    where = ", ".join(f"{k} = {v}" for k, v in sorted(spec.problem.items()))
    if name == "InvalidParameterError":
        raise InvalidParameterError("sweep point", "a valid problem", where, detail=msg)
    raise ConvergenceError(f"sweep point ({where}): {msg}")


def _run_serial(specs: Sequence[PointSpec], on_result: Callable[[PointSpec, dict], None]) -> None:
    for s in specs:
        on_result(s, compute_point(s))


def _run_dask(specs: Sequence[PointSpec], on_result: Callable[[PointSpec, dict], None], *,
              client=None, scheduler: str | None = None, workers: int | None = None) -> None:
    import logging
    import os

    from distributed import Client, LocalCluster, as_completed

    own_cluster = own_client = None
    try:
        if client is None:
            if scheduler is not None:
                try:
                    client = own_client = Client(scheduler, timeout="10s")
                except (OSError, TimeoutError, ValueError, TypeError) as exc:
                    # ValueError / TypeError: an address that does not parse (no port, empty).
                    raise InvalidParameterError("--scheduler", "the address of a reachable Dask scheduler "
                                                "(e.g. tcp://127.0.0.1:8786)", scheduler, detail=str(exc)) from None
            else:
                n = workers or max(1, min(os.cpu_count() or 1, len(specs)))
                with warnings.catch_warnings():
                    # No dashboard is served, yet its HTTP port is still bound; when 8787 is taken
                    # distributed picks another and warns, which tells a sweep user nothing.
                    warnings.filterwarnings("ignore", message="Port .* is already in use", category=UserWarning)
                    own_cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                               dashboard_address=None, silence_logs=logging.ERROR)
                client = own_client = Client(own_cluster)
        # Keys unique per call: a later sweep on the same cluster must compute, not pick up
        # futures of an earlier one that the scheduler still holds (resume is the disk cache's job).
        token = uuid.uuid4().hex[:8]
        futures = client.map(compute_point, list(specs), key=[f"kdmft-point-{s.key}-{token}" for s in specs],
                             pure=False)
        by_key = {f.key: s for f, s in zip(futures, specs, strict=True)}
        try:
            for fut, result in as_completed(futures, with_results=True):
                on_result(by_key[fut.key], result)
        except BaseException:
            client.cancel(futures)
            raise
    finally:
        if own_client is not None:
            own_client.close()
        if own_cluster is not None:
            own_cluster.close()


def run_sweep(config: SweepConfig, *, progress: Progress | None = None, client=None,
              cache: str | Path | bool | None = None, write: bool = True) -> xr.Dataset:
    """Run a sweep (resuming from its cache) and return, and write, the results Dataset.

    Parameters
    ----------
    config : SweepConfig
    progress : callable(done, total), optional
        Called once with the number of cached points, then after every computed point.
    client : distributed.Client, optional
        Use this Dask client (overrides ``config.scheduler`` / ``config.serial``).
    cache : path, bool or None
        Cache directory; default ``<config.out>.cache`` (none without ``out``); ``False``
        disables caching.
    write : bool
        Write ``config.out`` (atomically) when every point is done.

    Returns
    -------
    xarray.Dataset
        Dimensions: the swept parameters (lists) plus ``time``; see the module docstring.
    """
    dims, coords, fixed, specs = point_specs(config)
    cdir = _resolve_cache(config, cache)
    results: dict[tuple[int, ...], dict[str, Any]] = {}
    missing = []
    for s in specs:
        r = _load_cached(cdir, s)
        if r is None:
            missing.append(s)
        else:
            results[s.index] = r
    total = len(specs)
    if progress is not None:
        progress(len(results), total)

    def on_result(spec: PointSpec, result: dict[str, Any]) -> None:
        if "error" in result:
            _raise_point_error(spec, result["error"])
        _store(cdir, spec, result)
        results[spec.index] = result
        if progress is not None:
            progress(len(results), total)

    if missing:
        if client is None and (config.serial or len(missing) == 1 and config.scheduler is None):
            _run_serial(missing, on_result)
        else:
            _run_dask(missing, on_result, client=client, scheduler=config.scheduler, workers=config.workers)
    ds = assemble(config, dims, coords, fixed, specs, results)
    if write and config.out is not None:
        write_netcdf(ds, config.out)
    return ds


# -- assembly -----------------------------------------------------------------------------
_UNITS = "target variance units"


def assemble(config: SweepConfig, dims: list[str], coords: dict[str, list], fixed: dict[str, Any],
             specs: Sequence[PointSpec], results: dict[tuple[int, ...], dict[str, Any]]) -> xr.Dataset:
    """The results Dataset from per-point results (all points must be present)."""
    from .results import VARIABLES

    times = config.time_grid()
    shape = tuple(len(coords[d]) for d in dims)
    first = results[specs[0].index]
    data: dict[str, np.ndarray] = {}
    for k, v in first.items():
        arr = np.asarray(v)
        data[k] = np.empty(shape + arr.shape, dtype=arr.dtype)
    for s in specs:
        for k, v in results[s.index].items():
            data[k][s.index] = v
    tdims = [*dims, "time"]
    dvars: dict[str, Any] = {}
    for k in CURVE_VARIABLES:
        dvars[k] = (tdims, data[k], {"long_name": "DMFT " + VARIABLES[k], "units": _UNITS})
    for k, long in _STOP_VARIABLES.items():
        units = "SDE time" if k == "t_opt" else _UNITS
        dvars[k] = (dims, data[k], {"long_name": long, "units": units})
    dvars["stopping_status"] = (dims, data["stopping_status"].astype(np.int8), {
        "long_name": "shape of E(t) in the t* search window",
        "flag_values": np.array(list(STATUS_CODES.values()), dtype=np.int8),
        "flag_meanings": " ".join(STATUS_CODES),
        "comment": "0: interior minimum (t_opt is t*); 1: E decreases to t_max, 2: E increases from t_min "
                   "(no early-stopping optimum: t_opt and *_opt are NaN)"})
    if config.simulate:
        for k in CURVE_VARIABLES:
            dvars["sim_" + k] = (tdims, data["sim_" + k], {"long_name": "simulated " + VARIABLES[k] + " (mean)",
                                                           "units": _UNITS})
            dvars["sim_" + k + "_se"] = (tdims, data["sim_" + k + "_se"], {
                "long_name": "standard error of the simulated " + VARIABLES[k], "units": _UNITS})
        dvars["sim_test_error_heavy_tail"] = (tdims, data["sim_test_error_heavy_tail"], {
            "long_name": "1 where the simulated test error is heavy tailed (standard error untrustworthy)"})
        dvars["seed"] = (dims, np.array([s.seed for s in specs], dtype=np.int64).reshape(shape), {
            "long_name": "simulation seed of the point (derived from the base seed and the point's parameters)"})
    cvals: dict[str, Any] = {}
    for d in dims:
        vals = np.array(coords[d], dtype=np.int64 if d in _INT_PARAMS else np.float64)
        cvals[d] = (d, vals, {"long_name": d.replace("_", " ")})
    cvals["time"] = ("time", times, {"long_name": "training time t",
                                     "units": "SDE time (dw = -[grad L + g w] dt + sqrt(2T) dB)"})
    ds = xr.Dataset(dvars, coords=cvals)
    t_min, t_max = config.stopping_window()
    attrs: dict[str, Any] = {"kind": "sweep", "kdmft_version": __version__, "method": config.method,
                             "swept": json.dumps(dims), "config_json": json.dumps(config.to_dict()),
                             "stopping_t_min": t_min, "stopping_t_max": t_max, "simulated": int(config.simulate),
                             "t_opt_note": "t_opt minimises the continuous DMFT curve in [stopping_t_min, "
                                           "stopping_t_max]; NaN where stopping_status != 0 (no interior optimum)"}
    if config.simulate:
        attrs.update(seed=config.seed, realizations=config.realizations)
    for k, v in fixed.items():
        attrs[k] = v if not isinstance(v, Path) else str(v)
    note = _divergence_note(ds)
    if note:
        attrs["divergence_note"] = note
    ds.attrs.update(attrs)
    return ds


def _divergence_note(ds: xr.Dataset) -> str:
    notes = []
    for k in ("thermal_variance", "noise_variance"):
        bad = ~np.isfinite(ds[k].values)
        if bad.any():
            n = int(bad.reshape(-1, ds.sizes["time"]).any(axis=1).sum())
            why = ("t = inf with g = 0, T > 0 and P <= N: Langevin noise diffuses for ever in the null space of XᵀX"
                   if k == "thermal_variance" else
                   "t = inf at the interpolation threshold P = N with g = 0")
            notes.append(f"{k} is inf at {n} point(s) ({why})")
    return "; ".join(notes)
