"""LiRA's logit-scaled confidence phi = log p_y - log(sum_{i != y} p_i), pinned to its closed form far past the
margin (about 37) where p_y rounds to 1 in float64."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from labelleak.attacks.lira import logit_confidence, logit_confidence_from_logits

MARGINS = (5.0, 20.0, 40.0, 80.0)


def _cases() -> list[tuple[list[float], int, float]]:
    """Logits, label and the exact phi: z_y - log sum_{i != y} exp(z_i), by hand."""
    cases = []
    for m in MARGINS:
        cases.append(([m, 0.0], 0, m))  # two classes: phi is the margin itself
        cases.append(([0.0, m, 0.0, 0.0, 0.0], 1, m - math.log(4)))  # four equal rivals
        others = (-1.0, 0.5, 2.0)
        rest = math.log(sum(math.exp(o) for o in others))
        cases.append(([*others[:2], m + 2.0, others[2]], 2, m + 2.0 - rest))
    return cases


@pytest.mark.parametrize("logits,label,want", _cases())
def test_phi_from_logits_is_exact_at_every_margin(logits, label, want):
    z, y = torch.tensor([logits], dtype=torch.float64), torch.tensor([label])
    assert logit_confidence_from_logits(z, y)[0] == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("logits,label,want", _cases())
def test_phi_from_served_probabilities_is_exact_at_every_margin(logits, label, want):
    z, y = torch.tensor([logits], dtype=torch.float64), torch.tensor([label])
    assert logit_confidence(torch.softmax(z, 1), y)[0] == pytest.approx(want, abs=1e-9)
    # a target that serves float32 scores: its other classes still hold their digits (exp(-80) is a normal float32)
    served32 = torch.softmax(z.float(), 1)
    assert logit_confidence(served32, y)[0] == pytest.approx(want, abs=1e-5)


def test_batched_rows_keep_their_own_values_and_zero_rest_is_clamped_not_nan():
    cases = _cases()
    z = torch.tensor([c[0] + [0.0] * (5 - len(c[0])) for c in cases if len(c[0]) == 5], dtype=torch.float64)
    y = torch.tensor([c[1] for c in cases if len(c[0]) == 5])
    want = np.array([c[2] for c in cases if len(c[0]) == 5])
    np.testing.assert_allclose(logit_confidence_from_logits(z, y), want, atol=1e-12)
    np.testing.assert_allclose(logit_confidence(torch.softmax(z, 1), y), want, atol=1e-9)
    # the other classes underflowed to exactly 0 in the served scores: the clamp, finite, not inf or nan
    phi = logit_confidence(torch.tensor([[1.0, 0.0]], dtype=torch.float64), torch.tensor([0]))
    assert phi[0] == pytest.approx(-math.log(1e-300))
