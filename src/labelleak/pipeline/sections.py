"""The sections of an audit configuration: each a dataclass of the settings it groups, with their help, options,
parsing and checks (:mod:`labelleak.pipeline.fields`), and the problems of its own keys taken together.

:class:`labelleak.pipeline.config.AuditConfig` is all of them at once (its keys stay flat: ``queries``, not
``search.queries``), so a function can be typed by the one section it reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from labelleak.pipeline.fields import (
    FINITE_NON_NEGATIVE,
    INTEGER,
    NON_NEGATIVE_INT,
    NON_NEGATIVE_NUMBER,
    POSITIVE_INT,
    POSITIVE_NUMBER,
    SECONDS,
    Check,
    comma_list,
    ints,
    names_list,
    numbers,
    optional,
    setting,
)

LrSchedule = Literal["constant", "cosine"]
Relabel = Literal["once", "online"]  # how the transfer attacks label their shadow set
Backend = Literal["local", "ray"]
# the oracle's own words (labelleak.oracle.preprocess.Layout, oracle.remote.connect.RemoteProtocol), spelled here so
# that reading a configuration (and building the command line) imports neither torch nor the remote clients; a test
# holds them equal
Layout = Literal["nchw", "nhwc"]
RemoteProtocol = Literal["labelleak", "v2", "rest"]

MAX_WIDTH = 64  # the width multiplier of labelleak's architectures: beyond it a model does not fit in memory
MAX_SAMPLE_VALUES = 1 << 24  # values in one input sample (16 M: far beyond ImageNet's 150 k)
_OWN_FILES = "--model/--target: "


@dataclass
class Section:
    """A section of the audit configuration: its fields declare their checks, and ``section_problems`` those of
    its keys taken together."""

    def section_problems(self) -> list[str]:
        return []


@dataclass
class DataSettings(Section):
    """Where the candidates come from: a dataset labelleak splits (four ways, seeded), or the auditor's files."""

    dataset: str = setting(  # checked where it is loaded (labelleak.data.load_dataset), against DATASETS
        "digits", help="digits (default), cifar10, cifar100, npz, folder, tabular."
    )
    data: str | None = setting(None, help="Path of the dataset file or folder.")
    train_size: int = setting(300, help="Target training-set size (members).", check=POSITIVE_INT)
    test_size: int | None = setting(
        None, help="The target's non-members (default: train_size).", cli=False, check=optional(POSITIVE_INT)
    )
    reserve_train: int | None = setting(
        None,
        help="Members set aside in the split, so targets of several sizes share the rest.",
        cli=False,
        check=optional(POSITIVE_INT),
    )
    eval_size: int | None = setting(
        None, help="Member and non-member candidates each.", check=optional(POSITIVE_INT)
    )  # capped at what exists (default: all)
    shadow_size: int | None = setting(
        None, help="Size of shadow-train and of shadow-test.", check=optional(POSITIVE_INT)
    )  # default: train_size
    canaries: int = setting(
        0,
        help="One-run DP audit: M more candidates from the pool, each trained on by its own coin (p = 1/2).",
        check=NON_NEGATIVE_INT,
    )  # a target labelleak trains only (pipeline.config)
    members: str | None = setting(
        None, help=_OWN_FILES + "member candidates (.npz with x, y; image folder; CSV, label last)."
    )
    nonmembers: str | None = setting(None, help=_OWN_FILES + "non-member candidates (same formats).")
    shadow: str | None = setting(None, help=_OWN_FILES + "the adversary's shadow pool (same formats).")


@dataclass
class TrainingSettings(Section):
    """The models labelleak trains: the target (when it trains one, with its defense) and the adversary's own."""

    arch: str = setting("auto", help="mlp, cnn2..cnn11, or auto (default).")  # auto: mlp below 16x16, else cnn7
    width: float = setting(
        1.0,
        help="Channel/width multiplier of the architecture.",
        check=Check(
            lambda v: isinstance(v, (int, float)) and 0 < v <= MAX_WIDTH, f"a positive number up to {MAX_WIDTH}"
        ),
    )
    epochs: int = setting(40, help="Training epochs of target and shadow models.", check=POSITIVE_INT)
    lr: float = setting(
        1e-3,
        help="Learning rate.",
        cli=False,
        check=Check(lambda v: isinstance(v, (int, float)) and v > 0, "a positive number"),
    )
    lr_schedule: LrSchedule = setting(
        "constant",
        help="constant, or cosine (decays to 0 over the epochs: a stable model after few epochs).",
        cli=False,
    )
    batch_size: int = setting(128, help="Training batch size.", cli=False, check=POSITIVE_INT)
    shadow_arch: str | None = setting(None, help="Architecture of the adversary's models (default: auto).")
    defense: str = setting(
        "none", help='Training/output defense of the target, e.g. "l2=5e-4", "dp=8", "memguard".', cli=False
    )
    non_adaptive: bool = setting(  # default: the adversary knows the defense of a target labelleak trains
        False,
        help="Attack as an adversary unaware of the target's defense: its own models train and answer undefended.",
    )


@dataclass
class ModelFileSettings(Section):
    """The auditor's own model file and how it reads its input; the shape, bounds and classes also describe a
    remote target whose metadata does not say them."""

    model: str | None = setting(
        None, help="Your model file: .onnx, .pt2, TorchScript, .skops, or a labelleak model folder."
    )
    input_shape: list[int] | None = setting(
        None,
        help=_OWN_FILES + "one sample, channels first, e.g. 3,32,32 or 64 (when the model does not say).",
        parse=comma_list(int),
    )
    bounds: list[float] | None = setting(
        None, help=_OWN_FILES + "the input range LOW,HIGH (default 0,1).", parse=comma_list(float)
    )
    mean: list[float] | None = setting(
        None, help="--model: per-channel mean the model subtracts, e.g. 0.5,0.5,0.5.", parse=comma_list(float)
    )
    std: list[float] | None = setting(
        None, help="--model: per-channel std the model divides by.", parse=comma_list(float)
    )
    layout: Layout = setting("nchw", help="--model: nchw (default) or nhwc (channels-last exports).")
    output: str | None = setting(None, help="--model: the ONNX output with labels or class scores.")
    n_classes: int | None = setting(
        None,
        help=_OWN_FILES + "number of classes, when the model does not say.",
        check=Check(lambda v: v is None or ints([v], low=2), "an integer of at least 2"),
    )
    trust: list[str] = setting(
        help="--model .skops: extra type names to trust, comma-separated.",
        factory=list,
        parse=comma_list(str),
        check=Check(lambda v: isinstance(v, list) and all(isinstance(t, str) and t for t in v), "a list of type names"),
    )

    def section_problems(self) -> list[str]:
        found = []
        if self.input_shape is not None and not ints(self.input_shape, low=1):
            found.append(f"input_shape: expected positive integers such as 3,32,32, got {self.input_shape!r}")
        elif self.input_shape is not None and math.prod(self.input_shape) > MAX_SAMPLE_VALUES:
            found.append(
                f"input_shape: {math.prod(self.input_shape)} values per sample is more than {MAX_SAMPLE_VALUES}"
            )
        if self.bounds is not None and not (
            numbers(self.bounds) and len(self.bounds) == 2 and self.bounds[0] < self.bounds[1]
        ):
            found.append(f"bounds: expected LOW,HIGH with LOW < HIGH, got {self.bounds!r}")
        if self.mean is not None and not (numbers(self.mean) and self.mean):
            found.append(f"mean: expected one number per channel, got {self.mean!r}")
        if self.std is not None and not (numbers(self.std) and self.std and all(v > 0 for v in self.std)):
            found.append(f"std: expected one positive number per channel, got {self.std!r}")
        return found


@dataclass
class RemoteSettings(Section):
    """A target behind a URL (labelleak, v2) or a REST spec, and how patiently to ask it."""

    target: str | None = setting(
        None,
        help="URL of a remote label-only target (see `labelleak serve`).",
        check=Check(lambda v: v is None or str(v).startswith(("http://", "https://")), "an http(s) URL"),
    )
    protocol: RemoteProtocol = setting(
        "labelleak", help="Remote protocol: labelleak (default), v2 (KServe/Triton/MLServer), rest."
    )
    model_name: str | None = setting(None, help="v2: the model's name on the server.")
    rest_spec: str | None = setting(None, help="rest: YAML file describing the API (see examples/rest-spec.yaml).")
    api_key_env: str | None = setting(None, help="Environment variable holding the remote API key.")
    concurrency: int = setting(1, help="Requests in flight against a remote target (default 1).", check=POSITIVE_INT)
    timeout: float = setting(30.0, help="Seconds to wait for one answer (default 30).", check=SECONDS)
    retries: int = setting(
        30, help="At most this many attempts after the first (default 30).", check=NON_NEGATIVE_INT
    )  # on connection errors, 429 and 5xx
    max_retry_wait: float = setting(
        60.0, help="Ceiling of one wait between attempts, Retry-After included (60).", check=SECONDS
    )
    retry_window: float = setting(
        60.0,
        help="Seconds of waiting between attempts before the target counts as down (default 60).",
        check=SECONDS,
    )

    @property
    def is_remote(self) -> bool:
        return self.target is not None or self.protocol == "rest"

    def section_problems(self) -> list[str]:
        found = []
        if self.protocol == "rest" and not self.rest_spec:
            found.append("protocol rest: needs rest_spec (--rest-spec FILE)")
        if self.rest_spec and self.protocol != "rest":
            found.append(f"rest_spec: only read with protocol rest, got protocol {self.protocol!r}")
        if self.protocol == "v2" and not self.model_name:
            found.append("protocol v2: needs model_name (--model-name NAME)")
        if self.protocol == "v2" and self.target is None:
            found.append("protocol v2: needs target (--target URL)")
        return found


def _default_attacks() -> list[str]:
    """The registry's default attacks, imported only when a configuration is built (reading one, and building the
    command line, import no torch)."""
    from labelleak.attacks.registry import DEFAULT_AUDIT_ATTACKS

    return list(DEFAULT_AUDIT_ATTACKS)


@dataclass
class SearchSettings(Section):
    """Which attacks run, their query budgets, and the parameters of their search and thresholds."""

    attacks: list[str] = setting(
        help="Comma-separated attack names (see `labelleak attacks`).",
        factory=_default_attacks,
        parse=names_list,
        check=Check(
            lambda v: isinstance(v, (list, tuple)) and bool(v) and all(isinstance(a, str) and a for a in v),
            "a non-empty list of names",
        ),
    )
    queries: int | None = setting(
        2000, help="Per-candidate query budget (default 2000).", check=optional(POSITIVE_INT)
    )  # boundary attacks spend it; others need 1; None: no per-candidate cap
    max_total_queries: int | None = setting(
        None, help="Cap on all samples sent to the target, retries included.", check=optional(POSITIVE_INT)
    )  # setup queries included
    max_iter: int = setting(50, help="HopSkipJump/QEBA iterations (default 50).", check=POSITIVE_INT)
    max_eval: int = setting(10_000, help="HopSkipJump/QEBA max gradient samples (default 10000).", check=POSITIVE_INT)
    init_eval: int = setting(100, help="HopSkipJump/QEBA initial gradient samples.", cli=False, check=POSITIVE_INT)
    init_size: int = setting(100, help="HopSkipJump/QEBA tries for a starting point.", cli=False, check=POSITIVE_INT)
    top_t: float = setting(
        50.0,
        help="Data-free threshold percentile of noise distances (50).",
        check=Check(lambda v: isinstance(v, (int, float)) and 0 <= v <= 100, "a percentile between 0 and 100"),
    )
    noise_samples: int = setting(100, help="Random-noise inputs for the data-free threshold.", check=POSITIVE_INT)
    thresholds: bool = setting(
        True, help="Choose thresholds (shadow-calibrated, data-free); off skips those extra attack runs.", cli=False
    )
    lira_models: int = setting(8, help="Reference models of LiRA.", cli=False, check=POSITIVE_INT)
    relabel: Relabel = setting(
        "once",
        help='Transfer attacks: label the shadow set once, or "online" (augmented views every batch).',
        cli=False,
    )
    relabel_epochs: int | None = setting(
        None, help="Epochs of online relabelling (default: epochs).", cli=False, check=optional(POSITIVE_INT)
    )
    smoothing_sigma: float = setting(
        0.25, help="Randomized smoothing (Cohen et al. 2019): noise level.", cli=False, check=POSITIVE_NUMBER
    )
    smoothing_n: int = setting(1000, help="Randomized smoothing: noise samples.", cli=False, check=POSITIVE_INT)
    smoothing_alpha: float = setting(
        0.001,
        help="Randomized smoothing: error rate.",
        cli=False,
        check=Check(lambda v: isinstance(v, (int, float)) and 0 < v < 1, "a number between 0 and 1"),
    )


@dataclass
class VerdictSettings(Section):
    """The DP claim the verdict checks, the CI gate, and the AUC bootstrap."""

    claimed_epsilon: float | None = setting(
        None,
        help="A DP claim to check: the verdict says whether the audit refutes epsilon E (at 95%).",
        check=optional(FINITE_NON_NEGATIVE),
    )
    claimed_delta: float = setting(
        1e-5,
        help="The claim's delta, and the delta of eps_LB (1e-5).",
        check=Check(lambda v: FINITE_NON_NEGATIVE.ok(v) and v < 1, "a number in [0, 1)"),
    )
    fail_above_epsilon: float | None = setting(
        None,
        help="Exit 4 (after writing every file) when the audit's eps_LB is above E: a CI release gate.",
        check=optional(FINITE_NON_NEGATIVE),
    )
    n_boot: int = setting(
        1000, help="AUC bootstrap resamples (TPR intervals are exact and need none).", cli=False, check=POSITIVE_INT
    )


@dataclass
class ReportSettings(Section):
    """Where the files go and what the report's header says."""

    out: str = setting("audit-out", help="Output folder (default audit-out).")
    title: str | None = setting(None, help="The report's title (default: the dataset or model file).")
    auditor: str | None = setting(None, help="Who ran the audit, in the report's header.")


@dataclass
class ExecutionSettings(Section):
    """The seed, the model cache, checkpoints, and where the work runs (locally or on Ray workers)."""

    seed: int = setting(0, help="Seed of the split, training and attacks.", check=INTEGER)
    repeats: int = setting(
        1,
        help="Audit under N seeds (seed..seed+N-1) into OUT/seed-<s>/ and pool them in OUT/repeats.json.",
        check=POSITIVE_INT,
    )
    cache_dir: str = setting(".labelleak-cache", help="Where trained models are cached.")
    checkpoint: bool = setting(True, help="Do not journal queries and results.", flag="--no-checkpoint")
    resume: bool = setting(False, help="Continue an interrupted run saved in OUT/checkpoint.", flag="--resume")
    fresh: bool = setting(
        False, help="Start over in an OUT with an unfinished run, deleting its journaled answers.", flag="--fresh"
    )
    progress: bool = setting(
        True, help="Progress bars on stderr (the command line's --quiet turns them off).", cli=False
    )
    backend: Backend = setting("local", help="local (default) or ray: candidate shards on Ray workers.")
    ray_address: str | None = setting(None, help="Ray cluster: auto or ray://HOST:PORT (default: local Ray).")
    workers: int = setting(1, help="Ray workers (one candidate shard each).", check=POSITIVE_INT)
    worker_cpus: float = setting(1.0, help="CPUs per Ray worker (default 1).", check=POSITIVE_NUMBER)
    worker_gpus: float = setting(0.0, help="GPUs per Ray worker (default 0).", check=NON_NEGATIVE_NUMBER)

    def section_problems(self) -> list[str]:
        found = []
        if self.resume and self.fresh:
            found.append("resume, fresh: give one (continue the saved run, or start over deleting it)")
        if self.ray_address is not None and self.backend != "ray":
            found.append(f"ray_address: only used with backend 'ray', got backend {self.backend!r}")
        return found


SECTIONS: dict[str, type[Section]] = {
    "data": DataSettings,
    "training": TrainingSettings,
    "model_file": ModelFileSettings,
    "remote": RemoteSettings,
    "search": SearchSettings,
    "verdict": VerdictSettings,
    "report": ReportSettings,
    "execution": ExecutionSettings,
}
