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

__all__ = ["check_output_file", "check_output_dir", "ensure_dir", "atomic_path", "write_netcdf", "read_netcdf",
           "read_toml", "write_text"]


def ensure_dir(path: str | Path, name: str = "output directory") -> Path:
    """Create directory ``path`` (and parents); an unusable location is an InvalidParameterError."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidParameterError(name, "a directory that can be created or written", str(path),
                                    detail=exc.strerror or type(exc).__name__) from None
    return p


def check_output_dir(path: str | Path, name: str = "output directory") -> Path:
    """Check, without creating anything, that directory ``path`` could be created and written.

    A plain file on the way, or a nearest existing ancestor that is not a writable directory, is an
    InvalidParameterError; use it before long work, so that the work is not lost at the end.
    """
    p = Path(path)
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and (not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK)):
        why = "not a directory" if not probe.is_dir() else "not writable"
        raise InvalidParameterError(name, "a directory that can be created or written", str(path),
                                    detail=f"{probe} is {why}")
    return p


def check_output_file(path: str | Path, name: str = "output file") -> Path:
    """Check, without writing, that file ``path`` could be written (not a directory; usable parent)."""
    p = Path(path)
    if p.is_dir():
        raise InvalidParameterError(name, "a file path, not a directory", str(path))
    check_output_dir(p.parent, name)
    return p


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` if the block succeeds."""
    target = Path(path)
    ensure_dir(target.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + target.suffix, dir=target.parent)
    except OSError as exc:
        raise InvalidParameterError("output directory", "a writable directory", str(target.parent),
                                    detail=exc.strerror or type(exc).__name__) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates the file private (0600); give it the usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        try:
            os.replace(tmp_path, target)
        except OSError as exc:   # e.g. the target is a directory
            raise InvalidParameterError("output file", "a path that can be replaced by a file", str(target),
                                        detail=exc.strerror or type(exc).__name__) from None
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
    try:
        with xr.open_dataset(p, engine="h5netcdf") as ds:
            return ds.load()
    except (OSError, ValueError) as exc:
        raise InvalidParameterError("results file", "a readable netCDF file (written by kdmft)", str(path),
                                    detail=str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


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
