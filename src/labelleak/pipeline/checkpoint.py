"""Checkpoints of an audit: finished attacks are stored as they complete, and the target's answers are
journaled (see :class:`labelleak.oracle.cache.CachedOracle`), so ``--resume`` skips finished attacks and
replays the interrupted one from the journal: same scores, same query counts, no query paid twice."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from labelleak.errors import DataFileError, InvalidInputError
from labelleak.oracle.cache import read_journal
from labelleak.report.files import jsonable

# keys that may change between a run and its resumption: how to reach the target and where the work runs, not
# what is asked of it (the backend does not change the results)
_VOLATILE = {
    "progress",
    "resume",
    "fresh",
    "out",
    "backend",
    "ray_address",
    "workers",
    "worker_cpus",
    "worker_gpus",
    "concurrency",
    "timeout",
    "retries",
    "max_retry_wait",
    "retry_window",
    "max_total_queries",
    "title",  # the report's header: never changes a score
    "auditor",
    "claimed_epsilon",  # the verdict's claim and CI limit: read from the scores, never change them
    "claimed_delta",
    "fail_above_epsilon",
}

# keys added after runs were saved, with the value every earlier run implicitly had: at that value they are left out
# of a run's identity, so results and checkpoints saved before they existed stay valid
ADDED_LATER: dict[str, Any] = {"relabel": "once", "relabel_epochs": None, "canaries": 0}


def run_identity(config: dict[str, Any]) -> dict[str, Any]:
    """The part of an audit config that decides its results: no volatile keys, no later-added key at its old value."""
    return {k: v for k, v in config.items() if k not in _VOLATILE and not (k in ADDED_LATER and v == ADDED_LATER[k])}


class Interrupted(KeyboardInterrupt):
    """The audit was interrupted; its progress is saved in ``folder``."""

    def __init__(self, folder: Path) -> None:
        super().__init__(str(folder))
        self.folder = folder


def saved_answers(folder: Path) -> int:
    """The target's answers journaled in the checkpoint ``folder`` (its own journal and its shards')."""
    journals = [folder / "journal.bin", *sorted((folder / "shards").glob("*.bin"))]
    return sum(read_journal(p).answers for p in journals if p.is_file())


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file, sync it and rename it over ``path``: a crash or a full disk leaves the
    old file or none, never an empty one (an empty config.json used to make every --resume crash)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any]:
    """A checkpoint file, or one error naming it and the way out when it is unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataFileError(
            f"{path}: the checkpoint is damaged ({type(exc).__name__}); rerun with --fresh to start over"
        ) from None
    if not isinstance(data, dict):
        raise DataFileError(f"{path}: the checkpoint is damaged (not a JSON object); rerun with --fresh to start over")
    return data


class Checkpoint:
    """The folder ``OUT/checkpoint``: ``config.json``, ``journal.bin`` and ``done/<attack>.{json,npz}``.

    A new run (neither ``resume`` nor ``fresh``) into a folder whose journal holds answers is refused: they were
    paid for, and only ``fresh`` deletes them."""

    def __init__(self, out: str | Path, config: dict[str, Any], *, resume: bool, fresh: bool = False) -> None:
        if resume and fresh:
            raise InvalidInputError("--resume and --fresh: give one (continue the saved run, or delete it)")
        self.folder = Path(out) / "checkpoint"
        # the attack list is not part of it: --resume with other attacks runs the new ones and keeps the finished
        same_run = run_identity({k: v for k, v in config.items() if k != "attacks"})
        fingerprint = hashlib.sha256(json.dumps(same_run, sort_keys=True, default=str).encode()).hexdigest()
        meta = self.folder / "config.json"
        if resume and meta.is_file():
            saved = _read_json(meta).get("fingerprint")
            if saved != fingerprint:
                raise InvalidInputError(
                    f"--resume: the options differ from those of the run saved in {self.folder}; rerun with the "
                    "same options, or with --fresh to start over (deleting its journaled answers)"
                )
        elif self.folder.exists():
            answers = 0 if fresh else saved_answers(self.folder)
            if answers:
                raise InvalidInputError(
                    f"{self.folder} holds {answers:,} journaled answers of the target from an unfinished run: "
                    "continue it with --resume, or start over with --fresh (deletes them)"
                )
            shutil.rmtree(self.folder)
        (self.folder / "done").mkdir(parents=True, exist_ok=True)
        _write_atomically(meta, json.dumps({"fingerprint": fingerprint, "config": jsonable(config)}, indent=2))

    @property
    def journal(self) -> Path:
        return self.folder / "journal.bin"

    @property
    def shard_journals(self) -> Path:
        """The journals of a distributed run's shards (one file per shard, see ``labelleak.distributed``)."""
        return self.folder / "shards"

    def clear_journals(self) -> None:
        """Remove every journal: the run is finished and every attack's results are stored."""
        self.journal.unlink(missing_ok=True)
        shutil.rmtree(self.shard_journals, ignore_errors=True)

    def _paths(self, name: str) -> tuple[Path, Path]:
        return self.folder / "done" / f"{name}.json", self.folder / "done" / f"{name}.npz"

    def load(self, name: str) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        """A finished attack's results entry and arrays, or ``None``."""
        entry, arrays = self._paths(name)
        if not (entry.is_file() and arrays.is_file()):
            return None
        try:
            with np.load(arrays, allow_pickle=False) as z:
                return _read_json(entry), {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile):
            return None  # torn by a crash or a full disk: the attack runs again

    def save(self, name: str, entry: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Store a finished attack atomically (arrays first, the entry last marks it complete)."""
        entry_path, arrays_path = self._paths(name)
        tmp = arrays_path.with_name(arrays_path.name + ".tmp.npz")
        payload: dict[str, Any] = dict(arrays)  # Any: numpy's stub would match a key against allow_pickle
        np.savez(tmp, **payload)
        os.replace(tmp, arrays_path)
        _write_atomically(entry_path, json.dumps(jsonable(entry)))


def finished_audit(out: str | Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """The results.json of a finished audit in ``out`` made with ``config`` (same run identity), or ``None``: what
    ``reproduce --resume`` and ``audit --repeats --resume`` read back instead of rerunning."""
    path = Path(out) / "results.json"
    if not path.is_file() or not (Path(out) / "arrays.npz").is_file():
        return None
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    same = run_identity(jsonable(results.get("config", {}))) == run_identity(jsonable(config))
    return results if same else None
