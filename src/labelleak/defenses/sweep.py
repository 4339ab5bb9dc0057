"""Strength sweeps (``labelleak defend --sweep``): each defense family at a grid of strengths, as specifications.

A sweep is a list of defense specifications, ``none`` first (the undefended and no-DP point), then ``l2=1e-05``,
``l2=0.0001``, ...: each family's strengths come from its registry entry (:mod:`labelleak.defenses.registry`), weakest
first. Auditing them is the pipeline's job (:func:`labelleak.pipeline.sweep.run_audits`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from labelleak.defenses.plan import parse_defense
from labelleak.defenses.registry import DEFENSES, Strength
from labelleak.errors import InvalidInputError

# strengths per family, weakest first; ``None``: the defense takes no strength
DEFAULT_GRIDS: dict[str, tuple[Strength, ...]] = {d.name: d.grid for d in DEFENSES if d.grid}
FAMILIES = tuple(DEFAULT_GRIDS)
_GRID = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=\s*\[([^\[\]]*)\]\s*$")


def _family(name: str) -> str:
    family = name.strip()
    if family not in DEFAULT_GRIDS:
        raise InvalidInputError(f"unknown defense family {family!r} for a sweep; choose from {', '.join(FAMILIES)}")
    return family


def point_spec(family: str, strength: Strength) -> str:
    """The defense specification of one point, e.g. ``l2=0.0001`` or ``top1``."""
    return family if strength is None else f"{family}={strength:g}"


def parse_grid(text: str) -> tuple[str, tuple[float, ...]]:
    """``FAMILY=[v1,v2,...]`` (e.g. ``l2=[1e-4,5e-4,1e-3]``) into the family and its strengths, each checked."""
    match = _GRID.match(text)
    if match is None:
        raise InvalidInputError(f"--grid: expected FAMILY=[v1,v2,...] such as l2=[1e-4,5e-4], got {text!r}")
    family = _family(match.group(1))
    if DEFAULT_GRIDS[family] == (None,):
        raise InvalidInputError(f"--grid {family}: this defense takes no strength")
    raw = [v.strip() for v in match.group(2).split(",") if v.strip()]
    if not raw:
        raise InvalidInputError(f"--grid {family}: expected at least one strength, got {text!r}")
    values = []
    for v in raw:
        try:
            values.append(float(v))
        except ValueError:
            raise InvalidInputError(f"--grid {family}: expected numbers, got {v!r}") from None
        parse_defense(point_spec(family, values[-1]))  # the defense's own checks (e.g. integer patience)
    return family, tuple(values)


def sweep_defenses(families: Iterable[str] | None = None, grids: Iterable[str] = ()) -> list[str]:
    """``none`` and one specification per (family, strength): ``families`` (default all) at their default
    strengths, each ``grids`` entry (``FAMILY=[...]``) replacing its family's strengths (and adding the family)."""
    chosen = [_family(f) for f in families] if families is not None else list(FAMILIES)
    if not chosen:
        raise InvalidInputError(f"--defenses: expected family names for a sweep; choose from {', '.join(FAMILIES)}")
    strengths: dict[str, tuple[Strength, ...]] = {f: DEFAULT_GRIDS[f] for f in chosen}
    for text in grids:
        family, values = parse_grid(text)
        strengths[family] = values
    specs = ["none"] + [point_spec(f, v) for f, values in strengths.items() for v in values]
    return list(dict.fromkeys(specs))
