"""Membership-inference attacks; every one returns a raw score per candidate (higher = more likely member)."""

from labelleak.attacks._shadow import ShadowRecipe
from labelleak.attacks.base import Attack, AttackResult, RawScores, ShadowData, Status
from labelleak.attacks.boundary import GUIDED, BoundaryAttack
from labelleak.attacks.boundary_lira import BoundaryLiRA
from labelleak.attacks.combined import CombinedLiRA
from labelleak.attacks.dhattack import DHAttack
from labelleak.attacks.gap import GapAttack
from labelleak.attacks.lira import LiRA
from labelleak.attacks.oslo import OSLO
from labelleak.attacks.registry import attack_names, attack_settings, audit_params, create_attack, register_attack
from labelleak.attacks.rmia import RMIA
from labelleak.attacks.robustness import AugmentationAttack, NoiseAttack
from labelleak.attacks.score_based import MetricAttack, ShadowNNAttack
from labelleak.attacks.smoothing import SmoothingRadius
from labelleak.attacks.transfer import TransferAttack
from labelleak.attacks.whitebox import WhiteBoxBoundary
from labelleak.attacks.yoqo import YOQO

# the audit's seed and shadow recipe reach every attack that takes them; other settings are declared here
_SEARCH = ("max_iter", "max_eval", "init_eval", "init_size")
_RELABEL = ("relabel", "relabel_epochs")  # transfer: online relabelling (attacks/_relabel.py)
register_attack("gap", GapAttack)
register_attack("transfer", TransferAttack, score="loss", settings=_RELABEL)
register_attack("transfer-entropy", TransferAttack, score="entropy", settings=_RELABEL)
register_attack("transfer-confidence", TransferAttack, score="confidence", settings=_RELABEL)
register_attack("boundary-hsja", BoundaryAttack, settings=_SEARCH, method="hsja", norm="l2")
register_attack("boundary-hsja-linf", BoundaryAttack, settings=_SEARCH, method="hsja", norm="linf")
register_attack("boundary-qeba", BoundaryAttack, settings=_SEARCH, method="qeba", norm="l2")
register_attack("boundary-guided", BoundaryAttack, settings=_SEARCH, **GUIDED)
register_attack("boundary-whitebox", WhiteBoxBoundary)
register_attack("augmentation", AugmentationAttack)
register_attack("noise", NoiseAttack)
register_attack("oslo", OSLO)
register_attack("smoothing", SmoothingRadius, settings=("smoothing_sigma", "smoothing_n", "smoothing_alpha"))
for _metric in ("loss", "confidence", "entropy", "mentropy"):
    register_attack(f"score-{_metric}", MetricAttack, metric=_metric)
register_attack("score-nn", ShadowNNAttack)
register_attack("lira", LiRA, settings=("lira_models",), online=True)
register_attack("lira-offline", LiRA, settings=("lira_models",), online=False)
register_attack("dhattack", DHAttack, settings=("lira_models",))
register_attack("dhattack-guided", DHAttack, settings=("lira_models",), search="guided")
register_attack("yoqo", YOQO, settings=("lira_models",), online=True)
register_attack("yoqo-offline", YOQO, settings=("lira_models",), online=False)
register_attack("rmia", RMIA, settings=("lira_models",), online=False)
register_attack("boundary-lira", BoundaryLiRA, settings=("lira_models", *_SEARCH), online=True)
register_attack("boundary-lira-offline", BoundaryLiRA, settings=("lira_models", *_SEARCH), online=False)
register_attack("boundary-lira-guided", BoundaryLiRA, settings=("lira_models", *_SEARCH), online=True, search="guided")
register_attack(
    "boundary-lira-guided-offline", BoundaryLiRA, settings=("lira_models", *_SEARCH), online=False, search="guided"
)
for _online in (True, False):  # boundary-guided's search on the candidate and its augmented views (attacks/_views.py)
    register_attack(
        "boundary-lira-guided-views" + ("" if _online else "-offline"),
        BoundaryLiRA,
        settings=("lira_models", *_SEARCH),
        online=_online,
        search="guided",
        views="auto",
    )

for _online in (True, False):  # distance, shifts' agreement and fixed-path distance in one ratio (attacks/combined.py)
    register_attack(
        "boundary-lira-combined" + ("" if _online else "-offline"),
        CombinedLiRA,
        settings=("lira_models", *_SEARCH),
        online=_online,
    )

__all__ = [
    "OSLO",
    "Attack",
    "AttackResult",
    "AugmentationAttack",
    "BoundaryAttack",
    "CombinedLiRA",
    "DHAttack",
    "BoundaryLiRA",
    "LiRA",
    "MetricAttack",
    "NoiseAttack",
    "ShadowNNAttack",
    "SmoothingRadius",
    "GapAttack",
    "RMIA",
    "RawScores",
    "ShadowData",
    "ShadowRecipe",
    "Status",
    "TransferAttack",
    "WhiteBoxBoundary",
    "YOQO",
    "attack_names",
    "attack_settings",
    "audit_params",
    "create_attack",
    "register_attack",
]
