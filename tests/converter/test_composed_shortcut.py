"""The composed shortcut stream (converter.keras_mirror.composed_shortcut): one kernel-1 unit of
stride 4 equal to the trained two units, for the shipped model and for pruned widths (torch
only: no conversion)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from converter.keras_mirror import composed_shortcut
from training.model import ModelConfig, ULWSleepNet, load_model

from ..conftest import REPO


def _composed(block, x: torch.Tensor) -> np.ndarray:
    """The one unit applied to x (batch, features, rows, time), in float64."""
    d, w, b = composed_shortcut(block)
    xs = x.detach().double().numpy()[..., ::4] * d[None, :, None, None]
    return np.einsum("oc,bcrt->bort", w, xs) + b[None, :, None, None]


@pytest.mark.parametrize("source", ["shipped", "pruned"])
def test_one_unit_equals_the_two_trained_units(source):
    torch.manual_seed(3)
    if source == "shipped":
        model, _ = load_model(REPO / "models" / "ulw_sleepnet")
    else:  # a pruned variant's widths: inner and output widths differ
        model = ULWSleepNet(ModelConfig(widths=(6, 12, 20), inner_widths=(5, 9, 17)))
        for p in model.parameters():
            torch.nn.init.normal_(p, std=0.5)
    model.eval()
    x = torch.randn(2, 1, 4, 3000)
    with torch.no_grad():
        for block in model.extractor:
            want = block.shortcut(x).double().numpy()
            got = _composed(block, x)
            assert got.shape == want.shape
            scale = np.abs(want).max()
            assert np.abs(got - want).max() <= 1e-5 * max(scale, 1.0)
            x = block(x)


def test_composition_is_not_a_copy_of_either_unit():
    """The composed weights mix both units: changing the second unit's scales changes them."""
    model, _ = load_model(REPO / "models" / "ulw_sleepnet")
    block = model.extractor[0]
    _, w, b = composed_shortcut(block)
    with torch.no_grad():
        block.shortcut[1][0].weight.mul_(2.0)
    _, w2, b2 = composed_shortcut(block)
    np.testing.assert_allclose(w2, 2 * w, rtol=1e-12)
    assert not np.allclose(b2, b)
