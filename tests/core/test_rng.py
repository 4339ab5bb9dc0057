"""Content-keyed helpers: a sample's result must not depend on where it sits in its batch."""

from __future__ import annotations

import numpy as np
import torch

from labelleak.models.training import predict_logits
from labelleak.rng import content_keys, in_content_order


def test_in_content_order_gives_each_row_the_same_place_whatever_the_input_order():
    x = torch.randn(12, 5, generator=torch.Generator().manual_seed(0))
    perm = torch.from_numpy(np.random.default_rng(1).permutation(len(x)))

    def position_dependent(rows: torch.Tensor) -> torch.Tensor:  # a kernel whose rounding depends on the row
        return rows.sum(1) + torch.arange(len(rows), dtype=rows.dtype) * 1e-3

    plain_a, plain_b = position_dependent(x)[perm], position_dependent(x[perm])
    assert not torch.equal(plain_a, plain_b)  # the fixture really depends on the position
    torch.testing.assert_close(
        in_content_order(x[perm], position_dependent), in_content_order(x, position_dependent)[perm], rtol=0, atol=0
    )
    assert torch.equal(content_keys(x[perm]), content_keys(x)[perm])


def test_predict_logits_do_not_depend_on_the_order_of_the_samples():
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    x = torch.randn(37, 64, generator=torch.Generator().manual_seed(2))
    perm = torch.from_numpy(np.random.default_rng(3).permutation(len(x)))
    assert torch.equal(predict_logits(model, x[perm], batch_size=8), predict_logits(model, x, batch_size=8)[perm])
