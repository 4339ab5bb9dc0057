"""Write docs/attacks.md, the attack catalogue, from the attack registry plus the notes on each family below.

Names, classes, parameter defaults and what each attack declares (its capabilities: threat model, shadow data,
reference models, sharding, data-free threshold; its query plan under the audit's default budget) are read from
``labelleak.attacks`` (so they cannot drift from the code); the idea, the query cost in words and the reference of
each family are written here.
A registered attack whose class has no entry below stops the script with a message naming it.

    PYTHONPATH=src .venv/bin/python scripts/attack_catalogue.py          # rewrite docs/attacks.md
    PYTHONPATH=src .venv/bin/python scripts/attack_catalogue.py --check  # exit 1 if docs/attacks.md is stale
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labelleak.attacks import Attack, attack_names, create_attack
from labelleak.pipeline.config import AuditConfig

PAGE = Path(__file__).resolve().parent.parent / "docs" / "attacks.md"


@dataclass(frozen=True)
class Family:
    """What the registry cannot say about one attack class."""

    cls: str  # class name in labelleak.attacks
    title: str
    idea: str
    queries: str  # queries per candidate
    reference: str
    notes: str = ""


FAMILIES = [
    Family(
        "GapAttack",
        "Gap attack",
        "Member if and only if the target labels the candidate correctly: the generalisation gap made into an "
        "attack. Its balanced accuracy is `(1 + train_acc - test_acc) / 2`.",
        "1",
        "Yeom et al., *Privacy Risk in Machine Learning*, CSF 2018; the label-only baseline of Li & Zhang, CCS 2021.",
    ),
    Family(
        "TransferAttack",
        "Transfer attack",
        "The adversary relabels its shadow set with the target's answers, trains a shadow model on those labels "
        "(so it imitates the target) and scores a candidate by the shadow model's fit: minus its loss "
        "(`transfer`), minus its entropy (`transfer-entropy`) or its confidence (`transfer-confidence`). "
        "Candidates the target labels wrongly get the lowest score. With `relabel=online` (the official code's "
        "shadow training) the target labels a RandAugment view of each shadow image every batch of every epoch, "
        "and the checkpoint that agrees best with the target on the shadow-test images is kept.",
        "1 (+ one setup query per shadow sample; online: one per shadow sample per epoch, plus the shadow-test set)",
        "Li & Zhang, *Membership Leakage in Label-Only Exposures*, CCS 2021, Sec. 4.",
        "The audit passes the target's training recipe (`--arch`/`shadow_arch`, `--width`, `--epochs`, `lr`, "
        "`batch_size`, `lr_schedule`), `--seed`, `relabel` and `relabel_epochs`. The shadow model's scores on its "
        "own members and non-members (`extras['calibration']`) give a threshold without touching the candidates.",
    ),
    Family(
        "BoundaryAttack",
        "Boundary distance: HopSkipJump and QEBA",
        "A decision-based attack searches, for each correctly classified candidate, the closest input with another "
        "label; the score is the size of that perturbation (members sit farther from the boundary). "
        "`boundary-hsja` runs HopSkipJump in L2, `boundary-hsja-linf` in Linf, and `boundary-qeba` is QEBA-S: "
        "HopSkipJump with directions drawn at resolution H/`ratio` x W/`ratio` and upsampled. `boundary-guided` "
        "uses the adversary's data and shadow model: starts from its own samples of other classes and beyond the "
        "shadow's nearest face on images, its three nearest faces elsewhere (`shadow_starts='auto'`; pushed out "
        "while the target keeps the label), ranked by branch and bound, the shadow's gradient as a prior, "
        "complement sampling on tabular inputs, and QEBA's subspace on images (`method='auto'`). All candidates "
        "advance together; each candidate's random directions are keyed by its content and the seed, so its score "
        "does not depend on the batch. Misclassified candidates score 0 (`misclassified`); candidates without an "
        "adversarial starting point get the largest finite score (`failed`). The best distance at each query "
        "milestone (100, 200, 500, 1000, ...) is recorded, so one run gives the whole AUC-against-queries curve.",
        "up to `--queries` (default 2000)",
        "Li & Zhang, CCS 2021, Sec. 5; Chen, Jordan & Wainwright, *HopSkipJumpAttack*, S&P 2020; Li et al., "
        "*QEBA*, CVPR 2020.",
        "The audit sets `max_iter`, `max_eval`, `init_eval`, `init_size` and `seed` from its keys of the same names. "
        "`extras['distances']` holds the perturbation in L0, L1, L2 and Linf (`distances.csv`, `auc_by_norm`).",
    ),
    Family(
        "WhiteBoxBoundary",
        "White-box boundary distance (reference)",
        "Decoupled Direction and Norm: the minimal L2 perturbation found with the target's gradients, then "
        "tightened by a binary search. It is the distance a label-only boundary attack approaches from above, "
        "reported as a reference; it needs an in-process PyTorch target (`TorchOracle`). Each forward/backward "
        "pass is charged as one query.",
        "`steps` + `refine_steps` (100 + 12)",
        "Rony et al., *Decoupling Direction and Norm*, CVPR 2019; used the same way by Li & Zhang, CCS 2021.",
    ),
    Family(
        "AugmentationAttack",
        "Data augmentation",
        "Members keep their label under small changes: the score is the fraction of translated (by up to `d` "
        "pixels along one axis), rotated (-`r`..`r` degrees) or flipped copies that the target labels correctly, "
        "or, with `scorer='model'`, the output of a logistic-regression attack model trained on a shadow model's "
        "correctness vectors. Image inputs only.",
        "4d + 1 (translate), 2r + 1 (rotate) or 2 (flip), the original included",
        "Choquette-Choo et al., *Label-Only Membership Inference Attacks*, ICML 2021, Sec. 4.",
    ),
    Family(
        "NoiseAttack",
        "Noise robustness",
        "The fraction of `n_noise` Gaussian-noised copies (standard deviation `sigma`, clipped to the bounds) that "
        "the target labels correctly; for binary features, copies with each feature flipped with probability "
        "`flip_prob`.",
        "1 + `n_noise` (51)",
        "Choquette-Choo et al., ICML 2021, Sec. 4.",
    ),
    Family(
        "OSLO",
        "OSLO (one-shot label-only)",
        "For each candidate, a transfer adversarial example is crafted on surrogate models trained on the "
        "adversary's data, stepping until the loss of separate validation models reaches `tau`; a candidate the "
        "target still labels correctly is a member. Each value of `taus` is one operating point, and the score "
        "counts the values at which the target still answers correctly. Deviation: plain normalised-gradient L2 "
        "steps instead of the paper's MI-FGSM.",
        "one per value of `taus` (5)",
        "Peng et al., *OSLO: One-Shot Label-Only Membership Inference Attacks*, NeurIPS 2024.",
    ),
    Family(
        "MetricAttack",
        "Score metrics",
        "A threshold on a metric of the target's probabilities for the true label: `score-loss` (log p_y), "
        "`score-confidence` (p_y), `score-entropy` (minus the entropy) and `score-mentropy` (minus Song & "
        "Mittal's modified entropy).",
        "1 score query",
        "Yeom et al., CSF 2018; Salem et al., NDSS 2019; Song & Mittal, *Systematic Evaluation of Privacy Risks*, "
        "USENIX Security 2021.",
    ),
    Family(
        "ShadowNNAttack",
        "ML-Leaks",
        "An MLP trained on the sorted top-3 posteriors of a shadow model on its members and non-members, applied "
        "to the target's top-3 posteriors.",
        "1 score query",
        "Salem et al., *ML-Leaks*, NDSS 2019.",
    ),
    Family(
        "SmoothingRadius",
        "Randomized-smoothing radius",
        "The certified L2 radius of the candidate's own label under Gaussian noise: `sigma * Phi^-1(p_lower)`, with "
        "`p_lower` the one-sided Clopper-Pearson bound on the share of `n` noisy copies labelled `y` (signed, so "
        "candidates that cannot be certified are still ranked). A query-only view of the distance to the boundary.",
        "`n` (`smoothing_n`, default 1000)",
        "Cohen, Rosenfeld & Kolter, *Certified Adversarial Robustness via Randomized Smoothing*, ICML 2019; used "
        "as a membership signal by Li & Zhang, CCS 2021.",
        "The audit sets `sigma`, `n` and `alpha` from `smoothing_sigma`, `smoothing_n` and `smoothing_alpha`.",
    ),
    Family(
        "LiRA",
        "LiRA (likelihood ratio)",
        "`n_reference` reference models, each trained with the target's recipe on a random set of the target's "
        "size (`reference_size`), give, for each candidate, the distribution of the logit-scaled confidence "
        "`log p_y - log(1 - p_y)` with and without it in training. Online (`lira`): the models train on the "
        "candidates and the shadow data, every candidate IN for exactly half of them (K even), score = Gaussian "
        "log-likelihood ratio. Offline (`lira-offline`): shadow data only, score = distance from the OUT "
        "distribution in standard deviations. Variances are pooled over candidates.",
        "1 score query",
        "Carlini et al., *Membership Inference Attacks From First Principles*, S&P 2022.",
        "The audit sets `n_reference` from `lira_models` (default 8) and `reference_size` to the rows the target "
        "was trained on (a model labelleak did not train: the number of member candidates); so for every attack "
        "with reference models below.",
    ),
    Family(
        "BoundaryLiRA",
        "Boundary-LiRA (label-only LiRA over the boundary distance)",
        "Each candidate's HopSkipJump boundary distance is measured on the target and, with the same search and "
        "per-candidate budget, on every reference model in process; the log distance gets a Gaussian per "
        "candidate from the models trained with it (IN) and without it (OUT), and the score is the likelihood "
        "ratio (online, `boundary-lira`) or the OUT z-score (`boundary-lira-offline`). Misclassified candidates "
        "get a signed (negative) distance instead of a tied constant. `boundary-lira-guided` and "
        "`boundary-lira-guided-offline` measure the distance with boundary-guided's search instead (QEBA's "
        "subspace on large images, starts from the adversary's samples and beyond its shadow model's faces, that "
        "model's gradient as a prior), one shadow model guiding the target's search and every reference model's. "
        "`boundary-lira-guided-views` and `-views-offline` also measure augmented views of each candidate (a flip "
        "and one-pixel shifts; shifts only for one-channel images), each with an even share of the budget, and "
        "score all views by one multivariate likelihood ratio (one covariance pooled over candidates).",
        "the HSJA budget on the target (`queries`); the reference models' searches cost no target query",
        "Carlini et al., *Membership Inference Attacks From First Principles*, S&P 2022 (the calibration); "
        "Chen, Jordan & Wainwright, *HopSkipJumpAttack*, IEEE S&P 2020 (the search).",
        "The audit sets `n_reference` from `lira_models` and the search budget from `max_iter`, `max_eval`, "
        "`init_eval`, `init_size`.",
    ),
    Family(
        "CombinedLiRA",
        "Boundary-LiRA over several label-only signals",
        "Three label-only readings of each candidate, measured the same way on the target and on every reference "
        "model: the signed boundary distance (boundary-guided's search by default), how many of its four "
        "one-pixel shifts keep label y (log-odds; images only), and the signed distance along the fixed segment "
        "to the nearest adversary sample of another class (DHAttack's path, the endpoint chosen by the "
        "adversary's own labels). One multivariate likelihood ratio over them: online "
        "(`boundary-lira-combined`) Gaussians with per-candidate means and one covariance per side pooled over "
        "candidates, offline (`-offline`) the one-sided test of a shift of every signal towards member.",
        "4 for the shifts and `path_queries` (16) for the path, taken first from the budget (`queries`); the search "
        "gets the rest; the reference models' measurements cost no target query",
        "Carlini et al., S&P 2022 (the calibration); Choquette-Choo et al., ICML 2021 (augmentation agreement); "
        "Li et al., USENIX Security 2025 (the fixed path).",
        "The audit sets `n_reference` from `lira_models` and the search budget from `max_iter`, `max_eval`, "
        "`init_eval`, `init_size`; `signals` (`auto`: both on images, the path alone otherwise).",
    ),
    Family(
        "RMIA",
        "RMIA (relative membership inference)",
        "The candidate's likelihood ratio `p(y|x) / mean over reference models` is compared with that of "
        "population samples z from the adversary's data; the score is the share of z the candidate dominates by a "
        "factor `gamma`. Offline, the IN side is approximated linearly from the OUT models (`offline_a`). "
        "Score-based: the strongest score-based reference beside LiRA.",
        "1 score query, plus the population once (setup)",
        "Zarifzadeh, Liu, Mishra & Shokri, *Low-Cost High-Power Membership Inference Attacks*, ICML 2024.",
        "The audit sets `n_reference` from `lira_models`.",
    ),
    Family(
        "DHAttack",
        "DHAttack (fixed-path boundary distance, per-sample calibration)",
        "The distance to the target's decision boundary along a fixed path (from the candidate towards the "
        "nearest shadow sample the target labels differently), found by a log-scale bisection; reference models "
        "distilled from the target's labels on the shadow data run the same search in process, and the score is "
        "the candidate's distance in standard deviations of its own OUT Gaussian. Misclassified candidates get a "
        "negative (signed) distance. `dhattack-guided` replaces the path by boundary-guided's search up to the "
        "per-candidate budget (guided by a shadow model of the distilled data), on the target and on every "
        "distilled reference model.",
        "`max_queries` (default 15) plus the shadow set's labels once (setup); `dhattack-guided`: the budget "
        "(`queries`)",
        "Li et al., hard-label membership inference with decision boundary distance and reference models, USENIX "
        "Security 2025 (facts taken from the issue's summary: no paper text was available).",
        "The audit sets `n_reference` from `lira_models`.",
    ),
    Family(
        "YOQO",
        "YOQO (one query per candidate)",
        "A query sample crafted on the reference models so that models trained on the candidate keep its label "
        "and the others move to their top wrong label; the target's one answer is scored by the likelihood ratio "
        "of that answer under the IN and OUT models (online, `yoqo`) or its surprise under the OUT models "
        "(`yoqo-offline`).",
        "1",
        "Wu et al., *You Only Query Once: An Efficient Label-Only Membership Inference Attack*, ICLR 2024.",
        "The audit sets `n_reference` from `lira_models`.",
    ),
]

THREAT_MODELS = {
    "label-only": "the adversary sends inputs and sees only the predicted label (the setting labelleak is about).",
    "scores": "the adversary also sees the probability vector: a stronger threat model, served by a separate score "
    'oracle and marked `threat_model: "scores"` in every output.',
    "white-box": "the adversary can differentiate the model: a reference point, not an attack on a deployed API.",
}


def _code(value: Any) -> str:
    """A default as inline code; objects whose repr holds a memory address show their type (the page must be stable)."""
    text = repr(value)
    if " at 0x" in text:
        text = f"{type(value).__name__}(...)"
    return f"`{text}`"


def _families() -> list[tuple[Family, list[tuple[str, Attack]]]]:
    """Each catalogue family with its registered names and their attack objects, in catalogue order."""
    by_class: dict[str, list[tuple[str, Attack]]] = {}
    for name in attack_names():
        attack = create_attack(name)
        by_class.setdefault(type(attack).__name__, []).append((name, attack))
    known = {f.cls for f in FAMILIES}
    missing = sorted(set(by_class) - known)
    if missing:
        raise SystemExit(f"no catalogue entry for attack class(es) {', '.join(missing)}: add one to FAMILIES")
    return [(f, by_class[f.cls]) for f in FAMILIES if f.cls in by_class]


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _queries(attack: Attack, budget: int | None) -> str:
    """Queries per candidate under ``budget``, as the attack plans them: a number, or a ceiling (``<=``)."""
    plan = attack.query_plan(budget)
    if plan.per_candidate is None:
        return "unbounded"
    return f"{plan.per_candidate:,}" if plan.exact else f"<= {plan.per_candidate:,}"


def _anchor(family: Family) -> str:
    return family.cls.lower()


def _parameters(members: list[tuple[str, Attack]]) -> list[str]:
    """A table of constructor parameters: the default, or each registered name's value where they differ."""
    params = [a.get_params() for _, a in members]
    if not params[0]:
        return ["Parameters: none."]
    lines = ["| parameter | default |", "|---|---|"]
    for key, value in params[0].items():
        values = [p[key] for p in params]
        if all(v == value for v in values):
            shown = _code(value)
        else:
            shown = "; ".join(f"{_code(v)} for `{name}`" for (name, _), v in zip(members, values))
        lines.append(f"| `{key}` | {shown} |")
    return lines


def render() -> str:
    """The whole Markdown page."""
    families = _families()
    out = [
        "# Attack catalogue",
        "",
        "<!-- Written by scripts/attack_catalogue.py from the attack registry; edit the script, then rerun it. -->",
        "",
        "Every attack returns one raw score per candidate (higher = more likely a member) and a status per "
        "candidate (`ok`, `misclassified`, `failed`, `budget_hit`). A query is one sample sent to the target; "
        "budgets are counted per candidate. Attacks are created by name with "
        "[`create_attack`][labelleak.attacks.create_attack], and `labelleak attacks` lists the names.",
        "",
        "## Threat models",
        "",
    ]
    out += [f"- **{k}**: {v}" for k, v in THREAT_MODELS.items()]
    budget = AuditConfig().queries
    out += [
        "",
        "## All attacks",
        "",
        f"What each attack declares (`Attack.capabilities()`, and `Attack.query_plan()` at the default budget of "
        f"{budget:,} queries per candidate; `<=` marks a ceiling, setup queries such as labelling the shadow set "
        "come on top). Sharded attacks split their candidates over workers (`--backend ray`); the data-free "
        "threshold is set for attacks that give boundary distances.",
        "",
        "| attack | threat model | family | queries per candidate | needs shadow data | reference models "
        "| sharded | data-free threshold |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for family, members in families:
        for name, attack in members:
            caps = attack.capabilities()
            out.append(
                f"| `{name}` | {caps.threat_model} | [{family.title}](#{_anchor(family)}) | {_queries(attack, budget)} "
                f"| {_yes(caps.needs_shadow)} | {_yes(caps.uses_reference_models)} | {_yes(caps.shardable)} "
                f"| {_yes(caps.gives_distances)} |"
            )
    for family, members in families:
        attack = members[0][1]
        names = ", ".join(f"`{n}`" for n, _ in members)
        out += [
            "",
            f"## {family.title} {{#{_anchor(family)}}}",
            "",
            f"- **Names**: {names}",
            f"- **Class**: [`{family.cls}`][labelleak.attacks.{family.cls}]",
            f"- **Threat model**: {attack.threat_model}",
            f"- **Idea**: {family.idea}",
            f"- **Queries per candidate**: {family.queries}",
            f"- **Reference**: {family.reference}",
        ]
        if family.notes:
            out.append(f"- **In the audit**: {family.notes}")
        out += ["", *_parameters(members)]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/attacks.md differs from the registry")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if PAGE.read_text(encoding="utf-8") != text:
            print(f"{PAGE} is stale: run scripts/attack_catalogue.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
