"""The audit configuration: its sections (:mod:`labelleak.pipeline.sections`) as one object, filled from defaults,
a YAML file and command-line options.

Keys are flat (``queries: 500``) as they always were; a YAML file may also group them by section
(``search: {queries: 500}``). ``validate()`` reports every problem at once, so a user fixes a config file in one go.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from labelleak.errors import DataFileError, InvalidInputError
from labelleak.pipeline.fields import NOT_GIVEN, choice_problem, choices, setting_of
from labelleak.pipeline.sections import (
    SECTIONS,
    DataSettings,
    ExecutionSettings,
    ModelFileSettings,
    RemoteSettings,
    ReportSettings,
    SearchSettings,
    TrainingSettings,
    VerdictSettings,
)

__all__ = [
    "NOT_GIVEN",
    "SECTIONS",
    "AuditConfig",
    "from_mapping",
    "load_config",
    "make_config",
]


@dataclass
class AuditConfig(  # bases in reverse: a dataclass lists the last base's fields first, so keys follow SECTIONS
    ExecutionSettings,
    ReportSettings,
    VerdictSettings,
    SearchSettings,
    RemoteSettings,
    ModelFileSettings,
    TrainingSettings,
    DataSettings,
):
    """Every knob of ``labelleak audit``, section by section; YAML files use the same keys (with ``-`` or ``_``)."""

    def problems(self) -> list[str]:
        """Every invalid value, as messages naming the key."""
        hints = _type_hints()
        found = []
        for f in dataclasses.fields(self):
            value, check, allowed = getattr(self, f.name), setting_of(f).check, choices(hints[f.name])
            if check is not None:
                found.append(check.problem(f.name, value))
            elif allowed is not None:
                found.append(choice_problem(f.name, value, allowed, nullable=False))
            if hints[f.name] in (str, str | None) and value is not None and not isinstance(value, str):
                found.append(f"{f.name}: expected text, got {type(value).__name__} {value!r}")
        for section in SECTIONS.values():  # each its own (the MRO would find only the first)
            found.extend(section.section_problems(self))
        return [p for p in found if p is not None] + self._across_sections()

    def _across_sections(self) -> list[str]:
        """Problems of keys of different sections taken together."""
        found = []
        if self.model is not None and self.target is not None:
            found.append("model, target: give one target, a model file (--model) or a URL (--target)")
        if self.model is not None:
            missing = [k for k in ("members", "nonmembers", "shadow") if not getattr(self, k)]
            if missing:
                found.append(f"{', '.join(missing)}: an audit of a model file needs --members, --nonmembers, --shadow")
        if self.canaries and (self.model is not None or self.target is not None or self.members is not None):
            found.append("canaries: only for a target labelleak trains (its training set is where the coins go)")
        if self.fail_above_epsilon is not None and isinstance(self.repeats, int) and self.repeats > 1:
            found.append("fail_above_epsilon: one audit's gate, not with repeats > 1 (each seed has its verdict)")
        return found

    def validate(self) -> AuditConfig:
        found = self.problems()
        if found:
            raise InvalidInputError("invalid audit config: " + "; ".join(found))
        return self

    def to_dict(self) -> dict[str, Any]:
        """Every key; ``repeats`` only above 1, so one audit's files and checkpoint read as before it existed."""
        values = dataclasses.asdict(self)
        if values["repeats"] == 1:
            del values["repeats"]
        return values

    def replace(self, **changes: Any) -> AuditConfig:
        """A copy with ``changes`` applied (keys checked)."""
        return from_mapping({**self.to_dict(), **changes}, source="options")


@functools.cache
def _type_hints() -> dict[str, Any]:
    return get_type_hints(AuditConfig)


def _keys(section: type) -> set[str]:
    return {f.name for f in dataclasses.fields(section)}


def _flatten(values: dict[str, Any], source: str) -> dict[str, Any]:
    """Keys with ``_`` for ``-``, and a section given as a mapping (``search: {queries: 500}``) as its keys; the flat
    key ``data`` (the dataset's path) is text, the section ``data`` a mapping."""
    flat: dict[str, Any] = {}
    unknown = []
    for raw, value in values.items():
        key = str(raw).replace("-", "_")
        if key in SECTIONS and isinstance(value, dict):
            inner = {str(k).replace("-", "_"): v for k, v in value.items()}
            unknown += [f"{key}.{k}" for k in inner if k not in _keys(SECTIONS[key])]
            flat.update(inner)
        else:
            flat[key] = value
    known = _keys(AuditConfig)
    unknown += sorted(set(flat) - known - {u.split(".", 1)[1] for u in unknown})
    if unknown:
        raise InvalidInputError(
            f"{source}: unknown key(s) {unknown}; valid keys are {sorted(known)} (or grouped by section: "
            f"{', '.join(SECTIONS)})"
        )
    return flat


def from_mapping(values: dict[str, Any], *, source: str) -> AuditConfig:
    """The configuration with ``values`` over the defaults: keys checked (``source`` names where they came from),
    text parsed where a key declares how (``input_shape: 3,32,32``); not yet validated."""
    clean = _flatten(values, source)
    for f in dataclasses.fields(AuditConfig):
        parse = setting_of(f).parse
        if parse is not None and f.name in clean:
            clean[f.name] = parse(clean[f.name])
    return AuditConfig(**clean)


def load_config(path: str | Path, **overrides: Any) -> AuditConfig:
    """Read a YAML config file; ``overrides`` (e.g. command-line options) win over the file."""
    from labelleak._validation import read_utf8  # imports torch: not needed to build the command line

    p = Path(path)
    if not p.is_file():
        raise DataFileError(f"config file not found: {p}")
    try:
        values = yaml.safe_load(read_utf8(p, "config file")) or {}
    except yaml.YAMLError as exc:
        raise DataFileError(f"config file {p} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise DataFileError(f"config file {p}: expected a mapping of keys to values, got {type(values).__name__}")
    return from_mapping({**_flatten(values, str(p)), **overrides}, source=str(p))


def make_config(config_file: str | Path | None = None, **overrides: Any) -> AuditConfig:
    """The defaults, updated by ``config_file`` (if any), then by ``overrides``; validated.

    An override of ``None`` or :data:`~labelleak.pipeline.fields.NOT_GIVEN` is left out (the option was not given);
    ``None`` as a value ("nothing", e.g. no per-candidate query cap) comes from a config file or
    :meth:`AuditConfig.replace`.
    """
    overrides = {k: v for k, v in overrides.items() if v is not None and v is not NOT_GIVEN}
    cfg = load_config(config_file, **overrides) if config_file else from_mapping(overrides, source="options")
    return cfg.validate()
