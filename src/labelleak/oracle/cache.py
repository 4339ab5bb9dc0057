"""A persistent journal of answered queries: repeated queries cost nothing, and interrupted runs resume.

Every answer is stored under the SHA-256 digest of the exact float32 bytes it was asked for, prefixed by their
shape and dtype, so two different inputs cannot share a key (a 64-bit hash would, at 10^9 queries, give a silent
wrong label with a few percent probability). Because labelleak's attacks are deterministic given their seed and
the oracle's answers, re-running an interrupted attack replays every query it had already made from disk and
continues from where it stopped, with exactly the same scores and query counts.

Two layouts, named by the file's 8-byte header:

* ``rows``: one (digest, label) record per sample. Any repeated sample is found, whatever batch it comes in:
  the layout for remote targets, where a query costs money and a digest per sample is cheap next to a request.
* ``batches``: one record per batch (digest of the whole batch, its size, its labels). One SHA-256 pass per batch
  instead of one call per sample keeps the journal's overhead small for fast in-process targets; a resumed attack
  sends the same batches in the same order, so the replay finds them all.

The file is append-only. In front of a paid target (a remote oracle, see :meth:`LabelOracle.attach_journal`) it
also counts what was *sent*: before every attempt, retries included, a record of how many samples go out is written,
and each request's answers are written the moment they arrive, before the attack sees them. Both reach the operating
system at once (a kill -9 of the process loses nothing written) and are fsync'd at most ``commit_every`` seconds
apart (a crash of the machine loses at most that). A hard kill therefore re-buys on resume only the requests that
were in flight (at most ``concurrency`` requests of the request batch size), and those are counted as sent twice, so
a cap on samples sent holds across interruptions (:attr:`CachedOracle.spent_before`). In front of an in-process
target, answers are buffered and written every ``commit_every`` seconds: a hard kill loses at most that interval
(asked again, for free, on resume). A torn last record is ignored when the file is read back. Journals written by
labelleak before the SHA-256 keys (no header) are refused with a message, never misread.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch

from labelleak.errors import DataFileError
from labelleak.oracle.base import LabelOracle

Layout = Literal["rows", "batches"]
_MAGIC: dict[str, bytes] = {"rows": b"LLJ2ROWS", "batches": b"LLJ2BTCH"}
_ROW = np.dtype([("key", "S32"), ("label", "<i8")])
_BATCH_HEAD = 40  # 32-byte digest + int64 number of labels, then that many int64 labels
# the key of a record that counts samples sent (its label, or its one batch label, is the count): no SHA-256 digest
SENT_KEY = b"LLJ2SENT" + bytes(24)


def _prefix(shape: tuple[int, ...]) -> bytes:
    return f"float32{list(shape)}".encode()


def row_digests(x: torch.Tensor) -> np.ndarray:
    """SHA-256 of each row of ``x`` (N, ...) as float32 bytes, prefixed by the row's shape: array of S32."""
    flat = x.to(torch.float32).contiguous().numpy().reshape(len(x), -1)
    prefix, width = _prefix(tuple(x.shape[1:])), flat.shape[1] * 4
    buf = memoryview(flat.tobytes())
    sha = hashlib.sha256
    return np.array([sha(prefix + buf[i : i + width]).digest() for i in range(0, len(buf), width)], dtype="S32")


def batch_digest(x: torch.Tensor) -> bytes:
    """SHA-256 of the whole batch ``x`` as float32 bytes, prefixed by its shape (one pass, no per-row calls)."""
    arr = x.to(torch.float32).contiguous().numpy()
    h = hashlib.sha256(_prefix(tuple(x.shape)))
    h.update(arr.data)  # the array's own buffer, C-contiguous: no copy
    return h.digest()


class _RowIndex:
    """Sorted (digest, label) arrays plus a small unsorted tail, merged when the tail grows."""

    def __init__(self, records: np.ndarray) -> None:
        self.tail: list[np.ndarray] = []
        self._load(records)

    def _load(self, records: np.ndarray) -> None:
        order = np.argsort(records["key"], kind="stable")
        self.keys, self.labels = records["key"][order], records["label"][order]
        self.tail = []

    def __len__(self) -> int:
        return len(self.keys) + sum(len(t) for t in self.tail)

    def add(self, records: np.ndarray) -> None:
        self.tail.append(records)
        if sum(len(t) for t in self.tail) > max(4096, len(self.keys) // 4):
            merged = np.empty(len(self), dtype=_ROW)
            merged["key"] = np.concatenate([self.keys, *(t["key"] for t in self.tail)])
            merged["label"] = np.concatenate([self.labels, *(t["label"] for t in self.tail)])
            self._load(merged)

    def get(self, keys: np.ndarray) -> np.ndarray:
        """Labels for ``keys`` (-1 where unknown), by sorted search, not a Python loop over samples."""
        out = np.full(len(keys), -1, dtype=np.int64)
        parts = [(self.keys, self.labels)]
        for t in self.tail:
            order = np.argsort(t["key"])
            parts.append((t["key"][order], t["label"][order]))
        for sorted_keys, labels in parts:
            if len(sorted_keys) == 0:
                continue
            pos = np.clip(np.searchsorted(sorted_keys, keys), 0, len(sorted_keys) - 1)
            hit = sorted_keys[pos] == keys
            out[hit] = labels[pos[hit]]
        return out


class Journal(NamedTuple):
    """A journal file as read back: its layout, answers, samples sent, and the length of its whole records."""

    layout: Layout
    rows: np.ndarray  # (digest, label) records of the rows layout
    batches: dict[bytes, np.ndarray]  # batch digest -> labels, of the batches layout
    sent: int  # samples sent to the target, every attempt counted (0 where sends were not journaled)
    whole: int  # bytes of whole records after the header (a torn last record is left out)

    @property
    def answers(self) -> int:
        return len(self.rows) + sum(len(v) for v in self.batches.values())


def _read_batches(body: bytes) -> tuple[dict[bytes, np.ndarray], int, int]:
    """Batch records from ``body``, the samples its sent records count, and the length of its whole records."""
    found: dict[bytes, np.ndarray] = {}
    pos = sent = 0
    while pos + _BATCH_HEAD <= len(body):
        n = int(np.frombuffer(body, dtype="<i8", count=1, offset=pos + 32)[0])
        end = pos + _BATCH_HEAD + 8 * n
        if n < 0 or end > len(body):
            break
        labels = np.frombuffer(body, dtype="<i8", count=n, offset=pos + _BATCH_HEAD).copy()
        if body[pos : pos + 32] == SENT_KEY:
            sent += int(labels.sum())
        else:
            found[body[pos : pos + 32]] = labels
        pos = end
    return found, sent, pos


def read_journal(path: str | Path) -> Journal:
    """A journal file as a :class:`Journal`; a missing or empty file reads as an empty ``rows`` journal."""
    p = Path(path)
    raw = p.read_bytes() if p.is_file() else b""
    if not raw:
        return Journal("rows", np.empty(0, dtype=_ROW), {}, 0, 0)
    by_magic: dict[bytes, Layout] = {m: k for k, m in _MAGIC.items()}  # type: ignore[misc]
    if raw[:8] not in by_magic:
        raise DataFileError(
            f"{p}: a query journal in an older format (64-bit keys) or not a journal; delete it, or rerun with --fresh"
        )
    layout, body = by_magic[raw[:8]], raw[8:]
    if layout == "rows":
        whole = len(body) - len(body) % _ROW.itemsize
        records = np.frombuffer(body[:whole], dtype=_ROW)
        is_sent = records["key"] == SENT_KEY
        return Journal(layout, records[~is_sent].copy(), {}, int(records["label"][is_sent].sum()), whole)
    batches, sent, whole = _read_batches(body)
    return Journal(layout, np.empty(0, dtype=_ROW), batches, sent, whole)


def _sent_record(layout: Layout, n: int) -> bytes:
    if layout == "rows":
        rec = np.empty(1, dtype=_ROW)
        rec["key"], rec["label"] = SENT_KEY, n
        return rec.tobytes()
    return SENT_KEY + np.int64(1).tobytes() + np.int64(n).tobytes()


class CachedOracle(LabelOracle):
    """Wraps any oracle with an on-disk journal; counts every sample asked (``queries``) and, apart, the ones
    that reached the inner oracle (``inner.queries``) and the cache hits (``hits``).

    ``lookup=False`` only records answers (no read-back) in the ``batches`` layout: for a fresh run against a
    cheap in-process target, where a repeated query costs less than looking it up. ``lookup=True`` uses the
    ``rows`` layout. An existing journal keeps its own layout, and is always read back. The inner oracle's
    ``max_queries`` is its own: samples answered from the journal do not count against it. An inner oracle that
    pays per request (a remote target) reports each send and each answer here as it happens (see the module notes);
    :attr:`spent_before` is then what earlier runs sent, retries included.

    ``seed`` names other journals that are read back but never written (the shards of a distributed run, see
    :mod:`labelleak.distributed`): answers found there are not asked again, in whichever layout they were kept
    (a ``rows`` journal answers any repeated sample, a ``batches`` one the same batches); new answers go to
    ``path`` only.
    """

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
        )
        self.inner = inner
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        exists = self.path.is_file() and self.path.stat().st_size > 0
        own = read_journal(self.path)
        self.layout: Layout = own.layout if exists else ("rows" if lookup else "batches")
        self._own_samples = own.answers
        rows, self._batches = own.rows, own.batches
        # what earlier runs of this journal (and its seeds) cost the target: every sample sent, retries included,
        # where sends were journaled; a journal without sent records (an in-process target, an older release): its
        # answers
        self.spent_before = max(own.sent, own.answers)
        for other in seed:
            if Path(other) != self.path:
                more = read_journal(other)
                rows = np.concatenate([rows, more.rows])
                self._batches.update(more.batches)
                self.spent_before += more.sent
        self._rows = _RowIndex(rows)
        self._file = self.path.open("r+b" if exists else "wb")
        if not exists:
            self._file.write(_MAGIC[self.layout])
        self._file.seek(8 + own.whole)
        self._file.truncate()
        self._pending: list[bytes] = []
        self._lock = threading.Lock()  # a remote inner oracle reports from its request threads
        self.commit_every = commit_every
        self._last_commit = time.monotonic()
        self.lookup = lookup or len(self._rows) > 0 or len(self._batches) > 0
        self.hits = 0
        self._streamed = inner.attach_journal(self)  # then its answers are recorded by answered(), not _predict

    def __len__(self) -> int:
        """Samples recorded in this oracle's own journal (those still pending a flush included)."""
        return self._own_samples

    def sent(self, n: int) -> None:
        """Journal that ``n`` samples are about to be sent to the target (called by the inner oracle)."""
        self._record(_sent_record(self.layout, n), at_once=True)

    def answered(self, x: np.ndarray, labels: np.ndarray) -> None:
        """Journal one request's answers as they arrive (called by the inner oracle from its request threads).

        The ``batches`` layout keys a whole batch, which a request does not know: there ``_predict`` records it."""
        if self.layout != "rows" or len(x) == 0:
            return
        rec = np.empty(len(x), dtype=_ROW)
        rec["key"], rec["label"] = row_digests(torch.from_numpy(np.ascontiguousarray(x))), labels
        with self._lock:
            self._rows.add(rec)
            self._own_samples += len(rec)
        self._record(rec.tobytes(), at_once=True)

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        batch_key = batch_digest(x) if self.layout == "batches" or self._batches else None
        if batch_key is not None and self.lookup:
            known = self._batches.get(batch_key)
            if known is not None and len(known) == len(x):
                self.hits += len(x)
                return torch.from_numpy(known.copy())
        row_keys = row_digests(x) if self.layout == "rows" else None
        if self.lookup and len(self._rows):  # known rows: this journal's own, or a seed journal's
            row_keys = row_digests(x) if row_keys is None else row_keys
            with self._lock:
                labels = self._rows.get(row_keys)
        else:
            labels = np.full(len(x), -1, dtype=np.int64)
        missing = np.flatnonzero(labels < 0)
        self.hits += len(x) - len(missing)
        if len(missing):
            labels[missing] = self.inner.predict_labels(x[torch.from_numpy(missing)]).numpy()
        if self.layout == "rows" and len(missing) and not self._streamed:
            assert row_keys is not None
            rec = np.empty(len(missing), dtype=_ROW)
            rec["key"], rec["label"] = row_keys[missing], labels[missing]
            with self._lock:
                self._rows.add(rec)
                self._own_samples += len(missing)
            self._record(rec.tobytes())
        elif self.layout == "batches":
            assert batch_key is not None
            if self.lookup:
                self._batches[batch_key] = labels
            self._own_samples += len(labels)
            self._record(batch_key + np.int64(len(labels)).tobytes() + labels.astype("<i8").tobytes())
        return torch.from_numpy(labels)

    def _record(self, data: bytes, *, at_once: bool = False) -> None:
        """Append ``data``: handed to the operating system now if ``at_once``, else with the next commit."""
        with self._lock:
            self._pending.append(data)
            due = time.monotonic() - self._last_commit >= self.commit_every
            if at_once or due:
                self._write(sync=due)

    def _write(self, *, sync: bool) -> None:
        """Write the pending records (the lock held); ``sync`` also commits them to disk."""
        self._file.write(b"".join(self._pending))
        self._pending.clear()
        self._file.flush()
        if sync:
            os.fsync(self._file.fileno())
            self._last_commit = time.monotonic()

    def flush(self) -> None:
        """Append the answers gathered since the last flush to the journal file and commit it to disk."""
        with self._lock:
            self._write(sync=True)

    def close(self) -> None:
        if self._streamed:
            self.inner.attach_journal(None)
        with self._lock:
            if not self._file.closed:
                self._write(sync=True)
                self._file.close()
