"""What one audit setting declares beside its type and default: its help text, its command-line option, how text
becomes its value, and the check of that value. The sections of :mod:`labelleak.pipeline.sections` are made of
these fields, and ``labelleak audit`` builds its options from them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args, get_origin


class NotGiven:
    """The type of :data:`NOT_GIVEN`: an argument left out, as opposed to ``None``, which is a value ("nothing",
    ``null`` in YAML: no per-candidate query cap, no title, ...)."""

    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "NOT_GIVEN"  # pickles as the one instance


NOT_GIVEN: Final = NotGiven()


@dataclass(frozen=True)
class Check:
    """A test of one value and what it expected, for the message ``key: expected ..., got value``."""

    ok: Callable[[Any], bool]
    expected: str

    def problem(self, key: str, value: Any) -> str | None:
        return None if self.ok(value) else f"{key}: expected {self.expected}, got {value!r}"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def optional(check: Check) -> Check:
    """The same check, with ``None`` (nothing) allowed."""
    return Check(lambda v: v is None or check.ok(v), f"{check.expected} or nothing")


POSITIVE_INT = Check(lambda v: _is_int(v) and v >= 1, "a positive integer")
NON_NEGATIVE_INT = Check(lambda v: _is_int(v) and v >= 0, "a non-negative integer")
INTEGER = Check(_is_int, "an integer")
POSITIVE_NUMBER = Check(lambda v: _is_number(v) and v > 0, "a positive number")
NON_NEGATIVE_NUMBER = Check(lambda v: _is_number(v) and v >= 0, "a number >= 0")
SECONDS = Check(lambda v: _is_number(v) and v > 0, "a positive number of seconds")
FINITE_NON_NEGATIVE = Check(lambda v: _is_number(v) and 0 <= v < math.inf, "a number >= 0")


def numbers(values: Any) -> bool:
    """A list of numbers (no booleans)."""
    return isinstance(values, list) and all(_is_number(v) for v in values)


def ints(values: Any, *, low: int) -> bool:
    """A list of integers of at least ``low``."""
    return isinstance(values, list) and all(_is_int(v) and v >= low for v in values)


def comma_list(cast: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``"3,32,32"`` or ``(3, 32, 32)`` as ``[3, 32, 32]``; a value that does not convert is kept for its check to
    report."""

    def parse(value: Any) -> Any:
        if value is None or isinstance(value, bool):
            return value
        items = value.split(",") if isinstance(value, str) else value if isinstance(value, (list, tuple)) else [value]
        try:
            return [cast(v.strip()) if isinstance(v, str) else cast(v) if cast is float else v for v in items]
        except (ValueError, TypeError):
            return value

    return parse


def names_list(value: Any) -> Any:
    """``"gap, transfer"`` as ``["gap", "transfer"]``; anything but text is kept as it is."""
    return [a.strip() for a in value.split(",") if a.strip()] if isinstance(value, str) else value


@dataclass(frozen=True)
class Setting:
    """What a field of an audit section declares.

    ``help``: one line for ``--help`` and the docs; ``cli``: whether ``labelleak audit`` has an option for it
    (else a YAML key only); ``flag``: for a boolean, the switch that sets the opposite of its default (``--resume``,
    ``--no-checkpoint``); ``parse``: text (an option, a YAML value) to the value; ``check``: the value's test (a
    ``Literal`` type is checked against its choices without one).
    """

    help: str
    cli: bool = True
    flag: str | None = None
    parse: Callable[[Any], Any] | None = None
    check: Check | None = None

    def option(self, name: str) -> str:
        """The option's name on the command line."""
        return self.flag or "--" + name.replace("_", "-")


def setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    factory: Callable[[], Any] | None = None,
    cli: bool = True,
    flag: str | None = None,
    parse: Callable[[Any], Any] | None = None,
    check: Check | None = None,
) -> Any:
    """A dataclass field with its :class:`Setting` in the metadata."""
    meta = {"setting": Setting(help, cli, flag, parse, check)}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def setting_of(f: dataclasses.Field) -> Setting:
    return f.metadata["setting"]


def choices(annotation: Any) -> tuple[Any, ...] | None:
    """The values of a ``Literal`` type (inside ``X | None`` too), or ``None`` for any other type."""
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    inner = [choices(a) for a in get_args(annotation) if a is not type(None)]
    return inner[0] if len(inner) == 1 else None


def choice_problem(key: str, value: Any, allowed: tuple[Any, ...], *, nullable: bool) -> str | None:
    if value in allowed or (nullable and value is None):
        return None
    names = [str(a) for a in allowed]
    expected = " or ".join(names) if len(names) == 2 else "one of " + ", ".join(names)
    return f"{key}: expected {expected}, got {value!r}"
