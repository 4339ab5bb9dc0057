"""Randomness as an argument.

Two tools live here:

* :func:`check_seed` turns ``int | numpy.random.Generator | None`` into a NumPy generator (like scikit-learn's
  ``check_random_state``), and :func:`torch_generator` gives a seeded ``torch.Generator``; the global RNGs are
  never touched.
* :class:`KeyedStream` is a counter-based generator: every number is a hash of ``(seed, sample key, step, index)``.
  Attacks use it so that a candidate's random directions depend only on the seed and on the candidate itself,
  not on its position in the batch, on which other candidates are still active, or on how work is chunked.
  That makes scores invariant to batch order and makes checkpoint/resume exact.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from labelleak.errors import InvalidInputError

SeedLike = int | np.random.Generator | None

_MASK32 = 0xFFFFFFFF


def check_seed(seed: SeedLike) -> np.random.Generator:
    """Return a NumPy ``Generator`` for ``seed`` (``None`` means fresh entropy)."""
    if seed is None or isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return np.random.default_rng(seed)
    if isinstance(seed, np.random.Generator):
        return seed
    raise InvalidInputError(f"seed: expected an int, a numpy Generator or None, got {type(seed).__name__}")


def torch_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed``."""
    gen = torch.Generator()
    gen.manual_seed(int(seed) & 0xFFFF_FFFF_FFFF)
    return gen


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
    flat = x.reshape(len(x), -1).to(torch.float32).contiguous()
    bits = flat.view(torch.int32).to(torch.int64) & _MASK32
    pos = torch.arange(flat.shape[1], dtype=torch.int64)
    mixed = hash32(bits ^ hash32(pos + 0x9E3779B9))
    return hash32(mixed.sum(dim=1) & _MASK32)


class KeyedStream:
    """Counter-based random numbers: ``uniform(keys, step, n)`` is a pure function of its arguments.

    ``keys`` has shape (B,) with one key per row; ``step`` names the draw (iteration, phase); the result has
    shape (B, n). The same (seed, key, step) always gives the same row, whatever else is in the batch.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def _bits(self, keys: torch.Tensor, step: int, n: int, lane: int) -> torch.Tensor:
        base = hash32(keys.to(torch.int64) ^ hash32(torch.tensor(self.seed * 4 + lane, dtype=torch.int64)))
        base = hash32(base + (int(step) * 0x85EBCA6B & _MASK32))  # (B,)
        idx = torch.arange(n, dtype=torch.int64)
        return hash32(base[:, None] ^ hash32(idx + 0x632BE5AB)[None, :])  # (B, n)

    def uniform(self, keys: torch.Tensor, step: int, n: int, lane: int = 0) -> torch.Tensor:
        """Uniform floats in (0, 1), shape (B, n), float32."""
        bits = self._bits(keys, step, n, lane) >> 8  # 24 bits fit float32 exactly
        return (bits.to(torch.float32) + 0.5) * (1.0 / 16777216.0)

    def normal(self, keys: torch.Tensor, step: int, n: int) -> torch.Tensor:
        """Standard normal floats, shape (B, n), float32 (Box-Muller on two independent lanes)."""
        u1 = self.uniform(keys, step, n, lane=1)
        u2 = self.uniform(keys, step, n, lane=2)
        return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * math.pi) * u2)
