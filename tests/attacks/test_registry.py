"""The attack registry: names, the audit settings each attack declares, and shadow recipes given as plain data."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest

from labelleak.attacks import (
    Attack,
    BoundaryAttack,
    GapAttack,
    ShadowData,
    ShadowRecipe,
    attack_names,
    attack_settings,
    audit_params,
    create_attack,
    registry,
)
from labelleak.attacks.smoothing import SmoothingRadius
from labelleak.errors import InvalidInputError, UnknownNameError
from labelleak.pipeline.config import AuditConfig


def _config(**changes):
    cfg = AuditConfig(seed=123, epochs=7, lr=0.01, batch_size=32, lr_schedule="cosine", width=0.5, **changes)
    return {**cfg.to_dict(), "adversary_arch": "cnn5"}


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made by a test vanish after it."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


@pytest.mark.parametrize("name", attack_names())
def test_every_attack_with_a_seed_gets_the_audit_seed_and_recipe(name):
    attack = create_attack(name, **audit_params(name, _config()))
    takes = inspect.signature(type(attack).__init__).parameters
    if "seed" in takes:
        assert attack.seed == 123
    if "shadow_recipe" in takes:
        assert attack.shadow_recipe == ShadowRecipe(
            arch="cnn5", width=0.5, epochs=7, lr=0.01, batch_size=32, lr_schedule="cosine", cache_dir=".labelleak-cache"
        )
    assert ("seed" in attack_settings(name)) == ("seed" in takes)


def test_declared_settings_reach_their_parameters():
    cfg = _config(lira_models=3, smoothing_n=50, smoothing_sigma=0.4, smoothing_alpha=0.01, max_iter=9)
    assert create_attack("lira", **audit_params("lira", cfg)).n_reference == 3
    smoothing = create_attack("smoothing", **audit_params("smoothing", cfg))
    assert (smoothing.n, smoothing.sigma, smoothing.alpha) == (50, 0.4, 0.01)
    boundary = audit_params("boundary-qeba", cfg)
    assert isinstance(boundary.pop("shadow_recipe"), ShadowRecipe)  # for its options starts/prior (issue 17)
    assert boundary == {
        "max_iter": 9,
        "max_eval": 10_000,
        "init_eval": 100,
        "init_size": 100,
        "seed": 123,
    }
    assert audit_params("gap", cfg) == {} and audit_params("score-loss", cfg) == {}
    with pytest.raises(UnknownNameError, match="unknown attack 'nope'"):
        audit_params("nope", cfg)


class _SeededProbe(Attack):
    """An attack added by a user: one registration must be enough for the audit to seed it."""

    def __init__(self, *, sigma: float = 1.0, seed: int = 0) -> None:
        self.sigma, self.seed = sigma, seed

    def _run(self, oracle, x, y, *, shadow, progress):  # pragma: no cover - never run here
        raise NotImplementedError


def test_one_registration_gives_a_new_attack_its_settings(scratch_registry):
    registry.register_attack("probe", _SeededProbe, settings=("smoothing_sigma",))
    assert attack_settings("probe") == ("smoothing_sigma", "seed")
    probe = create_attack("probe", **audit_params("probe", _config(smoothing_sigma=0.7)))
    assert (probe.sigma, probe.seed, probe.name) == (0.7, 123, "probe")
    with pytest.raises(InvalidInputError, match="setting smoothing_sigma fills 'sigma', which it does not take"):
        registry.register_attack("probe-2", GapAttack, settings=("smoothing_sigma",))


@pytest.mark.parametrize(
    "settings,fixed,match",
    [
        (("smoothing_sigmaa",), {}, r"unknown audit setting\(s\) smoothing_sigmaa; choose from seed, shadow_recipe"),
        ((), {"seed": 1}, "'seed' is both fixed and an audit setting"),
        (("smoothing_n",), {"n": 5}, "'n' is both fixed and an audit setting"),
        ((), {"colour": "red"}, r"fixed argument\(s\) colour are not parameters"),
    ],
)
def test_bad_registrations_fail_at_registration(scratch_registry, settings, fixed, match):
    with pytest.raises(InvalidInputError, match=match):
        registry.register_attack("bad", SmoothingRadius, settings=settings, **fixed)
    assert "bad" not in attack_names()
    with pytest.raises(InvalidInputError, match="'gap' is already registered"):
        registry.register_attack("gap", GapAttack)


def test_shadow_recipe_as_object_mapping_or_fields():
    given = ShadowRecipe(epochs=5, hidden=(8,))
    assert create_attack("transfer", shadow_recipe=given).shadow_recipe is given
    assert create_attack("noise", shadow_recipe={"epochs": 5, "hidden": [8]}).shadow_recipe == given
    assert create_attack("oslo", epochs=5, hidden=[8]).shadow_recipe == given
    assert create_attack("lira", shadow_recipe={"epochs": 2}, epochs=5, hidden=(8,)).shadow_recipe == given
    with pytest.raises(InvalidInputError, match=r"shadow_recipe: unknown key\(s\) \['epoch'\]; valid keys are"):
        create_attack("score-nn", shadow_recipe={"epoch": 5})
    with pytest.raises(InvalidInputError, match="shadow_recipe: expected a ShadowRecipe or a mapping, got int"):
        create_attack("augmentation", shadow_recipe=3)
    with pytest.raises(InvalidInputError, match="bad parameters"):
        create_attack("gap", epochs=5)  # the gap attack trains nothing


def test_boundary_attack_names_its_method_and_norm(linear_oracle):
    assert BoundaryAttack(method="qeba").name == "boundary-qeba"
    assert BoundaryAttack(method="hsja", norm="linf").name == "boundary-hsja-linf"
    assert BoundaryAttack().name == "boundary-hsja"
    res = BoundaryAttack(max_iter=1, init_eval=5, init_size=3)(linear_oracle, np.zeros((2, 6)), np.zeros(2, int))
    assert res.attack == "boundary-hsja"


def test_results_hold_the_recipe_as_plain_data(linear_model, linear_oracle):
    x = np.random.default_rng(0).uniform(-1, 1, (12, 6)).astype(np.float32)
    y = linear_model(x)
    shadow = ShadowData(x[:6], y[:6], x[6:], y[6:])
    res = create_attack("transfer", epochs=1, hidden=(4,), batch_size=4)(linear_oracle, x, y, shadow=shadow)
    assert res.params["shadow_recipe"] == {
        "arch": "mlp",
        "width": 1.0,
        "hidden": (4,),
        "epochs": 1,
        "lr": 1e-3,
        "batch_size": 4,
        "lr_schedule": "constant",
        "cache_dir": None,
        "defense": "none",  # the adaptive adversary's knowledge of the target's defense: none given
        "init": None,  # no public pre-trained model to start from
    }
    assert json.loads(json.dumps(res.params))["shadow_recipe"]["hidden"] == [4]
