"""Attacks by name, for the CLI and config files: ``create_attack("transfer", epochs=10)``.

Each registration also says which audit settings the attack takes (``settings``), so that adding an attack is
one :func:`register_attack` call: :func:`audit_params` builds its constructor arguments from an audit's
configuration. The audit's ``seed``, ``shadow_recipe`` and ``reference_size`` (the target's training-set size, for
reference models) go to every attack whose constructor takes them, without being listed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from labelleak.attacks._shadow import ShadowRecipe
from labelleak.attacks.base import Attack
from labelleak.errors import InvalidInputError, UnknownNameError


def _adversary_recipe(config: Mapping[str, Any]) -> ShadowRecipe:
    """The audit's own training recipe, on the architecture the adversary uses (``adversary_arch``), with the
    target's defense when the adversary knows it (``adversary_defense``, the adaptive evaluation)."""
    return ShadowRecipe(
        arch=config["adversary_arch"],
        width=config["width"],
        epochs=config["epochs"],
        lr=config["lr"],
        batch_size=config["batch_size"],
        lr_schedule=config["lr_schedule"],
        cache_dir=config["cache_dir"],
        defense=config.get("adversary_defense", "none"),
        init=config.get("adversary_init"),
    )


def _key(key: str) -> Callable[[Mapping[str, Any]], Any]:
    return lambda config: config[key]


@dataclass(frozen=True)
class AuditSetting:
    """One audit setting an attack can take: the constructor parameter it fills and how to read its value."""

    param: str
    read: Callable[[Mapping[str, Any]], Any]


# keys are the audit configuration's names (``AuditConfig`` fields); ``shadow_recipe`` is built from several
DEFAULT_AUDIT_ATTACKS = ("gap", "transfer", "boundary-hsja")  # what `labelleak audit` runs when --attacks is not given
RATIO_REFERENCE = "lira"  # online LiRA: the score-based attack the label-only ones are measured against (low FPR)

AUDIT_SETTINGS: dict[str, AuditSetting] = {
    "seed": AuditSetting("seed", _key("seed")),
    "shadow_recipe": AuditSetting("shadow_recipe", _adversary_recipe),
    "max_iter": AuditSetting("max_iter", _key("max_iter")),
    "max_eval": AuditSetting("max_eval", _key("max_eval")),
    "init_eval": AuditSetting("init_eval", _key("init_eval")),
    "init_size": AuditSetting("init_size", _key("init_size")),
    "lira_models": AuditSetting("n_reference", _key("lira_models")),
    "smoothing_sigma": AuditSetting("sigma", _key("smoothing_sigma")),
    "smoothing_n": AuditSetting("n", _key("smoothing_n")),
    "smoothing_alpha": AuditSetting("alpha", _key("smoothing_alpha")),
    "relabel": AuditSetting("relabel", _key("relabel")),
    "relabel_epochs": AuditSetting("relabel_epochs", _key("relabel_epochs")),
    # not a configuration key: the audit's setup knows it (rows the target trained on); absent, the attack's default
    "reference_size": AuditSetting("reference_size", lambda config: config.get("reference_size")),
}
# given to every attack whose constructor has a parameter of that name
_AUTOMATIC = ("seed", "shadow_recipe", "reference_size")


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., Attack]
    fixed: dict[str, Any]
    settings: tuple[str, ...]
    params: frozenset[str]  # the factory's keyword parameters


_REGISTRY: dict[str, _Entry] = {}


def register_attack(name: str, factory: Callable[..., Attack], *, settings: tuple[str, ...] = (), **fixed: Any) -> None:
    """Register ``factory`` under ``name``.

    Args:
        settings: names of the audit settings (keys of :data:`AUDIT_SETTINGS`) the attack takes, besides the
            ``seed`` and ``shadow_recipe`` it gets automatically when its constructor has them.
        fixed: keyword arguments fixed for this name (e.g. ``norm="linf"``).
    """
    if name in _REGISTRY:
        raise InvalidInputError(f"attack {name!r} is already registered")
    params = frozenset(inspect.signature(factory).parameters)
    unknown = [s for s in settings if s not in AUDIT_SETTINGS]
    if unknown:
        raise InvalidInputError(
            f"attack {name!r}: unknown audit setting(s) {', '.join(unknown)}; choose from {', '.join(AUDIT_SETTINGS)}"
        )
    declared = tuple(dict.fromkeys([*settings, *(s for s in _AUTOMATIC if s in params)]))
    for setting in declared:
        param = AUDIT_SETTINGS[setting].param
        if param not in params:
            raise InvalidInputError(f"attack {name!r}: setting {setting} fills {param!r}, which it does not take")
        if param in fixed:
            raise InvalidInputError(f"attack {name!r}: {param!r} is both fixed and an audit setting")
    not_taken = sorted(set(fixed) - params)
    if not_taken:
        raise InvalidInputError(f"attack {name!r}: fixed argument(s) {', '.join(not_taken)} are not parameters")
    _REGISTRY[name] = _Entry(factory, dict(fixed), declared, params)


def attack_names() -> list[str]:
    return sorted(_REGISTRY)


def _entry(name: str) -> _Entry:
    if name not in _REGISTRY:
        raise UnknownNameError(f"unknown attack {name!r}; choose from {', '.join(attack_names())}")
    return _REGISTRY[name]


def attack_settings(name: str) -> tuple[str, ...]:
    """The audit settings the attack registered as ``name`` takes (automatic ones included)."""
    return _entry(name).settings


def audit_params(name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor arguments of the attack ``name`` read from an audit's configuration.

    ``config`` maps the audit configuration's keys (``AuditConfig.to_dict()``) to their values, plus
    ``adversary_arch``: the architecture of the adversary's own models, and optionally ``reference_size``: the
    rows each reference model trains on (the target's training-set size), and ``adversary_defense``: the defense
    the adversary's models are trained and served with (default ``none``).
    """
    return {AUDIT_SETTINGS[s].param: AUDIT_SETTINGS[s].read(config) for s in _entry(name).settings}


def _fold_recipe(params: dict[str, Any], own: frozenset[str]) -> dict[str, Any]:
    """Gather a shadow recipe given as a mapping or as its fields (``epochs=3``) into one :class:`ShadowRecipe`;
    a field name that is also one of the attack's own parameters (``own``) stays the attack's."""
    fields = ShadowRecipe.__dataclass_fields__
    flat = {k: v for k, v in params.items() if k in fields and k not in own}
    params = {k: v for k, v in params.items() if k not in flat}
    recipe = params.get("shadow_recipe", ShadowRecipe())
    if isinstance(recipe, Mapping):
        recipe = ShadowRecipe.from_mapping(recipe)
    if not isinstance(recipe, ShadowRecipe):
        raise InvalidInputError(f"shadow_recipe: expected a ShadowRecipe or a mapping, got {type(recipe).__name__}")
    if flat:
        recipe = ShadowRecipe.from_mapping({**asdict(recipe), **flat})
    return {**params, "shadow_recipe": recipe}


def create_attack(name: str, **params: Any) -> Attack:
    """Build the attack registered as ``name`` with ``params`` added to its fixed arguments.

    For an attack that trains models, the recipe may be given as ``shadow_recipe`` (a :class:`ShadowRecipe` or a
    mapping of its fields) or field by field (``epochs=3, hidden=(8,)``); fields override the given recipe.
    """
    entry = _entry(name)
    if "shadow_recipe" in entry.params:
        params = _fold_recipe(params, entry.params)
    try:
        attack = entry.factory(**{**entry.fixed, **params})
    except TypeError as exc:
        raise InvalidInputError(f"attack {name!r}: bad parameters ({exc})") from None
    attack.name = name  # the registered name labels its results
    return attack
