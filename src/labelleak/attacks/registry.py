"""Attacks by name, for the CLI and config files: ``create_attack("transfer", epochs=10)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labelleak.attacks.base import Attack
from labelleak.errors import InvalidInputError, UnknownNameError

_REGISTRY: dict[str, tuple[Callable[..., Attack], dict[str, Any]]] = {}


def register_attack(name: str, factory: Callable[..., Attack], **defaults: Any) -> None:
    """Register ``factory`` under ``name``; ``defaults`` are keyword arguments fixed for that name."""
    if name in _REGISTRY:
        raise InvalidInputError(f"attack {name!r} is already registered")
    _REGISTRY[name] = (factory, defaults)


def attack_names() -> list[str]:
    return sorted(_REGISTRY)


def create_attack(name: str, **params: Any) -> Attack:
    """Build the attack registered as ``name`` with ``params`` added to its fixed defaults."""
    if name not in _REGISTRY:
        raise UnknownNameError(f"unknown attack {name!r}; choose from {', '.join(attack_names())}")
    factory, defaults = _REGISTRY[name]
    try:
        attack = factory(**{**defaults, **params})
    except TypeError as exc:
        raise InvalidInputError(f"attack {name!r}: bad parameters ({exc})") from None
    attack.name = name  # the registered name labels its results
    return attack
