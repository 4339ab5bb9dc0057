"""Membership-inference attacks; every one returns a raw score per candidate (higher = more likely member)."""

from labelleak.attacks.base import Attack, AttackResult, RawScores, ShadowData, Status
from labelleak.attacks.gap import GapAttack
from labelleak.attacks.registry import attack_names, create_attack, register_attack
from labelleak.attacks.transfer import TransferAttack

register_attack("gap", GapAttack)
register_attack("transfer", TransferAttack, score="loss")
register_attack("transfer-entropy", TransferAttack, score="entropy")
register_attack("transfer-confidence", TransferAttack, score="confidence")

__all__ = ["Attack", "AttackResult", "GapAttack", "RawScores", "ShadowData", "Status", "TransferAttack",
           "attack_names", "create_attack", "register_attack"]
