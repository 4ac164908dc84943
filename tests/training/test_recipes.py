"""Training recipes: the paper recipe's initialisation and BatchNorm momentum, recipe defaults
and explicit options, the TensorFlow-profiler FLOPs of the model, and the model card's rows of
deviations from the original training."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from torch import nn

from training.errors import TrainingError
from training.model import ULWSleepNet
from training.model_card import deviations, recipe_section
from training.recipes import prepare_model, profiler_flops
from training.train import TrainConfig

SHIPPED = "models/ulw_sleepnet/config.json"


def _kernels(model):
    return [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def test_paper_recipe_initialises_as_keras_and_sets_keras_bn_momentum():
    torch.manual_seed(0)
    model = prepare_model(ULWSleepNet(), "glorot", 0.01)
    for m in _kernels(model):
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight)
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert m.weight.abs().max() <= bound
        if m.weight.numel() > 1000:  # uniform in +-bound: std bound / sqrt(3)
            assert m.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)
        assert m.bias is None or not m.bias.any()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(m.momentum == 0.01 for m in bns)
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) and not m.bias.any() for m in bns)
    # Dense 128 -> 64: PyTorch's default bound is 1/sqrt(128), half of Glorot's sqrt(6/192)
    assert model.head[1].weight.abs().max() > 1 / math.sqrt(128)


def test_project_recipe_leaves_the_model_as_built():
    torch.manual_seed(0)
    built = ULWSleepNet().state_dict()
    torch.manual_seed(0)
    model = prepare_model(ULWSleepNet(), "torch", 0.1)
    assert all(torch.equal(built[k], v) for k, v in model.state_dict().items())
    assert any(m.bias.any() for m in _kernels(model) if m.bias is not None)


def test_recipe_sets_defaults_and_explicit_options_override_it(tmp_path):
    assert TrainConfig.from_file(None) == TrainConfig()
    paper = TrainConfig.from_file(None, recipe="paper")
    assert (paper.batch_size, paper.epochs, paper.select, paper.init, paper.bn_momentum) == (
        32,
        50,
        "acc",
        "glorot",
        0.01,
    )
    assert paper.lr == 1e-3 and paper.restart_steps == 10 and not paper.class_weights
    file = tmp_path / "options.json"
    file.write_text(json.dumps({"recipe": "paper", "batch_size": 64, "epochs": 7}))
    cfg = TrainConfig.from_file(file, epochs=3)
    assert (cfg.recipe, cfg.batch_size, cfg.epochs, cfg.init) == ("paper", 64, 3, "glorot")
    with pytest.raises(TrainingError, match="--recipe keras: expected one of project, paper"):
        TrainConfig.from_file(None, recipe="keras")
    with pytest.raises(TrainingError, match="select 'f1'"):
        TrainConfig(select="f1")


def test_profiler_flops_of_the_four_channel_model():
    fused = profiler_flops(ULWSleepNet())
    assert fused["conv_matmul"] == 2 * 3_498_352
    # one per element: bias adds of the 12 pointwise convolutions (4 rows) and 2 dense layers
    per_row = 8 * (3000 + 1500 * 2 + 750) + 16 * (750 + 375 * 2 + 188) + 32 * (188 + 94 * 2 + 47)
    assert fused["bias_add"] == 4 * per_row + 64 + 5
    assert fused["max_pool"] == 2 * 4 * (8 * (1500 + 750) + 16 * (375 + 188) + 32 * (94 + 47))
    assert fused["total"] == 7_675_198 and fused["batchnorm"] == 0
    unfused = profiler_flops(ULWSleepNet(), fused_batchnorm=False)
    assert unfused["total"] == 8_180_062
    assert fused["total"] < 7.89e6 < unfused["total"]  # the paper's figure lies in between


def test_model_card_rows_follow_the_recorded_config():
    with open(SHIPPED) as f:
        shipped = json.load(f)  # recorded before the recipe options existed: project defaults
    rows = {what: (orig, ours, why) for what, orig, ours, why in deviations(shipped)}
    assert rows["batch"][:2] == ("32", "128") and "compute budget" in rows["batch"][2]
    assert rows["epochs"][1] == "12" and "best epoch 9 of 12" in rows["epochs"][2]
    assert "macro-F1" in rows["checkpoint"][1] and "ignores N1" in rows["checkpoint"][2]
    assert "shipped model" in rows["initialisation"][2] and "BatchNorm momentum" in rows
    assert "raw microvolts" in rows["input"][0] and "00, 01, 02, 03" in rows["folds"][1]
    assert "architecture" not in rows

    paper = copy.deepcopy(shipped)
    paper["train_config"] = TrainConfig.from_file(None, recipe="paper", epochs=5).__dict__
    rows = {what: (orig, ours, why) for what, orig, ours, why in deviations(paper)}
    assert not {"batch", "initialisation", "BatchNorm momentum"} & set(rows)
    assert rows["epochs"] == ("50", "5", "set for this run (option `epochs`)")
    assert rows["checkpoint"][1] == "best epoch by accuracy on the validation subjects"
    assert {"input", "folds"} <= set(rows)
    section = "\n".join(recipe_section(paper))
    assert "7,675,198" in section and "| epochs | 50 | 5 |" in section


def test_shipped_model_card_lists_the_deviations_of_its_config():
    # the card is written by hand around a generated section: it must follow config.json
    config = json.loads(open(SHIPPED).read())
    card = open("models/ulw_sleepnet/MODEL_CARD.md").read()
    assert "\n".join(recipe_section(config)) in card
    assert config["data_provenance"]["data"] == "simulated"
