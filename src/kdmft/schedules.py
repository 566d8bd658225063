"""Training schedules: learning-rate factor η(t), weight decay g(t), temperature T(t).

Training with a schedule is the SDE

    dw = -η(t) [∇L(w) + g(t) w] dt + sqrt(2 η(t) T(t)) dB_t,

with g(t) = g · f_g(t) and T(t) = T · f_T(t): each schedule is a dimensionless *factor* (a
:class:`Shape`) multiplying the problem's base weight decay g and temperature T; the
learning-rate factor is η(t) = f_η(t) itself. Without a schedule every factor is 1.

Built-in shapes (``t`` in SDE time units):

==============  ========================================  ======================================
shape           factor f(t)                               parameters
==============  ========================================  ======================================
constant        value                                     value >= 0 (default 1)
exponential     floor + (1 - floor) e^{-rate t}           rate > 0, floor >= 0 (default 0)
step            values[i] on [at[i-1], at[i])             at: increasing times > 0; values:
                                                          len(at) + 1 numbers >= 0
cosine          floor + (1 - floor)(1 + cos(π min(t,D)/D))/2   duration D > 0, floor >= 0
warmup          start + (1 - start) min(t / D, 1)         duration D > 0, start >= 0 (default 0)
callable        any vectorised Python function f(t)       (API only)
==============  ========================================  ======================================

A learning-rate factor must be > 0 at all times (it is a change of time, τ = ∫η dt).

From a TOML config::

    [schedule.temperature]
    shape = "exponential"
    rate = 0.5

From the command line: ``--temperature-schedule exponential:rate=0.5,floor=0`` (lists with
``/``: ``step:at=1/3,values=1/0.5/0.1``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InvalidParameterError

__all__ = ["Shape", "Schedule", "SHAPES", "parse_shape", "shape_from_dict", "schedule_from_dict"]

#: Shape name -> {parameter: default (None = required)}.
SHAPES: dict[str, dict[str, Any]] = {
    "constant": {"value": 1.0},
    "exponential": {"rate": None, "floor": 0.0},
    "step": {"at": None, "values": None},
    "cosine": {"duration": None, "floor": 0.0},
    "warmup": {"duration": None, "start": 0.0},
}
_ROLES = ("learning_rate", "weight_decay", "temperature")
#: Largest accepted spread of the weight-decay gauge ∫η (g - g0) dt (precision e^{2 spread} eps).
MAX_GAUGE_SPREAD = 5.0


def _num(value: Any, name: str, *, positive: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(name, "a number", value) from None
    if isinstance(value, bool) or not math.isfinite(x) or x < 0 or (positive and x == 0):
        raise InvalidParameterError(name, "a positive finite number" if positive else "a finite number >= 0",
                                    value)
    return x


@dataclass(frozen=True)
class Shape:
    """A schedule factor f(t) >= 0: a built-in shape with parameters, or a Python callable.

    Parameters
    ----------
    kind : str
        One of :data:`SHAPES` or ``"callable"``.
    params : dict
        The shape's parameters (validated).
    func : callable, optional
        For ``kind="callable"``: a function of a float array t (SDE time) returning f(t).
    """

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    func: Callable[[np.ndarray], np.ndarray] | None = None

    def __post_init__(self) -> None:
        if self.kind == "callable":
            if not callable(self.func):
                raise InvalidParameterError("schedule", "a callable f(t) for shape 'callable'", self.func)
            return
        if self.kind not in SHAPES:
            raise InvalidParameterError("schedule shape", f"one of {sorted(SHAPES) + ['callable']}", self.kind)
        spec = SHAPES[self.kind]
        unknown = set(self.params) - set(spec)
        if unknown:
            raise InvalidParameterError(f"schedule {self.kind}", f"given parameters among {sorted(spec)}",
                                        sorted(unknown)[0], detail="unknown parameter")
        p = {}
        for key, default in spec.items():
            if key not in self.params:
                if default is None:
                    raise InvalidParameterError(f"schedule {self.kind}.{key}", "given")
                p[key] = default
            else:
                p[key] = self.params[key]
        name = f"schedule {self.kind}"
        if self.kind == "step":
            at = [_num(x, f"{name}.at", positive=True) for x in _as_list(p["at"], f"{name}.at")]
            vals = [_num(x, f"{name}.values") for x in _as_list(p["values"], f"{name}.values")]
            if any(b <= a for a, b in zip(at, at[1:], strict=False)):
                raise InvalidParameterError(f"{name}.at", "strictly increasing times", p["at"])
            if len(vals) != len(at) + 1:
                raise InvalidParameterError(f"{name}.values", f"{len(at) + 1} numbers (one more than 'at')",
                                            p["values"])
            p = {"at": at, "values": vals}
        else:
            for key in p:
                p[key] = _num(p[key], f"{name}.{key}", positive=key in ("rate", "duration"))
        object.__setattr__(self, "params", p)

    def __call__(self, t: np.ndarray | float) -> np.ndarray:
        """The factor at times t (array in, array out)."""
        t = np.asarray(t, dtype=np.float64)
        p = self.params
        if self.kind == "callable":
            try:
                raw = np.asarray(self.func(t))
                if np.iscomplexobj(raw):
                    raise TypeError("it returned complex values")
                out = np.broadcast_to(raw.astype(np.float64), t.shape).copy()
            except Exception as exc:  # a user's function failing is bad input, reported by name
                raise InvalidParameterError("schedule", "a callable accepting a float array of times",
                                            self.func, detail=f"it raised {type(exc).__name__}: {exc}") from None
            return out
        if self.kind == "constant":
            return np.full(t.shape, p["value"])
        if self.kind == "exponential":
            return p["floor"] + (1.0 - p["floor"]) * np.exp(-p["rate"] * t)
        if self.kind == "step":
            idx = np.searchsorted(np.asarray(p["at"]), t, side="right")
            return np.asarray(p["values"])[idx]
        if self.kind == "cosine":
            x = np.minimum(t, p["duration"]) / p["duration"]
            return p["floor"] + (1.0 - p["floor"]) * 0.5 * (1.0 + np.cos(np.pi * x))
        if self.kind == "warmup":
            return p["start"] + (1.0 - p["start"]) * np.minimum(t / p["duration"], 1.0)
        raise InvalidParameterError("schedule shape", f"one of {sorted(SHAPES)}", self.kind)

    @property
    def breakpoints(self) -> list[float]:
        """Times where the factor or its slope jumps (kept on quadrature grids)."""
        if self.kind == "step":
            return list(self.params["at"])
        if self.kind in ("cosine", "warmup"):
            return [self.params["duration"]]
        return []

    def scale(self, t_max: float) -> float:
        """Shortest time scale on which the factor varies within [0, t_max] (inf when constant).

        Built-in shapes: 1/rate, the duration, the first step time. A callable is probed on a
        geometric grid from 1e-15 t_max: the scale is the first probe time where it has changed
        by more than 1e-9 of its range (inf when it never does)."""
        p = self.params
        if self.kind == "constant":
            return math.inf
        if self.kind == "exponential":
            return math.inf if p["floor"] == 1.0 else 1.0 / p["rate"]
        if self.kind in ("cosine", "warmup"):
            return p["duration"]
        if self.kind == "step":
            return min(p["at"])
        x = np.concatenate([[0.0], np.geomspace(1e-15 * t_max, t_max, 1501)])
        f = self(x)
        spread = float(np.ptp(f)) if np.all(np.isfinite(f)) else 0.0
        if spread == 0.0:
            return math.inf
        moved = np.flatnonzero(np.abs(f - f[0]) > 1e-9 * spread)
        return float(x[moved[0]]) if moved.size else math.inf

    @property
    def is_one(self) -> bool:
        return self.kind == "constant" and self.params["value"] == 1.0

    def describe(self) -> dict[str, Any]:
        """JSON-able description (a callable is named, not serialised)."""
        if self.kind == "callable":
            return {"shape": "callable", "name": getattr(self.func, "__name__", repr(self.func))}
        return {"shape": self.kind, **self.params}


def _as_list(value: Any, name: str) -> list:
    if isinstance(value, (list, tuple, np.ndarray)):
        return list(value)
    if isinstance(value, str):
        return [s for s in value.split("/") if s.strip() != ""]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value]
    raise InvalidParameterError(name, "a list of numbers", value)


def shape_from_dict(data: dict[str, Any], name: str = "schedule") -> Shape:
    """A Shape from a TOML table such as ``{shape = "exponential", rate = 0.5}``."""
    if not isinstance(data, dict):
        raise InvalidParameterError(name, "a table with a 'shape' key", data)
    d = dict(data)
    kind = d.pop("shape", None)
    if not isinstance(kind, str):
        raise InvalidParameterError(f"{name}.shape", f"one of {sorted(SHAPES)}", kind)
    return Shape(kind, d)


def parse_shape(text: str, name: str = "schedule") -> Shape:
    """A Shape from a command-line spec ``NAME[:key=value,...]`` (lists with '/')."""
    text = str(text).strip()
    kind, _, rest = text.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, val = item.partition("=")
        if not eq or not key.strip():
            raise InvalidParameterError(name, "NAME[:key=value,...] (for example exponential:rate=0.5)", text)
        if key.strip() in params:
            raise InvalidParameterError(name, "each key at most once", text, detail=f"'{key.strip()}' repeated")
        params[key.strip()] = val.strip()
    if kind.strip() not in SHAPES:
        raise InvalidParameterError(name, f"a shape among {sorted(SHAPES)}", kind.strip())
    try:
        return Shape(kind.strip(), params)
    except InvalidParameterError as exc:
        # "schedule exponential.rate" -> "--temperature-schedule exponential.rate"
        key = exc.name.removeprefix("schedule").strip()
        raise InvalidParameterError(f"{name} {key}".strip(), exc.accepted, exc.received) from None


@dataclass(frozen=True)
class Schedule:
    """Learning-rate, weight-decay and temperature factors (None = constant 1).

    Examples
    --------
    >>> s = Schedule(temperature=Shape("exponential", {"rate": 0.5}))
    >>> float(s.factor("temperature", 0.0)[()])
    1.0
    """

    learning_rate: Shape | None = None
    weight_decay: Shape | None = None
    temperature: Shape | None = None

    def __post_init__(self) -> None:
        for role in _ROLES:
            s = getattr(self, role)
            if s is not None and not isinstance(s, Shape):
                if callable(s):
                    object.__setattr__(self, role, Shape("callable", func=s))
                else:
                    raise InvalidParameterError(f"schedule.{role}", "a kdmft.schedules.Shape or a callable", s)
        lr = self.learning_rate
        if lr is not None and lr.kind != "callable":
            # A warm-up may start from 0 and an exponential decay approach 0 (η > 0 for t > 0);
            # a cosine floor or step value of 0 would stop training, which the time map τ(t) forbids.
            vals = {"constant": [lr.params.get("value")], "exponential": [1.0], "cosine": [lr.params.get("floor")],
                    "warmup": [1.0], "step": lr.params.get("values")}[lr.kind]
            if min(vals) <= 0:
                raise InvalidParameterError("schedule.learning_rate", "a factor > 0 at all times t > 0 "
                                            "(cosine floor, step values and constant value > 0)", lr.describe())

    @property
    def is_constant(self) -> bool:
        """True when every factor is identically 1 (the constant protocol)."""
        return all(getattr(self, r) is None or getattr(self, r).is_one for r in _ROLES)

    def factor(self, role: str, t: np.ndarray | float) -> np.ndarray:
        """Factor ``role`` at times t, validated (finite, >= 0; > 0 for the learning rate)."""
        s = getattr(self, role)
        t = np.asarray(t, dtype=np.float64)
        f = np.ones(t.shape) if s is None else s(t)
        if role == "learning_rate" and s is not None and s.kind == "exponential":
            # e^{-rate t} underflows to 0 after ~745/rate; the factor is positive (training has
            # all but stopped, τ(t) keeps its limit).
            f = np.where(t > 0, np.maximum(f, np.finfo(np.float64).tiny), f)
        bad = ~np.isfinite(f) | (f < 0) | (((f <= 0) & (t > 0)) if role == "learning_rate" else False)
        if np.any(bad):
            i = np.flatnonzero(np.ravel(bad))[0]
            raise InvalidParameterError(f"schedule.{role}", "finite, >= 0 (> 0 for the learning rate at t > 0)",
                                        f"{np.ravel(f)[i]!r} at t = {np.ravel(t)[i]:.6g}")
        return f

    def check_bases(self, g: float, T: float) -> None:
        """InvalidParameterError for a weight-decay factor on g = 0 or a temperature factor on T = 0
        (a factor on zero changes nothing, which is almost certainly not what was meant)."""
        for role, base, flag in (("weight_decay", g, "weight_decay (--weight-decay)"),
                                 ("temperature", T, "temperature (--temperature)")):
            s = getattr(self, role)
            if s is not None and not s.is_one and base == 0:
                raise InvalidParameterError(f"schedule.{role}", f"used with {flag} > 0", 0.0,
                                            detail="the schedule multiplies the base value, here 0")

    def scale(self, t_max: float) -> float:
        """Shortest time scale of any factor within [0, t_max] (see :meth:`Shape.scale`)."""
        return min([getattr(self, r).scale(t_max) for r in _ROLES if getattr(self, r) is not None] + [math.inf])

    def breakpoints(self, t_max: float) -> np.ndarray:
        pts = [b for r in _ROLES if getattr(self, r) is not None for b in getattr(self, r).breakpoints]
        return np.array(sorted(b for b in pts if 0 < b < t_max))

    def describe(self) -> dict[str, Any]:
        return {r: getattr(self, r).describe() for r in _ROLES if getattr(self, r) is not None}

    # -- sampling ----------------------------------------------------------------------------
    def time_maps(self, g: float, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """τ(t) = ∫_0^t η and γ(t) = ∫_0^t η g at increasing times t (fine trapezoid, breakpoints kept).

        The quadrature uses at least 64 sub-intervals per interval of ``t`` plus the shapes'
        breakpoints, so a step schedule is integrated exactly and smooth ones to ~1e-8.
        """
        t = np.asarray(t, dtype=np.float64)
        tmax = float(t[-1])
        fine = np.unique(np.concatenate([np.linspace(0.0, tmax, 64 * t.size + 1), t, self.breakpoints(tmax)]))
        # Step shapes jump at breakpoints: evaluate each cell at its midpoint (exact for steps).
        mid = 0.5 * (fine[1:] + fine[:-1])
        h = np.diff(fine)
        eta_m = self.factor("learning_rate", mid)
        gm = g * self.factor("weight_decay", mid)
        tau_f = np.r_[0.0, np.cumsum(eta_m * h)]
        gam_f = np.r_[0.0, np.cumsum(eta_m * gm * h)]
        return np.interp(t, fine, tau_f), np.interp(t, fine, gam_f)

    def protocol_sampler(self, g: float, T: float):
        """Function (dt, times) -> (ProtocolGrid, τ(times)) for the time-domain solver."""
        from .theory.timedomain import ProtocolGrid

        def sample(dt: float, times: np.ndarray):
            times = np.asarray(times, dtype=np.float64)
            tmax = float(times.max())
            tq = np.linspace(0.0, tmax, max(2048, int(math.ceil(4 * tmax / dt)) + 1))
            tau_q, gam_q = self.time_maps(g, tq)
            tau_max = float(tau_q[-1])
            dtau = dt * tau_max / tmax            # same number of steps as a uniform t grid
            n = int(math.ceil(tau_max / dtau - 1e-9)) + 1
            tau = dtau * np.arange(n)
            t_of_tau = np.interp(tau, tau_q, tq)
            gam = np.interp(t_of_tau, tq, gam_q)
            g0 = float(gam_q[-1] / tau_max)
            gauge = gam - g0 * tau
            check_gauge_spread(gauge)
            grid = ProtocolGrid(dtau, n, g0, gauge, g * self.factor("weight_decay", t_of_tau),
                                T * self.factor("temperature", t_of_tau))
            return grid, np.interp(times, tq, tau_q)

        return sample


_SYMBOL = {"learning_rate": "η", "weight_decay": "g", "temperature": "T"}


def schedule_summary(desc: dict[str, Any] | str) -> str:
    """One line from :meth:`Schedule.describe` (or its JSON, as stored in results files):
    ``T × exponential(rate=0.5, floor=0)``, one per factor."""
    if isinstance(desc, str):
        import json

        try:
            desc = json.loads(desc)
        except ValueError:
            return desc
        if not isinstance(desc, dict):
            return str(desc)
    parts = []
    for role, d in desc.items():
        d = dict(d)
        shape = d.pop("shape", "?")
        args = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in d.items())
        parts.append(f"{_SYMBOL.get(role, role)} × {shape}({args})")
    return "; ".join(parts)


def check_gauge_spread(gauge: np.ndarray) -> None:
    """InvalidParameterError when the weight-decay gauge Γ = ∫η(g - ḡ)dt spreads beyond MAX_GAUGE_SPREAD."""
    spread = float(np.max(gauge) - np.min(gauge))
    if spread > MAX_GAUGE_SPREAD:
        raise InvalidParameterError(
            "schedule.weight_decay", f"a schedule whose ∫η(g - ḡ)dt stays within {MAX_GAUGE_SPREAD} over the "
            "time window", f"spread {spread:.3g}",
            detail="the gauge factor e^{2 spread} would cost too much precision; shorten the window")


def schedule_from_dict(data: dict[str, Any] | None) -> Schedule | None:
    """A Schedule from the ``[schedule]`` TOML table (sub-tables learning_rate, weight_decay, temperature)."""
    if not data:
        return None
    if not isinstance(data, dict):
        raise InvalidParameterError("[schedule]", "a TOML table", data)
    unknown = set(data) - set(_ROLES)
    if unknown:
        raise InvalidParameterError(f"schedule.{sorted(unknown)[0]}", f"one of {list(_ROLES)}",
                                    sorted(unknown)[0], detail="unknown key")
    return Schedule(**{r: shape_from_dict(data[r], f"schedule.{r}") for r in _ROLES if r in data})
