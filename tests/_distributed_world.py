"""A tiny digits world shared by the distributed tests: a memorising MLP target, candidates and shadow data."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from labelleak.attacks import Attack, ShadowData, ShadowRecipe, attack_names, create_attack
from labelleak.attacks.capabilities import ThreatModel
from labelleak.models import ModelSpec, TrainSettings, build_model, init_model, train_model

SHAPE = (1, 8, 8)
RECIPE = dict(arch="mlp", hidden=(32,), epochs=3, lr=3e-3, batch_size=32)
HSJA = dict(max_iter=3, max_eval=40, init_eval=10, init_size=10)

SEARCH_BUDGET = 120  # per-candidate budget of the attacks that search until their budget is spent
_REFS = dict(n_reference=2, shadow_recipe=ShadowRecipe(**RECIPE))

# tiny constructor parameters of every registered attack (a newly registered attack needs its row here)
TINY: dict[str, dict] = {
    "gap": {},
    **{n: dict(shadow_recipe=ShadowRecipe(**RECIPE)) for n in ("transfer", "transfer-entropy", "transfer-confidence")},
    **{n: HSJA for n in ("boundary-hsja", "boundary-hsja-linf", "boundary-qeba")},
    "boundary-guided": dict(**HSJA, shadow_recipe=ShadowRecipe(**RECIPE)),
    "boundary-whitebox": dict(steps=8, refine_steps=4),
    "augmentation": dict(kind="translate", d=1),
    "noise": dict(n_noise=10, sigma=0.2),
    "smoothing": dict(n=30, sigma=0.25),
    "oslo": dict(taus=(0.5, 1.0, 2.0), steps=5, **RECIPE),
    **{f"score-{m}": {} for m in ("loss", "confidence", "entropy", "mentropy")},
    "score-nn": dict(shadow_recipe=ShadowRecipe(**RECIPE)),
    "lira": _REFS,
    "lira-offline": _REFS,
    "rmia": _REFS,
    "dhattack": dict(max_queries=6, **_REFS),
    "dhattack-guided": _REFS,
    "yoqo": dict(max_steps=5, **_REFS),
    "yoqo-offline": dict(max_steps=5, **_REFS),
    "boundary-lira": dict(**HSJA, **_REFS),
    "boundary-lira-offline": dict(**HSJA, **_REFS),
    "boundary-lira-guided": dict(**HSJA, **_REFS),
    "boundary-lira-guided-offline": dict(**HSJA, **_REFS),
    "boundary-lira-guided-views": dict(**HSJA, **_REFS),
    "boundary-lira-guided-views-offline": dict(**HSJA, **_REFS),
    "boundary-lira-combined": dict(**HSJA, **_REFS),
    "boundary-lira-combined-offline": dict(**HSJA, **_REFS),
}


def tiny_attack(name: str) -> Attack:
    """The attack registered as ``name`` with its tiny parameters."""
    assert name in TINY, f"{name}: add its tiny parameters to tests/_distributed_world.py TINY"
    return create_attack(name, **TINY[name])


def budget_for(attack: Attack) -> int:
    """A per-candidate budget that lets ``attack`` finish: what it plans to ask, or SEARCH_BUDGET for a search."""
    plan = attack.query_plan(None)
    return SEARCH_BUDGET if plan.per_candidate is None else plan.per_candidate


def oracle_kind(attack: Attack) -> str:
    """``scores`` for an attack that needs the target's scores, else ``labels`` (a white-box attack gets the model)."""
    return "scores" if attack.capabilities().threat_model == ThreatModel.SCORES else "labels"


# (attack, constructor parameters, per-candidate budget, oracle kind): every attack that declares it can be sharded
PER_CANDIDATE = [
    (name, TINY[name], budget_for(tiny_attack(name)), oracle_kind(tiny_attack(name)))
    for name in attack_names()
    if tiny_attack(name).capabilities().shardable
]


def digits_world() -> dict:
    """30 member and 30 non-member candidates of an MLP trained 40 epochs on 30 digits, and 60 + 60 shadow digits."""
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, *SHAPE)
    spec = ModelSpec("mlp", SHAPE, 10, hidden=(64,))
    model = train_model(
        init_model(lambda: build_model(spec), 0),
        x[:30],
        y[:30],
        TrainSettings(epochs=40, lr=3e-3, batch_size=16),
        n_classes=10,
        progress=False,
    )
    shadow = ShadowData(x[100:160], y[100:160], x[160:220], y[160:220])
    return dict(model=model.eval(), x=x[:60], y=y[:60], shadow=shadow)
