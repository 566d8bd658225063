"""Files: atomic writes of results and figures, TOML config reading.

Outputs are written to a temporary file in the target directory and renamed into place, so an
interrupted or failed run never leaves a partial or corrupt file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import xarray as xr

from .errors import InvalidParameterError

__all__ = ["atomic_path", "write_netcdf", "read_netcdf", "read_toml", "write_text"]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + target.suffix,
                               dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates the file private (0600); give it the usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_netcdf(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``ds`` as netCDF-4 (h5netcdf engine), atomically."""
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    return Path(path)


def read_netcdf(path: str | Path) -> xr.Dataset:
    """Load a results file fully into memory (the file is closed afterwards)."""
    p = Path(path)
    if not p.is_file():
        raise InvalidParameterError("results file", "an existing netCDF file", str(path))
    with xr.open_dataset(p, engine="h5netcdf") as ds:
        return ds.load()


def write_text(text: str, path: str | Path) -> Path:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML config file; unreadable or malformed files raise InvalidParameterError."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise InvalidParameterError("config", "a readable TOML file", str(path),
                                    detail="file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidParameterError("config", "a readable TOML file", str(path),
                                    detail=str(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidParameterError("config", "valid TOML", str(path), detail=str(exc)) from None
