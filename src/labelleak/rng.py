"""Counter-based randomness keyed by sample content.

:class:`KeyedStream` is a counter-based generator: every number is a hash of ``(seed, sample key, step, index)``.
Attacks use it so that a candidate's random directions depend only on the seed and on the candidate itself,
not on its position in the batch, on which other candidates are still active, or on how work is chunked.
That makes scores invariant to batch order and makes checkpoint/resume exact. The global RNGs are never touched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

_MASK32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, const: int) -> torch.Tensor:
    """``(x * const) mod 2**32`` for 32-bit values held in int64, without int64 overflow."""
    lo, hi = const & 0xFFFF, const >> 16
    return (x * lo + ((x * hi) & 0xFFFF) * 65536) & _MASK32


def hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mixer (the "lowbias32" constants) applied elementwise to int64 tensors."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def content_keys(x: torch.Tensor) -> torch.Tensor:
    """One 32-bit key per sample (rows of ``x``), computed from its values and their positions."""
    flat = x.reshape(len(x), math.prod(x.shape[1:])).to(torch.float32).contiguous()  # (0, D) too: an empty shard
    bits = flat.view(torch.int32).to(torch.int64) & _MASK32
    pos = torch.arange(flat.shape[1], dtype=torch.int64)
    mixed = hash32(bits ^ hash32(pos + 0x9E3779B9))
    return hash32(mixed.sum(dim=1) & _MASK32)


def in_key_order(keys: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
    """``fn(rows)`` evaluated on ``rows`` sorted by ``keys`` (content keys) and put back in their order, so a model
    inside ``fn`` sees the same batch whatever the order of the candidates."""
    order = torch.sort(keys, stable=True).indices
    out = fn(rows[order])
    back = torch.empty_like(out)
    back[order] = out
    return back


def in_content_order(x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``fn`` applied to the rows of ``x`` sorted by content key, its rows put back in ``x``'s order.

    A float32 model's rounding can depend on a row's position in its batch (the matrix kernels block rows); in
    key order every sample is evaluated in the same place whatever the order of the others, so a candidate's
    score does not change when the candidates are permuted.
    """
    return in_key_order(content_keys(x), fn, x)


_M1 = -4658895280553007687  # 0xBF58476D1CE4E5B9 (splitmix64) as a signed int64
_M2 = -7723592293110705685  # 0x94D049BB133111EB
_BLOCK = 1 << 18  # elements generated at a time: temporaries stay in cache, which is 3-5x faster


def mix64(z: torch.Tensor) -> torch.Tensor:
    """The splitmix64 finaliser on int64 tensors (multiplication wraps modulo 2**64; shifts made logical)."""
    z = z * _M1
    z = z ^ ((z >> 31) & ((1 << 33) - 1))
    z = z * _M2
    return z ^ ((z >> 29) & ((1 << 35) - 1))


class KeyedStream:
    """Counter-based random numbers: ``uniform(keys, step, n)`` is a pure function of its arguments.

    ``keys`` has shape (B,) with one key per row; ``step`` names the draw (iteration, phase); the result has
    shape (B, n). The same (seed, key, step, index) always gives the same number, whatever else is in the batch,
    and ``offset`` lets a long row be produced in pieces.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def _row_base(self, keys: torch.Tensor, step: int) -> torch.Tensor:
        k = keys.to(torch.int64) & _MASK32
        h1 = hash32(k ^ hash32(torch.tensor(self.seed & _MASK32, dtype=torch.int64)))
        h2 = hash32(h1 + (int(step) * 0x85EBCA6B & _MASK32))
        return (hash32(h2 ^ 0x5BD1E995) << 32) | h2  # (B,) 64 random bits

    def _bits(self, keys: torch.Tensor, step: int, n: int, offset: int) -> torch.Tensor:
        base = self._row_base(keys, step)[:, None]
        cols = mix64(torch.arange(offset, offset + n, dtype=torch.int64) + 0x632BE59BD9B4E019)[None, :]
        return mix64(base ^ cols)  # (B, n)

    def _blocks(self, keys: torch.Tensor, n: int) -> Iterator[tuple[slice, int, int]]:
        """Yield (row slice, column start, column count) blocks of about ``_BLOCK`` elements."""
        cols = max(1, min(n, _BLOCK))
        rows = max(1, _BLOCK // cols)
        for r0 in range(0, len(keys), rows):
            for c0 in range(0, n, cols):
                yield slice(r0, r0 + rows), c0, min(cols, n - c0)

    def uniform(self, keys: torch.Tensor, step: int, n: int, *, offset: int = 0) -> torch.Tensor:
        """Uniform floats in (0, 1), shape (B, n), float32."""
        out = torch.empty(len(keys), n)
        for rs, c0, cn in self._blocks(keys, n):
            z = self._bits(keys[rs], step, cn, offset + c0)
            out[rs, c0 : c0 + cn] = (((z >> 40) & 0xFFFFFF).to(torch.float32) + 0.5) * (1.0 / 16777216.0)
        return out

    def normal(self, keys: torch.Tensor, step: int, n: int, *, offset: int = 0) -> torch.Tensor:
        """Standard normal floats, shape (B, n), float32.

        Box-Muller on the two 24-bit fields of one hash gives a pair: element ``2i`` takes the cosine branch and
        ``2i + 1`` the sine branch of pair ``i``, so each hash serves two numbers.
        """
        out = torch.empty(len(keys), n)
        first_pair = offset // 2
        n_pairs = (offset + n + 1) // 2 - first_pair
        for rs, c0, cn in self._blocks(keys, n_pairs):
            z = self._bits(keys[rs], step, cn, first_pair + c0)
            u1 = (((z >> 40) & 0xFFFFFF).to(torch.float32) + 0.5) * (1.0 / 16777216.0)
            u2 = ((z & 0xFFFFFF).to(torch.float32) + 0.5) * (1.0 / 16777216.0)
            radius, angle = torch.sqrt(-2.0 * torch.log(u1)), (2.0 * math.pi) * u2
            pairs = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=2).reshape(len(z), -1)
            lo = 2 * (first_pair + c0) - offset  # position of this block's first element in the output row
            src0, dst0 = max(0, -lo), max(0, lo)
            count = min(pairs.shape[1] - src0, n - dst0)
            out[rs, dst0 : dst0 + count] = pairs[:, src0 : src0 + count]
        return out
