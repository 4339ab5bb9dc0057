"""Exception types: each inherits from the built-in that a caller would catch anyway."""

from __future__ import annotations


class LabelleakError(Exception):
    """Base class of every error raised on purpose by labelleak."""


class InvalidInputError(LabelleakError, ValueError):
    """An argument has the wrong shape, dtype, range or value."""


class DataFileError(LabelleakError, ValueError):
    """A data or model file is missing, unreadable or malformed."""


class UnknownNameError(LabelleakError, KeyError):
    """A registry lookup (attack, dataset, architecture) failed."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0]) if self.args else ""


class BudgetExhaustedError(LabelleakError, RuntimeError):
    """A query would exceed the oracle's total or per-sample budget."""


class MissingExtraError(LabelleakError, ImportError):
    """A feature needs an optional dependency group (an "extra") that is not installed."""


class RemoteOracleError(LabelleakError, RuntimeError):
    """The remote target answered something unusable (malformed metadata or predictions)."""


class RemoteOutageError(RemoteOracleError):
    """The remote target kept failing after every retry; an audit can be resumed once it is back."""
