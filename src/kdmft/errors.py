"""Exceptions and warnings raised by kdmft.

Every error a user can trigger with bad input is an :class:`InvalidParameterError`
(a :class:`ValueError`) whose message names the parameter, the accepted range and the
value received. Numerical failures are :class:`ConvergenceError` (a
:class:`RuntimeError`): kdmft never returns a number it could not verify.
"""

from __future__ import annotations


class KdmftError(Exception):
    """Base class of all kdmft errors."""


class InvalidParameterError(KdmftError, ValueError):
    """A parameter, file or option is outside its accepted range."""

    def __init__(self, name: str, accepted: str, received: object = None, *, detail: str = ""):
        self.name = name
        self.accepted = accepted
        self.received = received
        msg = f"{name}: must be {accepted}"
        if received is not None:
            msg += f" (got {received!r})"
        if detail:
            msg += f"; {detail}"
        super().__init__(msg)


class ConvergenceError(KdmftError, RuntimeError):
    """A solver could not reach or verify the requested accuracy."""


class DivergenceWarning(UserWarning):
    """A requested value is infinite (for example the t -> inf thermal variance at g = 0)."""


class FiniteSizeWarning(UserWarning):
    """A result is used outside the regime where the typical-case theory is accurate."""


class HeavyTailWarning(UserWarning):
    """Simulated errors are heavy tailed; the naive standard error may understate the uncertainty."""
