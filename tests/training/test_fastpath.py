"""The training fast path's own pieces: its dropout draws and the allocator setting."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from training.model import Dropout


def test_dropout_keeps_one_minus_p_scaled_and_its_backward_uses_the_same_mask():
    torch.manual_seed(0)
    drop = Dropout(0.1).train()
    x = torch.ones(400_000, requires_grad=True)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.9) < 0.003  # 0.9 +- 6 binomial std
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.9))
    y.backward(torch.full_like(y, 2.0))
    assert torch.equal(x.grad != 0, kept)
    assert torch.allclose(x.grad[kept], torch.full_like(y[kept], 2 / 0.9))
    assert torch.equal(drop.eval()(x), x)


def test_dropout_masks_depend_on_the_seed_alone():
    """float32 and float64 runs of one seed drop the same elements (the fast path's float32
    training is checked against a float64 run of the layers one by one)."""
    drop = Dropout(0.3).train()
    masks = []
    for dtype in (torch.float32, torch.float64, torch.float32):
        torch.manual_seed(5)
        masks.append(drop(torch.ones(1000, dtype=dtype)) != 0)
    assert torch.equal(masks[0], masks[1]) and torch.equal(masks[0], masks[2])
    torch.manual_seed(6)
    assert not torch.equal(drop(torch.ones(1000)) != 0, masks[0])


FAULTS = """
import resource, sys, torch
from training.allocator import keep_freed_memory
from training.model import ULWSleepNet
if sys.argv[1] == "keep":
    assert keep_freed_memory()
torch.manual_seed(0)
model = ULWSleepNet().train()
x, y = torch.randn(128, 4, 3000), torch.randint(0, 5, (128,))
def step():
    torch.nn.functional.cross_entropy(model(x), y).backward()
step()  # the first step maps its memory in any case
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_training_steps_reuse_freed_memory():
    """With `keep_freed_memory` training steps on batches of 128 reuse the memory of the steps
    before more than they map and fault in afresh: without it every 49 MB activation is
    mapped and page-faulted again (about 12,000 faults each)."""

    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return int(out.stdout)

    default, keep = faults("default"), faults("keep")
    assert default > 50_000, default
    assert keep < default / 2, (keep, default)
