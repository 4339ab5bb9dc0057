"""A persistent journal of answered queries: repeated queries cost nothing, and interrupted runs resume.

Every answered sample is stored under a 64-bit content hash of its float32 values. Because labelleak's attacks
are deterministic given their seed and the oracle's answers, re-running an interrupted attack with the journal
replays every query it had already made from disk and continues from where it stopped, with exactly the same
scores and query counts. The journal is a SQLite file, committed at regular intervals (a hard kill loses at most
the answers of the last interval, which are simply asked again).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np
import torch

from labelleak.oracle.base import LabelOracle
from labelleak.rng import mix64

_SQL_CHUNK = 900  # SQLite's default limit on host parameters is 999


def row_hashes(x: torch.Tensor) -> torch.Tensor:
    """One 64-bit hash per row of ``x`` (any shape (N, ...)), from its float32 bit patterns and positions."""
    flat = x.reshape(len(x), -1).to(torch.float32).contiguous()
    bits = flat.view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    pos = mix64(torch.arange(flat.shape[1], dtype=torch.int64) + 0x51A3)
    return mix64(mix64(bits ^ pos[None, :]).sum(dim=1) + flat.shape[1])


class CachedOracle(LabelOracle):
    """Wraps any oracle with an on-disk journal; counts every sample asked (``queries``) and, apart, the ones
    that reached the inner oracle (``inner.queries``) and the cache hits (``hits``)."""

    def __init__(self, inner: LabelOracle, path: str | Path, *, commit_every: float = 1.0,
                 lookup: bool = True) -> None:
        super().__init__(input_shape=inner.input_shape, n_classes=inner.n_classes, bounds=inner.bounds,
                         batch_size=max(inner.batch_size, 1 << 16), max_queries=inner.max_queries)
        self.inner = inner
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path))
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS answers (hash INTEGER PRIMARY KEY, label INTEGER NOT NULL)")
        self._db.commit()
        self.commit_every = commit_every
        # ``lookup=False`` only records answers (no read-back): for a fresh run against a cheap in-process target,
        # where a repeated query costs less than looking it up; a resumed run reads the journal back
        self.lookup = lookup or len(self) > 0
        self._last_commit = time.monotonic()
        self.hits = 0

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def _lookup(self, hashes: np.ndarray) -> np.ndarray:
        """Stored labels for ``hashes`` (-1 where unknown), matched with a sorted search, not a Python loop."""
        rows: list[tuple[int, int]] = []
        unique = np.unique(hashes).tolist()
        for i in range(0, len(unique), _SQL_CHUNK):
            part = unique[i:i + _SQL_CHUNK]
            rows += self._db.execute(f"SELECT hash, label FROM answers WHERE hash IN ({','.join('?' * len(part))})",
                                     part).fetchall()
        labels = np.full(len(hashes), -1, dtype=np.int64)
        if rows:
            table = np.asarray(rows, dtype=np.int64)
            table = table[np.argsort(table[:, 0])]
            pos = np.clip(np.searchsorted(table[:, 0], hashes), 0, len(table) - 1)
            hit = table[pos, 0] == hashes
            labels[hit] = table[pos[hit], 1]
        return labels

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        hashes = row_hashes(x).numpy()
        labels = self._lookup(hashes) if self.lookup else np.full(len(x), -1, dtype=np.int64)
        missing = np.flatnonzero(labels < 0)
        self.hits += len(x) - len(missing)
        if len(missing):
            answers = self.inner.predict_labels(x[torch.from_numpy(missing)]).numpy()
            labels[missing] = answers
            self._db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?)",
                                 zip(hashes[missing].tolist(), answers.tolist()))
            if time.monotonic() - self._last_commit >= self.commit_every:
                self.flush()
        return torch.from_numpy(labels)

    def flush(self) -> None:
        """Commit the answers gathered so far."""
        self._db.commit()
        self._last_commit = time.monotonic()

    def close(self) -> None:
        self.flush()
        self._db.close()
