"""ULW-SleepNet: the architecture of the specification, exactly."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys

import pytest
import torch

from training.model import (
    DepthwiseConv,
    ModelConfig,
    ULWSleepNet,
    count_params,
    generic_kernels,
    layer_counts,
    load_model,
    save_model,
)


def test_parameter_and_mac_counts_match_the_specification():
    model = ULWSleepNet()
    assert count_params(model) == 13_337
    rows = layer_counts(model)
    assert sum(r.macs for r in rows) == 3_498_352
    per_block = {
        b: sum(r.macs for r in rows if r.name.startswith(f"extractor.{b}.")) for b in range(3)
    }
    assert per_block == {0: 4 * 232_500, 1: 4 * 330_136, 2: 4 * 309_824}
    assert [r.macs for r in rows if r.kind == "dense"] == [8_192, 320]
    # Three channels: 5,145 + 2,048 x C parameters.
    assert count_params(ULWSleepNet(ModelConfig(n_channels=3))) == 11_289


def test_shapes_follow_the_specification():
    model = ULWSleepNet().eval()
    x = torch.randn(2, 4, 3000)
    lengths = []
    h = x.unsqueeze(1)
    for block in model.extractor:
        h = block(h)
        lengths.append(h.shape[-1])
    assert lengths == [750, 188, 47]
    assert model.features(x).shape == (2, 128)
    assert model(x).shape == (2, 5)
    assert model(x.unsqueeze(1)).shape == (2, 5)


def test_batchnorm_uses_tensorflow_epsilon():
    assert {m.eps for m in ULWSleepNet().modules() if isinstance(m, torch.nn.BatchNorm2d)} == {1e-3}


def test_fast_layers_equal_the_generic_torch_kernels():
    torch.manual_seed(0)
    model = ULWSleepNet().eval()
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(3, 4, 3000)
    fast, fast_features = model(x), model.features(x)
    with generic_kernels(model):
        assert (
            type(model.extractor[0].main[0][0]).forward
            is not model.extractor[0].main[0][0].forward.__func__
        )
        # the features, as an untrained head maps every input to about the same logits
        torch.testing.assert_close(model.features(x), fast_features, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model(x), fast, atol=1e-5, rtol=1e-5)
    assert model.extractor[0].main[0][0].forward.__func__ is DepthwiseConv.forward


@pytest.mark.parametrize(
    "config",
    [ModelConfig(), ModelConfig(widths=(8, 16, 32), inner_widths=(4, 8, 16))],
    ids=["shipped", "pruned"],
)
def test_fused_training_step_equals_the_generic_torch_kernels(config):
    """Training through the fused blocks (training/fastpath.py) in float32 computes what the
    layers compute one by one, taken in float64 as the truth: same loss (same dropout masks
    from the same seed), same gradients of every parameter and of the input, same BatchNorm
    running statistics. (torch's own float32 BatchNorm backward is the less exact of the two:
    its gradients of the first layers are off by up to a few per cent.)"""
    torch.manual_seed(0)
    model = ULWSleepNet(config).train()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    # an input off zero and off unit scale, as the batch statistics must not assume either
    x, y = 1.5 * torch.randn(8, 4, 3000) + 0.7, torch.randint(0, 5, (8,))

    def step(generic: bool, dtype: torch.dtype):
        model.load_state_dict(start)
        model.to(dtype).zero_grad()
        xg = x.to(dtype, copy=True).requires_grad_()
        torch.manual_seed(1)
        with generic_kernels(model) if generic else contextlib.nullcontext():
            loss = torch.nn.functional.cross_entropy(model(xg), y)
        loss.backward()
        grads = {n: p.grad.double() for n, p in model.named_parameters()}
        state = {
            k: v.double() if v.is_floating_point() else v for k, v in model.state_dict().items()
        }
        return loss.double(), {**grads, "input": xg.grad.double()}, state

    loss, grads, state = step(generic=False, dtype=torch.float32)
    want_loss, want, want_state = step(generic=True, dtype=torch.float64)
    torch.testing.assert_close(loss, want_loss, rtol=1e-5, atol=1e-6)
    scale = torch.cat([g.flatten() for g in want.values()]).norm()
    for name, g in want.items():
        if ".main." in name and name.endswith(".1.bias"):
            # a pointwise bias before a BatchNorm has a zero gradient (the batch mean cancels
            # it): rounding noise at most
            assert grads[name].norm() <= 1e-4 * scale, name
        else:
            assert (grads[name] - g).norm() <= 1e-4 * g.norm(), name
    for name, v in want_state.items():
        torch.testing.assert_close(state[name], v, rtol=1e-5, atol=1e-6)


def test_hooked_layers_run_one_by_one():
    """Forward hooks on a layer (as `layer_counts` uses) see that layer run."""
    model = ULWSleepNet().eval()
    seen = []
    layer = model.extractor[0].shortcut[1][1]
    handle = layer.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    model(torch.zeros(1, 4, 3000))
    handle.remove()
    assert seen == [torch.Size([1, 8, 4, 750])]


def test_channels_share_one_extractor():
    """Swapping two input channels swaps their feature blocks: same weights for every row."""
    model = ULWSleepNet().eval()
    x = torch.randn(1, 4, 3000)
    f = model.features(x).view(4, 32)
    g = model.features(x[:, [1, 0, 2, 3]]).view(4, 32)
    torch.testing.assert_close(g[[1, 0, 2, 3]], f)


def test_widths_build_pruned_variants_and_round_trip_through_a_folder(tmp_path):
    cfg = ModelConfig(widths=(4, 8, 12), inner_widths=(3, 6, 10))
    model = ULWSleepNet(cfg).eval()
    assert count_params(model) < 13_337
    save_model(tmp_path, model, {"note": "pruned"})
    loaded, config = load_model(tmp_path)
    assert loaded.config == cfg and config["note"] == "pruned"
    x = torch.randn(2, 4, 3000)
    torch.testing.assert_close(loaded(x), model(x))


def test_summary_cli_prints_json():
    out = subprocess.run(
        [sys.executable, "-m", "training", "summary", "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    s = json.loads(out)
    assert (s["params"], s["macs"]) == (13_337, 3_498_352)
    assert len(s["layers"]) == sum(1 for r in s["layers"] if r["kind"]) > 30


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        load_model(tmp_path)


def test_shipped_model_loads_and_scores_an_unseen_simulated_subject(tmp_path):
    """The committed weights work: a night of a generated subject (not in the training cohort)
    is scored far above chance through the shipped normalisation."""
    from sleepdata.normalise import input_transform
    from sleepdata.psg import load_recording, pair_for
    from sleepdata.simulator import simulate_generated
    from training.train import predict

    from ..conftest import REPO

    model, config = load_model(REPO / "models" / "ulw_sleepnet")
    assert count_params(model) == 13_337
    metrics = json.loads((REPO / "models" / "ulw_sleepnet" / "metrics.json").read_text())
    assert {"acc", "macro_f1", "kappa", "per_class_f1", "n_epochs", "pooled"} <= set(metrics)
    ((psg, hyp),) = simulate_generated(tmp_path, 1, seed=7)
    rec = load_recording(pair_for(psg, hyp))
    pred = predict(model, input_transform(config["normalisation"])(rec.epochs)).argmax(axis=1)
    assert (pred == rec.labels).mean() > 0.7
