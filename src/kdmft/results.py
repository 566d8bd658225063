"""Result datasets: variable names, long names, units, and builders.

Every curve is an :class:`xarray.Dataset` with dimension ``time`` and one data variable per
observable (see :data:`VARIABLES`). Simulations add ``<name>_se`` standard errors. The full
problem definition, the package version and (for random results) the seed are in ``attrs``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import xarray as xr

from ._version import __version__

__all__ = ["VARIABLES", "PARTS", "curve_dataset", "to_json_dict"]

PARTS = ("bias", "noise_variance", "thermal_variance",
         "train_bias", "train_noise_variance", "train_thermal_variance")

VARIABLES: dict[str, str] = {
    "test_error": "test error (excess risk) E(t)",
    "train_error": "train error E_tr(t)",
    "bias": "bias part of the test error",
    "noise_variance": "label-noise variance part of the test error",
    "thermal_variance": "thermal (Langevin) variance part of the test error",
    "train_bias": "bias part of the train error",
    "train_noise_variance": "label-noise part of the train error",
    "train_thermal_variance": "thermal part of the train error",
}

#: Keys of the JSON contract (``kdmft theory/simulate --format json``), in order.
JSON_KEYS = ("test_error", "train_error", "bias", "noise_variance", "thermal_variance")


def totals(parts: dict[str, np.ndarray], teacher_tail: float) -> dict[str, np.ndarray]:
    """Add test/train totals to a dict of parts; the teacher tail is a constant in the bias."""
    out = dict(parts)
    out["bias"] = np.asarray(parts["bias"]) + teacher_tail
    out["test_error"] = out["bias"] + parts["noise_variance"] + parts["thermal_variance"]
    out["train_error"] = (np.asarray(parts["train_bias"]) + parts["train_noise_variance"]
                          + parts["train_thermal_variance"])
    return out


def _clean_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in attrs.items():
        if v is None:
            continue
        if isinstance(v, (bool, np.bool_)):
            out[k] = int(v)
        elif isinstance(v, (dict, list, tuple)):
            out[k] = json.dumps(v, default=str)
        else:
            out[k] = v
    return out


def curve_dataset(times: np.ndarray, values: dict[str, np.ndarray], attrs: dict[str, Any],
                  errors: dict[str, np.ndarray] | None = None) -> xr.Dataset:
    """Build the standard Dataset from arrays over ``times``.

    ``values`` holds any of :data:`VARIABLES` (and ``<name>_se``); ``errors`` optional
    per-variable estimated absolute errors of a theory curve (stored as ``<name>_err``).
    """
    t = np.asarray(times, dtype=np.float64)
    data_vars = {}
    for name, arr in values.items():
        base = name[:-3] if name.endswith("_se") else name
        long = VARIABLES.get(base, base)
        if name.endswith("_se"):
            long = "standard error of the " + long
        data_vars[name] = ("time", np.asarray(arr, dtype=np.float64),
                           {"long_name": long, "units": "target variance units"})
    for name, arr in (errors or {}).items():
        data_vars[name + "_err"] = ("time", np.asarray(arr, dtype=np.float64),
                                    {"long_name": "estimated solver error of the " + VARIABLES.get(name, name),
                                     "units": "target variance units"})
    ds = xr.Dataset(data_vars, coords={"time": ("time", t, {
        "long_name": "training time t", "units": "SDE time (dw = -[grad L + g w] dt + sqrt(2T) dB)"})})
    a = {"kdmft_version": __version__}
    a.update(_clean_attrs(attrs))
    ds.attrs.update(a)
    return ds


def _json_value(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def to_json_dict(ds: xr.Dataset, keys: tuple[str, ...] = JSON_KEYS, *, with_se: bool = False) -> dict:
    """The JSON contract: times and the listed variables; non-finite values become null."""
    out: dict[str, Any] = {"times": [_json_value(float(t)) if math.isfinite(float(t)) else "inf"
                                     for t in ds["time"].values]}
    for k in keys:
        out[k] = [_json_value(float(x)) for x in ds[k].values]
        if with_se:
            out[k + "_se"] = [_json_value(float(x)) for x in ds[k + "_se"].values]
    return out
