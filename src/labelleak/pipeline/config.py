"""The audit configuration: one dataclass, filled from defaults, a YAML file and command-line options.

``validate()`` reports every problem at once, so a user fixes a config file in one go.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labelleak._validation import read_utf8
from labelleak.errors import DataFileError, InvalidInputError
from labelleak.models.settings import LR_SCHEDULES
from labelleak.oracle.preprocess import LAYOUTS

DEFAULT_ATTACKS = ("gap", "transfer", "boundary-hsja")
BACKENDS = ("local", "ray")
PROTOCOLS = ("labelleak", "v2", "rest")
MAX_WIDTH = 64  # the width multiplier of labelleak's architectures: beyond it a model does not fit in memory
MAX_SAMPLE_VALUES = 1 << 24  # values in one input sample (16 M: far beyond ImageNet's 150 k)
RELABEL = ("once", "online")  # how the transfer attacks label their shadow set


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


@dataclass
class AuditConfig:
    """Every knob of ``labelleak audit``; YAML files use the same keys (with ``-`` or ``_``)."""

    dataset: str = "digits"
    data: str | None = None
    arch: str = "auto"  # mlp for tabular data and images below 16x16, cnn7 otherwise
    width: float = 1.0
    epochs: int = 40
    lr: float = 1e-3
    lr_schedule: str = "constant"  # or "cosine" (decays to 0 over the epochs: a stable model after few epochs)
    batch_size: int = 128
    train_size: int = 300  # target members; the target's non-members and each shadow part default to this size
    test_size: int | None = None  # the target's non-members (default: train_size)
    reserve_train: int | None = None  # members set aside in the split, so targets of several sizes share the rest
    eval_size: int | None = None  # member and non-member candidates each, capped at what exists (default: all)
    shadow_size: int | None = None
    shadow_arch: str | None = None  # architecture of the adversary's own models (default: the target's)
    attacks: list[str] = field(default_factory=lambda: list(DEFAULT_ATTACKS))
    queries: int | None = 2000  # per-candidate query budget (boundary attacks spend it; others need 1)
    max_iter: int = 50  # HopSkipJump / QEBA parameters (paper defaults)
    max_eval: int = 10_000
    init_eval: int = 100
    init_size: int = 100
    top_t: float = 50.0  # data-free threshold: percentile of random-noise distances
    noise_samples: int = 100  # random-noise inputs attacked for the data-free threshold
    lira_models: int = 8  # reference models of LiRA
    relabel: str = "once"  # transfer attacks: label the shadow set once, or "online" (augmented views every batch)
    relabel_epochs: int | None = None  # epochs of online relabelling (default: epochs)
    smoothing_sigma: float = 0.25  # randomized smoothing (Cohen et al. 2019): noise level, samples, error rate
    smoothing_n: int = 1000
    smoothing_alpha: float = 0.001
    thresholds: bool = True  # choose thresholds (shadow-calibrated, data-free); off skips those extra attack runs
    target: str | None = None  # URL of a remote label-only target (instead of training one)
    members: str | None = None  # remote audits: .npz files with keys x, y
    nonmembers: str | None = None
    shadow: str | None = None
    api_key_env: str | None = None  # name of the environment variable holding the remote API key
    model: str | None = None  # the auditor's own model file (.onnx, .pt2, TorchScript, .skops, a model folder)
    # one sample in the natural space, channels first (read from an ONNX file or a remote target's metadata if absent)
    input_shape: list[int] | None = None
    bounds: list[float] | None = None  # natural input range of a model file or a remote target (default 0,1)
    mean: list[float] | None = None  # channel-wise normalisation applied inside the oracle
    std: list[float] | None = None
    layout: str = "nchw"  # nhwc: the model takes channels last (Keras/TF exports)
    output: str | None = None  # ONNX output holding the labels or class scores, when there are several
    n_classes: int | None = None  # when the model file or the remote metadata does not say
    trust: list[str] = field(default_factory=list)  # extra types a .skops file may load
    protocol: str = "labelleak"  # remote protocol: labelleak (labelleak serve), v2 (Open Inference), rest (a spec)
    model_name: str | None = None  # v2: the model's name on the server
    rest_spec: str | None = None  # rest: YAML file describing the API (url, headers, body, labels path, ...)
    concurrency: int = 1  # requests in flight against a remote target
    timeout: float = 30.0  # seconds to wait for one answer
    retries: int = 30  # at most this many attempts after the first, on connection errors, 429 and 5xx
    max_retry_wait: float = 60.0  # ceiling of one wait between attempts (Retry-After included)
    retry_window: float = 60.0  # seconds of waiting between attempts before the target counts as down
    title: str | None = None  # the report's title (default: the dataset or model file)
    auditor: str | None = None  # who ran the audit, in the report's header
    max_total_queries: int | None = None  # cap on every sample sent to the target (retries, setup included)
    defense: str = "none"  # training/output defense of the target, e.g. "l2=5e-4", "dp=8", "memguard"
    checkpoint: bool = True  # journal target answers and finished attacks under OUT/checkpoint
    resume: bool = False
    fresh: bool = False  # start over in an OUT whose checkpoint holds journaled answers (deleting them)
    seed: int = 0
    repeats: int = 1  # audits under seeds seed .. seed+repeats-1, pooled (labelleak.pipeline.repeats); 1: one audit
    out: str = "audit-out"
    cache_dir: str = ".labelleak-cache"
    n_boot: int = 1000  # AUC bootstrap resamples (TPR intervals are exact and need none)
    claimed_epsilon: float | None = None  # a DP claim (epsilon) the verdict checks: refuted if eps_LB is above it
    claimed_delta: float = 1e-5  # the claim's delta, and the delta of every eps_LB in results.json
    fail_above_epsilon: float | None = None  # labelleak audit exits 4 when the audit's eps_LB is above it
    progress: bool = True
    backend: str = "local"  # or "ray": candidate shards and training jobs on Ray workers (labelleak[ray])
    ray_address: str | None = None  # "auto" (a cluster started with `ray start`), "ray://HOST:PORT"; none: local Ray
    workers: int = 1  # Ray workers (one candidate shard each)
    worker_cpus: float = 1.0  # CPUs and GPUs reserved by each Ray worker
    worker_gpus: float = 0.0

    def problems(self) -> list[str]:
        """Every invalid value, as messages naming the key."""
        found = []
        for key in (
            "epochs",
            "batch_size",
            "train_size",
            "n_boot",
            "max_iter",
            "max_eval",
            "init_eval",
            "init_size",
            "noise_samples",
            "lira_models",
            "smoothing_n",
            "repeats",
        ):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                found.append(f"{key}: expected a positive integer, got {v!r}")
        for key in ("test_size", "reserve_train", "eval_size", "shadow_size", "queries", "max_total_queries"):
            v = getattr(self, key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                found.append(f"{key}: expected a positive integer or nothing, got {v!r}")
        if not isinstance(self.width, (int, float)) or not 0 < self.width <= MAX_WIDTH:
            found.append(f"width: expected a positive number up to {MAX_WIDTH}, got {self.width!r}")
        if not isinstance(self.lr, (int, float)) or self.lr <= 0:
            found.append(f"lr: expected a positive number, got {self.lr!r}")
        if not isinstance(self.smoothing_sigma, (int, float)) or self.smoothing_sigma <= 0:
            found.append(f"smoothing_sigma: expected a positive number, got {self.smoothing_sigma!r}")
        if not isinstance(self.smoothing_alpha, (int, float)) or not 0 < self.smoothing_alpha < 1:
            found.append(f"smoothing_alpha: expected a number between 0 and 1, got {self.smoothing_alpha!r}")
        if self.relabel not in RELABEL:
            found.append(f"relabel: expected {' or '.join(RELABEL)}, got {self.relabel!r}")
        if self.relabel_epochs is not None and not _positive_int(self.relabel_epochs):
            found.append(f"relabel_epochs: expected a positive integer or nothing, got {self.relabel_epochs!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            found.append(f"lr_schedule: expected {' or '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if not isinstance(self.top_t, (int, float)) or not 0 <= self.top_t <= 100:
            found.append(f"top_t: expected a percentile between 0 and 100, got {self.top_t!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            found.append(f"seed: expected an integer, got {self.seed!r}")
        if self.resume and self.fresh:
            found.append("resume, fresh: give one (continue the saved run, or start over deleting it)")
        if self.target is not None and not str(self.target).startswith(("http://", "https://")):
            found.append(f"target: expected an http(s) URL, got {self.target!r}")
        found.extend(self._backend_problems())
        found.extend(self._remote_problems())
        found.extend(self._verdict_problems())
        if not self.attacks or not all(isinstance(a, str) and a for a in self.attacks):
            found.append(f"attacks: expected a non-empty list of names, got {self.attacks!r}")
        found.extend(self._model_problems())
        return found

    def _model_problems(self) -> list[str]:
        """Problems of the keys that describe the auditor's own model file and data files."""
        found = []
        if self.model is not None and self.target is not None:
            found.append("model, target: give one target, a model file (--model) or a URL (--target)")
        if self.model is not None:
            missing = [k for k in ("members", "nonmembers", "shadow") if not getattr(self, k)]
            if missing:
                found.append(f"{', '.join(missing)}: an audit of a model file needs --members, --nonmembers, --shadow")
        if self.input_shape is not None and not _ints(self.input_shape, low=1):
            found.append(f"input_shape: expected positive integers such as 3,32,32, got {self.input_shape!r}")
        elif self.input_shape is not None and math.prod(self.input_shape) > MAX_SAMPLE_VALUES:
            found.append(
                f"input_shape: {math.prod(self.input_shape)} values per sample is more than {MAX_SAMPLE_VALUES}"
            )
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if str(f.type) in ("str", "str | None") and value is not None and not isinstance(value, str):
                found.append(f"{f.name}: expected text, got {type(value).__name__} {value!r}")
        if self.bounds is not None and not (
            _numbers(self.bounds) and len(self.bounds) == 2 and self.bounds[0] < self.bounds[1]
        ):
            found.append(f"bounds: expected LOW,HIGH with LOW < HIGH, got {self.bounds!r}")
        if self.mean is not None and not (_numbers(self.mean) and self.mean):
            found.append(f"mean: expected one number per channel, got {self.mean!r}")
        if self.std is not None and not (_numbers(self.std) and self.std and all(v > 0 for v in self.std)):
            found.append(f"std: expected one positive number per channel, got {self.std!r}")
        if self.layout not in LAYOUTS:
            found.append(f"layout: expected {' or '.join(LAYOUTS)}, got {self.layout!r}")
        if self.n_classes is not None and not (_ints([self.n_classes], low=2)):
            found.append(f"n_classes: expected an integer of at least 2, got {self.n_classes!r}")
        if not isinstance(self.trust, list) or not all(isinstance(t, str) and t for t in self.trust):
            found.append(f"trust: expected a list of type names, got {self.trust!r}")
        return found

    def _verdict_problems(self) -> list[str]:
        """Problems of the DP claim and the CI limit the verdict checks."""
        found = []
        for key in ("claimed_epsilon", "fail_above_epsilon"):
            v = getattr(self, key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < math.inf):
                found.append(f"{key}: expected a number >= 0 or nothing, got {v!r}")
        v = self.claimed_delta
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
            found.append(f"claimed_delta: expected a number in [0, 1), got {v!r}")
        if self.fail_above_epsilon is not None and isinstance(self.repeats, int) and self.repeats > 1:
            found.append("fail_above_epsilon: one audit's gate, not with repeats > 1 (each seed has its verdict)")
        return found

    def _backend_problems(self) -> list[str]:
        found = []
        if self.backend not in BACKENDS:
            found.append(f"backend: expected {' or '.join(BACKENDS)}, got {self.backend!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            found.append(f"workers: expected a positive integer, got {self.workers!r}")
        if (
            isinstance(self.worker_cpus, bool)
            or not isinstance(self.worker_cpus, (int, float))
            or self.worker_cpus <= 0
        ):
            found.append(f"worker_cpus: expected a positive number, got {self.worker_cpus!r}")
        if isinstance(self.worker_gpus, bool) or not isinstance(self.worker_gpus, (int, float)) or self.worker_gpus < 0:
            found.append(f"worker_gpus: expected a number >= 0, got {self.worker_gpus!r}")
        if self.ray_address is not None and self.backend != "ray":
            found.append(f"ray_address: only used with backend 'ray', got backend {self.backend!r}")
        return found

    def _remote_problems(self) -> list[str]:
        found = []
        if self.protocol not in PROTOCOLS:
            found.append(f"protocol: expected one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        if self.protocol == "rest" and not self.rest_spec:
            found.append("protocol rest: needs rest_spec (--rest-spec FILE)")
        if self.rest_spec and self.protocol != "rest":
            found.append(f"rest_spec: only read with protocol rest, got protocol {self.protocol!r}")
        if self.protocol == "v2" and not self.model_name:
            found.append("protocol v2: needs model_name (--model-name NAME)")
        if self.protocol == "v2" and self.target is None:
            found.append("protocol v2: needs target (--target URL)")
        if not _positive_int(self.concurrency):
            found.append(f"concurrency: expected a positive integer, got {self.concurrency!r}")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            found.append(f"retries: expected a non-negative integer, got {self.retries!r}")
        for key in ("timeout", "max_retry_wait", "retry_window"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                found.append(f"{key}: expected a positive number of seconds, got {v!r}")
        return found

    @property
    def is_remote(self) -> bool:
        return self.target is not None or self.protocol == "rest"

    def validate(self) -> AuditConfig:
        found = self.problems()
        if found:
            raise InvalidInputError("invalid audit config: " + "; ".join(found))
        return self

    def to_dict(self) -> dict[str, Any]:
        """Every key; ``repeats`` only above 1, so one audit's files and checkpoint read as before it existed."""
        values = dataclasses.asdict(self)
        if values["repeats"] == 1:
            del values["repeats"]
        return values

    def replace(self, **changes: Any) -> AuditConfig:
        """A copy with ``changes`` applied (keys checked)."""
        return from_mapping({**self.to_dict(), **changes}, source="options")


def _ints(values: Any, *, low: int) -> bool:
    return isinstance(values, list) and all(isinstance(v, int) and not isinstance(v, bool) and v >= low for v in values)


def _numbers(values: Any) -> bool:
    return isinstance(values, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _as_list(value: Any, cast: type) -> Any:
    """``"3,32,32"`` or ``(3, 32, 32)`` as ``[3, 32, 32]``; a value that does not convert is kept for the report."""
    if value is None or isinstance(value, bool):
        return value
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, (list, tuple)) else [value]
    try:
        return [cast(v.strip()) if isinstance(v, str) else cast(v) if cast is float else v for v in items]
    except (ValueError, TypeError):
        return value


def from_mapping(values: dict[str, Any], *, source: str) -> AuditConfig:
    known = {f.name for f in dataclasses.fields(AuditConfig)}
    clean = {str(k).replace("-", "_"): v for k, v in values.items()}
    unknown = sorted(set(clean) - known)
    if unknown:
        raise InvalidInputError(f"{source}: unknown key(s) {unknown}; valid keys are {sorted(known)}")
    if isinstance(clean.get("attacks"), str):
        clean["attacks"] = [a.strip() for a in clean["attacks"].split(",") if a.strip()]
    for key, cast in (("input_shape", int), ("bounds", float), ("mean", float), ("std", float), ("trust", str)):
        if key in clean:
            clean[key] = _as_list(clean[key], cast)
    return AuditConfig(**clean)


def load_config(path: str | Path, **overrides: Any) -> AuditConfig:
    """Read a YAML config file; ``overrides`` (e.g. command-line options) win over the file."""
    p = Path(path)
    if not p.is_file():
        raise DataFileError(f"config file not found: {p}")
    try:
        values = yaml.safe_load(read_utf8(p, "config file")) or {}
    except yaml.YAMLError as exc:
        raise DataFileError(f"config file {p} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise DataFileError(f"config file {p}: expected a mapping of keys to values, got {type(values).__name__}")
    return from_mapping({**values, **overrides}, source=str(p))


def make_config(config_file: str | Path | None = None, **overrides: Any) -> AuditConfig:
    """The defaults, updated by ``config_file`` (if any), then by ``overrides``; validated."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    cfg = load_config(config_file, **overrides) if config_file else from_mapping(overrides, source="options")
    return cfg.validate()
