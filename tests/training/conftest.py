"""Training tests' fixtures: a small simulated cohort and one short training run on it, shared
by the training, evaluation and fine-tuning tests (training takes most of their time); and a
model with the BatchNorm state of a trained one."""

from __future__ import annotations

import pytest
import torch

from sleepdata.stages import N1, N2, N3, REM, W
from training.model import ULWSleepNet
from training.train import TrainConfig, run

from ..conftest import write_pair

NIGHT = [W] * 30 + [N1] * 10 + [N2] * 30 + [N3] * 25 + [REM] * 25 + [W] * 10


@pytest.fixture(scope="session")
def cohort(tmp_path_factory):
    """Five simulated subjects (subjects 0-3 with two nights, 4 with one), 130 epochs a night."""
    folder = tmp_path_factory.mktemp("cohort")
    for subject in range(5):
        for night in (1, 2) if subject < 4 else (1,):
            stages = NIGHT if night == 1 else NIGHT[::-1]
            write_pair(folder, stages, name=f"SC40{subject}{night}E", seed=subject)
    return folder


@pytest.fixture(scope="session")
def short_run(cohort, tmp_path_factory):
    """12 epochs on subjects 3 and 4, validated on 2, tested on 0 and 1: (folder, result)."""
    out = tmp_path_factory.mktemp("short")
    cfg = TrainConfig(epochs=12, batch_size=32, seed=0)
    result = run(
        cohort,
        out / "run",
        cfg,
        test_subjects=["subject-00", "subject-01"],
        val_subjects=["subject-02"],
        cache_dir=out / "cache",
    )
    return out, result


def bn_randomised(model: ULWSleepNet, seed: int = 0) -> ULWSleepNet:
    """Non-trivial BatchNorm statistics and gammas, as a trained model has."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.1)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()
