"""Defenses against membership inference: what they do, how they are named, swept and chosen.

One layer of the import contract, just above the core modules: everything here is tensor functions and plain data,
so the training loop (``models/``) calls the training-time mechanics, a defended target's score oracle
(``oracle/``) applies the output-time ones, the pipeline audits a sweep and the report reads the recommendation,
all importing downwards.

* :mod:`~labelleak.defenses.registry`: every defense by name (what it sets, its bare value, its sweep grid);
* :mod:`~labelleak.defenses.training`: training-time mechanics (augmentation, L1, RelaxLoss, AdvReg);
* :mod:`~labelleak.defenses.output`: output-time transforms (MemGuard-style noise, top-1, rounding);
* :mod:`~labelleak.defenses.plan`: a specification (``l2=5e-4+augment``) parsed into what it changes;
* :mod:`~labelleak.defenses.sweep`: a strength sweep as a list of specifications;
* :mod:`~labelleak.defenses.matrix`: matrix rows from audit results, the Pareto front;
* :mod:`~labelleak.defenses.recommendation`: the cheapest defense that brings the label-only attacks below a target.

A new defense is its mechanics (a function or module here) and one entry in ``registry.DEFENSES``; a training-time
one also needs the :class:`~labelleak.models.TrainSettings` field its entry names, read by the training loop.
"""

from labelleak.defenses.matrix import matrix_row
from labelleak.defenses.plan import DefensePlan, OutputDefense, check_defense_for_data, parse_defense
from labelleak.defenses.recommendation import Recommendation, recommend
from labelleak.defenses.registry import DEFENSE_NAMES, DEFENSES, Defense
from labelleak.defenses.sweep import sweep_defenses

__all__ = [
    "DEFENSES",
    "DEFENSE_NAMES",
    "Defense",
    "DefensePlan",
    "OutputDefense",
    "Recommendation",
    "check_defense_for_data",
    "matrix_row",
    "parse_defense",
    "recommend",
    "sweep_defenses",
]
