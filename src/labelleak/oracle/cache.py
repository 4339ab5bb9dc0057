"""A persistent journal of answered queries: repeated queries cost nothing, and interrupted runs resume.

Every answered sample is stored under a 64-bit content hash of its float32 values. Because labelleak's attacks
are deterministic given their seed and the oracle's answers, re-running an interrupted attack with the journal
replays every query it had already made from disk and continues from where it stopped, with exactly the same
scores and query counts. The journal is an append-only binary file of (hash, label) int64 pairs, flushed at
regular intervals; a hard kill loses at most the answers of the last interval (asked again on resume), and a torn
last record is ignored when the file is read back.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from labelleak.oracle.base import LabelOracle
from labelleak.rng import mix64

_RECORD = np.dtype([("hash", "<i8"), ("label", "<i8")])


def row_hashes(x: torch.Tensor) -> torch.Tensor:
    """One 64-bit hash per row of ``x`` (any shape (N, ...)), from its float32 bit patterns and positions."""
    flat = x.reshape(len(x), -1).to(torch.float32).contiguous()
    bits = flat.view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    pos = mix64(torch.arange(flat.shape[1], dtype=torch.int64) + 0x51A3)
    return mix64(mix64(bits ^ pos[None, :]).sum(dim=1) + flat.shape[1])


def read_journal(path: str | Path) -> np.ndarray:
    """The whole (hash, label) records of a journal file; empty when missing, a torn last record dropped."""
    p = Path(path)
    raw = p.read_bytes() if p.is_file() else b""
    return np.frombuffer(raw[: len(raw) - len(raw) % _RECORD.itemsize], dtype=_RECORD).copy()


class _Index:
    """Sorted (hash, label) arrays plus a small unsorted tail, merged when the tail grows."""

    def __init__(self, records: np.ndarray) -> None:
        self._reset(records)

    def _reset(self, records: np.ndarray) -> None:
        order = np.argsort(records["hash"], kind="stable")
        self.keys, self.labels = records["hash"][order], records["label"][order]
        self.tail_keys: list[np.ndarray] = []
        self.tail_labels: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.keys) + sum(len(t) for t in self.tail_keys)

    def add(self, keys: np.ndarray, labels: np.ndarray) -> None:
        self.tail_keys.append(keys)
        self.tail_labels.append(labels)
        if sum(len(t) for t in self.tail_keys) > max(4096, len(self.keys) // 4):
            merged = np.empty(len(self), dtype=_RECORD)
            merged["hash"] = np.concatenate([self.keys, *self.tail_keys])
            merged["label"] = np.concatenate([self.labels, *self.tail_labels])
            self._reset(merged)

    def get(self, hashes: np.ndarray) -> np.ndarray:
        """Labels for ``hashes`` (-1 where unknown), by sorted search, not a Python loop over samples."""
        out = np.full(len(hashes), -1, dtype=np.int64)
        for keys, labels in ((self.keys, self.labels), *zip(self.tail_keys, self.tail_labels)):
            if len(keys) == 0:
                continue
            if keys is not self.keys:
                order = np.argsort(keys)
                keys, labels = keys[order], labels[order]
            pos = np.clip(np.searchsorted(keys, hashes), 0, len(keys) - 1)
            hit = keys[pos] == hashes
            out[hit] = labels[pos[hit]]
        return out


class CachedOracle(LabelOracle):
    """Wraps any oracle with an on-disk journal; counts every sample asked (``queries``) and, apart, the ones
    that reached the inner oracle (``inner.queries``) and the cache hits (``hits``)."""

    def __init__(
        self,
        inner: LabelOracle,
        path: str | Path,
        *,
        commit_every: float = 1.0,
        lookup: bool = True,
        seed: Iterable[str | Path] = (),
    ) -> None:
        super().__init__(
            input_shape=inner.input_shape,
            n_classes=inner.n_classes,
            bounds=inner.bounds,
            batch_size=max(inner.batch_size, 1 << 16),
            max_queries=inner.max_queries,
        )
        self.inner = inner
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        raw = self.path.read_bytes() if self.path.is_file() else b""
        whole = len(raw) - len(raw) % _RECORD.itemsize  # a torn last record is dropped
        # ``seed``: other journals read back but never written (the shards of a distributed run, see
        # labelleak.distributed): answers found there are not asked again, new answers go to ``path`` only
        others = [read_journal(s) for s in seed if Path(s) != self.path]
        self._index = _Index(np.concatenate([np.frombuffer(raw[:whole], dtype=_RECORD), *others]))
        self._file = self.path.open("r+b" if self.path.is_file() else "wb")
        self._file.seek(whole)
        self._file.truncate()
        self._pending: list[np.ndarray] = []
        self.commit_every = commit_every
        self._last_commit = time.monotonic()
        # ``lookup=False`` only records answers (no read-back): for a fresh run against a cheap in-process target,
        # where a repeated query costs less than looking it up; a resumed run reads the journal back
        self.lookup = lookup or len(self._index) > 0
        self.hits = 0

    def __len__(self) -> int:
        return len(self._index) if self.lookup else len(self._index) + sum(len(p) for p in self._pending)

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        hashes = row_hashes(x).numpy()
        labels = self._index.get(hashes) if self.lookup else np.full(len(x), -1, dtype=np.int64)
        missing = np.flatnonzero(labels < 0)
        self.hits += len(x) - len(missing)
        if len(missing):
            answers = self.inner.predict_labels(x[torch.from_numpy(missing)]).numpy()
            labels[missing] = answers
            rec = np.empty(len(missing), dtype=_RECORD)
            rec["hash"], rec["label"] = hashes[missing], answers
            self._pending.append(rec)
            if self.lookup:
                self._index.add(rec["hash"], rec["label"])
            if time.monotonic() - self._last_commit >= self.commit_every:
                self.flush()
        return torch.from_numpy(labels)

    def flush(self) -> None:
        """Append the answers gathered since the last flush to the journal file."""
        for rec in self._pending:
            self._file.write(rec.tobytes())
        self._pending.clear()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._last_commit = time.monotonic()

    def close(self) -> None:
        if not self._file.closed:
            self.flush()
            self._file.close()
