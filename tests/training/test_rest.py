"""REST: the differentiable input path, attacks, regularisers and pruning (the noise generators:
tests/sleepdata/test_noise.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sleepdata.noise import SignalStats
from sleepdata.normalise import Normaliser
from training.model import ModelConfig, ULWSleepNet, summary
from training.rest import (
    Attack,
    DifferentiableInput,
    attack,
    bn_l1,
    channel_scale,
    mask,
    plan_pruning,
    prune,
    spectral_penalty,
)

from .conftest import bn_randomised


def _signals(n: int = 16, seed: int = 0) -> np.ndarray:
    """Sleep-like microvolts (n, 4, 3000): EEG/EOG tens of uV with offsets, EMG 0.5..4 uV."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 25, (n, 4, 3000)) + rng.normal(0, 40, (n, 4, 1))
    x[:, 3] = rng.uniform(0.5, 4.0, (n, 1)) + rng.normal(0, 0.1, (n, 3000))
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def norm_stats():
    x = _signals(64, seed=1)
    return Normaliser.fit(x), SignalStats.fit(x, source="test"), x


# ------------------------------------------------------------------------------------------
# The input path


def test_differentiable_input_equals_the_board_integers(norm_stats):
    norm, _, x = norm_stats
    inp = DifferentiableInput(norm)
    extreme = x * 40.0  # saturating int8 and the int16 wire
    for xs in (x, extreme, np.zeros_like(x[:2]), x + 0.025):
        got = inp(torch.from_numpy(xs)).numpy() * 16
        np.testing.assert_array_equal(got, norm.model_input(xs).astype(np.float32))


def test_differentiable_input_has_the_linear_gradient_and_zero_where_clamped(norm_stats):
    norm, _, x = norm_stats
    inp = DifferentiableInput(norm)
    xs = torch.from_numpy(x[:2].copy())
    xs[0, 0, 10] = 1e4  # saturates
    xs.requires_grad_(True)
    inp(xs)[:, 0, 10].sum().backward()
    ch = norm.channels[0]
    slope = ch.multiplier / 2.0**ch.shift / ch.lsb_uv / 16
    # d v[10] / d x[10] = slope * (1 - 1/3000) where not clamped (the mean depends on x[10] too)
    assert xs.grad[1, 0, 10].item() == pytest.approx(slope * (1 - 1 / 3000), rel=1e-4)
    assert xs.grad[0, 0, 10].item() == 0.0


# ------------------------------------------------------------------------------------------
# Attacks


def _trained_tiny(norm, x, y, steps: int = 30) -> ULWSleepNet:
    """A tiny model fitted to (x, y) in eval mode (BatchNorm as the affine map it is at
    inference, so the fitted loss is the loss the attacks see)."""
    torch.manual_seed(0)
    model = ULWSleepNet(ModelConfig(widths=(2, 2, 2))).eval()
    inp = DifferentiableInput(norm)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(steps):
        loss = F.cross_entropy(model(inp(xt)), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    return model.eval()


def test_attacks_raise_the_loss_pgd_more_and_stay_in_the_budget(norm_stats):
    norm, stats, _ = norm_stats
    x = _signals(10, seed=3)
    y = (np.arange(10) % 5).astype(np.int64)
    amplitude = np.array([0.3, 0.6, 1.0, 1.6, 2.5], dtype=np.float32)[y]  # a learnable cue
    x[:, :3] *= amplitude.reshape(-1, 1, 1)
    model = _trained_tiny(norm, x, y, steps=60)
    inp = DifferentiableInput(norm)
    scale = channel_scale(stats)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    with torch.no_grad():
        clean = F.cross_entropy(model(inp(xt)), yt).item()
    assert clean < 1.0  # fitted (chance: ln 5 = 1.61)
    losses = {}
    for kind, iterations in (("start", 0), ("rest-code", 5), ("pgd", 5), ("paper", 5)):
        # the same random start for the first three (generator seed 0); "start" takes no step
        spec = Attack("rest-code" if kind == "start" else kind, 20.0, iterations)
        x_adv = attack(model, inp, xt, yt, spec, scale, torch.Generator().manual_seed(0))
        delta = (x_adv - xt).abs().amax(dim=(0, 2)).numpy()
        assert (delta <= 20.0 * scale + 1e-3).all(), (kind, delta)
        with torch.no_grad():
            losses[kind] = F.cross_entropy(model(inp(x_adv)), yt).item()
        assert all(p.grad is None for p in model.parameters())
    # REST code's step (0.01 uV) barely leaves the random start, but uphill; PGD and the
    # paper's eq. 2 (steps of eps from the clean input) climb far
    assert losses["rest-code"] > losses["start"], losses
    assert losses["pgd"] > max(clean, losses["rest-code"]) + 1.0, (clean, losses)
    assert losses["paper"] > max(clean, losses["rest-code"]) + 1.0, (clean, losses)
    assert Attack("rest-code", 10).step == 0.01
    assert Attack("rest-published", 10).kind == "rest-code"  # the name of earlier run folders
    assert Attack("paper", 10).step == 10.0
    assert Attack("pgd", 10, 10).step == pytest.approx(2.5)
    assert Attack("pgd", 20.0, iterations=5).step == pytest.approx(10.0)


def test_the_papers_attack_starts_at_the_input_and_steps_by_eps(norm_stats):
    """Paper, eq. 2: X_p(0) = X; one step is X + eps * sign(gradient) (per channel budget),
    whatever the generator: no random start."""
    norm, stats, _ = norm_stats
    x = _signals(4, seed=5)
    y = (np.arange(4) % 5).astype(np.int64)
    model = _trained_tiny(norm, x, y, steps=5)
    inp, scale = DifferentiableInput(norm), channel_scale(stats)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    spec = Attack("paper", 8.0, iterations=1)
    a = attack(model, inp, xt, yt, spec, scale, torch.Generator().manual_seed(1))
    b = attack(model, inp, xt, yt, spec, scale, torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b)
    x0 = xt.clone().requires_grad_(True)
    loss = F.cross_entropy(model.eval()(inp(x0)), yt)
    (grad,) = torch.autograd.grad(loss, x0)
    eps = torch.as_tensor(8.0 * scale, dtype=torch.float32).view(-1, 1)
    moved = grad != 0
    torch.testing.assert_close((a - xt)[moved], (eps * grad.sign()).expand_as(grad)[moved])
    assert ((a - xt)[~moved] == 0).all()
    assert spec.random_start is False and Attack("pgd", 8.0).random_start


def test_channel_scale_is_relative_to_fpz_cz(norm_stats):
    _, stats, _ = norm_stats
    s = channel_scale(stats)
    assert s[0] == 1.0 and s[3] < 0.1  # the EMG envelope gets a budget of its own size


# ------------------------------------------------------------------------------------------
# Regularisers


def test_spectral_penalty_is_zero_for_orthonormal_columns_and_has_the_rank_floor():
    lin = torch.nn.Linear(3, 4, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(4, 3))
    assert spectral_penalty(lin).item() == pytest.approx(0.0, abs=1e-6)
    wide = torch.nn.Linear(5, 2, bias=False)  # W^T W is 5x5 of rank 2: ||.|| >= sqrt(3)
    assert spectral_penalty(wide).item() >= np.sqrt(3) - 1e-5
    model = ULWSleepNet()
    assert spectral_penalty(model).requires_grad
    assert bn_l1(model).item() == pytest.approx(8 + 8 + 16 + 16 + 32 + 32)


# ------------------------------------------------------------------------------------------
# Pruning


def test_pruned_model_equals_the_masked_original_and_is_smaller(norm_stats):
    norm, _, x = norm_stats
    model = bn_randomised(ULWSleepNet(), seed=2)
    plan = plan_pruning(model, 0.5, 0.1)
    small = prune(model, plan).eval()
    masked = mask(model, plan).eval()
    cfg = small.config
    assert cfg.widths == tuple(len(k) for k in plan.outer)
    assert cfg.inner_widths == tuple(len(k) for k in plan.inner)
    assert sum(cfg.widths) + sum(cfg.inner) == 112 - round(0.5 * 112)
    assert all(w >= 1 for w in cfg.widths + cfg.inner)
    s_small, s_big = summary(small), summary(model)
    assert s_small["params"] < s_big["params"] and s_small["macs"] < s_big["macs"]
    v = DifferentiableInput(norm)(torch.from_numpy(x[:8]))
    with torch.no_grad():
        a, b, orig = small(v), masked(v), model(v)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert (a - orig).abs().max() > 1e-3  # the mask does change the original


def test_pruning_keeps_the_per_layer_minimum_and_the_largest_gammas():
    model = bn_randomised(ULWSleepNet(), seed=4)
    with torch.no_grad():
        model.extractor[2].main[1][2].weight.fill_(1e-3)  # the last block's gammas: all tiny
        model.extractor[2].main[1][2].weight[5] = 0.5
    plan = plan_pruning(model, 0.3, 0.1)
    assert len(plan.outer[2]) == 4 and 5 in plan.outer[2]  # ceil(0.1 * 32) kept, largest first
    with pytest.raises(ValueError):
        plan_pruning(model, 1.0)


def test_pruning_rounds_each_layer_up_to_an_allowed_width():
    model = bn_randomised(ULWSleepNet(), seed=5)
    free = plan_pruning(model, 0.6, 0.1)
    plan = plan_pruning(model, 0.6, 0.1, widths=(4, 8, 16, 32))
    for k_free, k in zip(free.inner + free.outer, plan.inner + plan.outer, strict=True):
        assert len(k) in (4, 8, 16, 32) and len(k) >= len(k_free)
        assert set(k_free) <= set(k)  # rounding up keeps what the threshold kept
    small = prune(model, plan)
    assert all(w in (4, 8, 16, 32) for w in small.config.widths + small.config.inner)
