"""Training losses, targets, schedule and baselines of clipsep_rt.training."""

from __future__ import annotations

import math

import pytest
import torch

from clipsep_rt.config import ModelConfig, SpectralConfig
from clipsep_rt.model.separator import CLIPSepSeparator
from clipsep_rt.dsp.spectral import SpectralFrontEnd
from clipsep_rt.training import (
    LabelSepSeparator,
    PITSeparator,
    TrainingRecipe,
    binary_masks,
    clipsep_loss,
    learning_rate,
    loss_weights,
    make_optimizer,
    make_scheduler,
    mix_and_warp,
    nit_loss,
    noise_regulariser,
    pit_loss,
    source_logits,
)


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _hand_bce(p: float, t: float) -> float:
    p = min(max(p, 1e-7), 1.0 - 1e-7)
    return -(t * math.log(p) + (1.0 - t) * math.log(1.0 - p))


# One item, two sources, two noise heads, F=1, T=2 bins, all as plain Python floats.
QUERY = [[0.2, 0.6], [0.1, 0.3]]  # QUERY[source][bin]
NOISE = [  # NOISE[source][head][bin]
    [[0.1, 0.5], [0.7, 0.05]],
    [[0.3, 0.9], [0.2, 0.4]],
]
TARGET = [[1.0, 0.0], [0.0, 1.0]]
WEIGHT = [0.5, 2.0]


def _tensors(query, noise, target, weight):
    q = torch.tensor([[[_logit(p) for p in row]] for row in query], dtype=torch.float64)  # (S, 1, T)
    n = torch.tensor([[[[_logit(p) for p in h]] for h in src] for src in noise], dtype=torch.float64)
    t = torch.tensor([[row] for row in target], dtype=torch.float64)
    w = torch.tensor([weight], dtype=torch.float64)
    return q[None], n[None], t[None], w[None]  # (1,S,1,T), (1,S,H,1,T), (1,S,1,T), (1,1,T)


def _hand_nit(query, noise, target, weight, gamma, reg_weight):
    losses = []
    for assignment in ((0, 1), (1, 0)):
        per_source = []
        for i in range(2):
            bins = []
            for k in range(2):
                p = min(max(query[i][k] + noise[i][assignment[i]][k], 0.0), 1.0)
                bins.append(weight[k] * _hand_bce(p, target[i][k]))
            per_source.append(sum(bins) / 2)
        losses.append(sum(per_source) / 2)
    all_noise = [p for src in noise for head in src for p in head]
    mean_noise = sum(all_noise) / len(all_noise)
    return min(losses), losses.index(min(losses)), mean_noise, max(mean_noise - gamma, 0.0) * reg_weight


def test_nit_loss_matches_hand_computation():
    q, n, t, w = _tensors(QUERY, NOISE, TARGET, WEIGHT)
    best, index, mean_noise, reg = _hand_nit(QUERY, NOISE, TARGET, WEIGHT, gamma=0.25, reg_weight=0.1)
    assert reg > 0  # mean noise 0.39 > 0.25: the regulariser is part of the value
    result = nit_loss(q, n, t, w, gamma=0.25, reg_weight=0.1)
    assert result.loss.item() == pytest.approx(best + reg, rel=1e-9)
    assert result.assignment.tolist() == [index]
    assert result.noise_activation.item() == pytest.approx(mean_noise, rel=1e-9)


def test_nit_loss_picks_the_better_assignment():
    # Identity: source 0 <- head 0, source 1 <- head 1 (both wrong); swapped fits exactly.
    query = [[0.05, 0.05], [0.05, 0.05]]
    noise = [[[0.05, 0.05], [0.9, 0.9]], [[0.9, 0.05], [0.05, 0.05]]]
    target = [[1.0, 1.0], [1.0, 0.0]]
    q, n, t, w = _tensors(query, noise, target, [1.0, 1.0])
    # Batch of two: item 0 as above, item 1 with the heads swapped -> identity is better.
    q2 = torch.cat([q, q])
    n2 = torch.cat([n, n.flip(2)])
    t2, w2 = torch.cat([t, t]), torch.cat([w, w])
    result = nit_loss(q2, n2, t2, w2, reg_weight=0.0)
    assert result.assignment.tolist() == [1, 0]
    best, index, _, _ = _hand_nit(query, noise, target, [1.0, 1.0], 0.25, 0.0)
    assert index == 1
    assert result.loss.item() == pytest.approx(best, rel=1e-9)
    identity = nit_loss(q, n.flip(2), t, w, reg_weight=0.0)
    assert identity.loss.item() == pytest.approx(best, rel=1e-9)


def test_noise_regulariser_zero_below_gamma_linear_above():
    for level in (0.0, 0.1, 0.25):
        assert noise_regulariser(torch.full((2, 2, 2, 3, 4), level), gamma=0.25).item() == 0.0
    for level in (0.3, 0.5, 0.9):
        value = noise_regulariser(torch.full((2, 2, 2, 3, 4), level), gamma=0.25).item()
        assert value == pytest.approx(level - 0.25, abs=1e-7)
    probs = torch.tensor([0.0, 1.0])  # mean 0.5
    assert noise_regulariser(probs, gamma=0.4).item() == pytest.approx(0.1)


def test_binary_masks_and_weights_on_hand_example():
    mix = torch.tensor([[[0.0, 1.0, 2.0, 1e6]]])  # (B=1, F=1, T=4)
    sources = torch.tensor([[[[0.0, 0.6, 1.0, 6e5]], [[0.0, 0.4, 1.5, 4e5]]]])  # (1, 2, 1, 4)
    masks = binary_masks(sources, mix)
    # 0 > 0 no; 0.6 > 0.5 yes; 1.0 > 1.0 no (strict); 6e5 > 5e5 yes.
    assert masks.tolist() == [[[[0.0, 1.0, 0.0, 1.0]], [[0.0, 0.0, 1.0, 0.0]]]]
    weight = loss_weights(mix)
    expected = [1e-3, math.log(2.0), math.log(3.0), 10.0]  # clamp low, in range, clamp high
    assert weight.flatten().tolist() == pytest.approx(expected, rel=1e-6)


def test_mix_and_warp_uses_the_waveform_mixture():
    config = SpectralConfig()
    front_end = SpectralFrontEnd(config)
    torch.manual_seed(0)
    sources = torch.randn(2, 2, 4 * config.hop_length)
    batch = mix_and_warp(sources, front_end)
    frames = 5
    assert batch.log_mag.shape == (2, 1, 256, frames)
    assert batch.source_mags.shape == batch.masks.shape == (2, 2, 256, frames)
    mix_linear = torch.stft(
        sources.sum(1), config.n_fft, config.hop_length, config.win_length,
        window=torch.hann_window(config.win_length), center=True, pad_mode="constant", return_complex=True,
    ).abs()
    assert torch.allclose(batch.mix_mag, front_end.warp @ mix_linear, atol=1e-5)
    assert torch.equal(batch.masks, (batch.source_mags > 0.5 * batch.mix_mag[:, None]).float())
    assert torch.allclose(batch.weight, torch.log1p(batch.mix_mag).clamp(1e-3, 10))


def test_learning_rate_schedule():
    assert learning_rate(0) == 0.0
    assert learning_rate(2500) == pytest.approx(5e-4)
    assert learning_rate(5000) == pytest.approx(1e-3)
    assert learning_rate(52_500) == pytest.approx(5.5e-4)
    assert learning_rate(100_000) == pytest.approx(1e-4)
    assert learning_rate(150_000) == pytest.approx(1e-4)
    assert learning_rate(10**7) == pytest.approx(1e-4)
    recipe = TrainingRecipe()
    assert (recipe.batch_size, recipe.steps, recipe.grad_clip, recipe.gamma) == (32, 200_000, 1.0, 0.25)
    optimizer = make_optimizer([torch.nn.Parameter(torch.zeros(1))], recipe)
    scheduler = make_scheduler(optimizer, recipe)
    assert optimizer.param_groups[0]["lr"] == 0.0
    for _ in range(5000):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
    with pytest.raises(ValueError):
        make_scheduler(torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.1), recipe)


def test_pit_loss_is_invariant_to_swapping_outputs():
    torch.manual_seed(0)
    logits = torch.randn(3, 2, 8, 8)
    targets = (torch.rand(3, 2, 8, 8) > 0.5).float()
    weight = torch.rand(3, 8, 8) + 0.1
    straight = pit_loss(logits, targets, weight)
    swapped = pit_loss(logits.flip(1), targets, weight)
    assert swapped.loss.item() == pytest.approx(straight.loss.item(), rel=1e-6)
    assert torch.equal(swapped.assignment, 1 - straight.assignment)
    # Perfect outputs in swapped order give the swapped assignment and the lower loss.
    perfect = (targets.flip(1) * 20 - 10)
    result = pit_loss(perfect, targets, weight)
    assert result.assignment.tolist() == [1, 1, 1]
    assert result.loss.item() < 1e-3


TINY = ModelConfig(depth=5, ngf=2, channels=4, query_dim=8)


def test_labelsep_and_pit_forward_shapes():
    torch.manual_seed(0)
    log_mag = torch.randn(3, 1, 64, 64)
    labelsep = LabelSepSeparator(10, TINY)
    out = labelsep(log_mag, torch.tensor([1, 4]))
    assert out.query.shape == (3, 2, 64, 64) and out.noise.shape == (3, 2, 2, 64, 64)
    per_item = labelsep(log_mag, torch.tensor([[0, 1], [2, 3], [4, 5]]))
    assert per_item.query.shape == (3, 2, 64, 64) and per_item.noise.shape == (3, 2, 2, 64, 64)
    pit = PITSeparator(TINY)
    assert pit(log_mag).shape == (3, 2, 64, 64)


def test_source_logits_match_separator_per_item():
    torch.manual_seed(0)
    separator = CLIPSepSeparator(TINY).eval()
    log_mag = torch.randn(2, 1, 32, 32)
    embeddings = torch.randn(2, 2, 8)
    batched = source_logits(separator, log_mag, embeddings)
    for b in range(2):
        single = separator(log_mag[b : b + 1], embeddings[b])
        assert torch.allclose(batched.query[b], single.query[0], atol=1e-5)
        assert torch.allclose(batched.noise[b], single.noise[0], atol=1e-5)


def test_clipsep_nit_training_steps_reduce_loss():
    torch.manual_seed(0)
    separator = CLIPSepSeparator(TINY)
    mags = torch.rand(4, 2, 64, 64) ** 4 * 5  # (B, S, F, T) warped source magnitudes
    mix = mags.sum(1)
    masks, weight = binary_masks(mags, mix), loss_weights(mix)
    log_mag = torch.log(mix + 1e-10).unsqueeze(1)
    embeddings = torch.randn(4, 2, 8)
    optimizer = torch.optim.Adam(separator.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        logits = source_logits(separator, log_mag, embeddings)
        result = nit_loss(logits.query, logits.noise, masks, weight)
        optimizer.zero_grad()
        result.loss.backward()
        torch.nn.utils.clip_grad_norm_(separator.parameters(), 1.0)
        optimizer.step()
        losses.append(result.loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    plain = clipsep_loss(source_logits(separator, log_mag, embeddings, noise_heads=False).query, masks, weight)
    assert plain.ndim == 0 and math.isfinite(plain.item())


def test_cooldown_keeps_the_steps_before_it_and_falls_linearly_to_its_rate():
    recipe = TrainingRecipe(peak_lr=1e-3, warmup_steps=500, final_lr=1e-4, decay_end=120_000,
                            cooldown_start=16_500, cooldown_steps=5_500, cooldown_lr=3e-5)
    plain = TrainingRecipe(peak_lr=1e-3, warmup_steps=500, final_lr=1e-4, decay_end=120_000)
    for step in (0, 250, 500, 10_000, 16_500):
        assert recipe.learning_rate(step) == plain.learning_rate(step)
    start = plain.learning_rate(16_500)
    assert recipe.learning_rate(16_500 + 2_750) == pytest.approx((start + 3e-5) / 2)
    assert recipe.learning_rate(22_000) == pytest.approx(3e-5)
    assert recipe.learning_rate(10**6) == pytest.approx(3e-5)
    # a resumed scheduler follows the cool-down of the config it is resumed under
    optimizer = make_optimizer([torch.nn.Parameter(torch.zeros(1))], recipe)
    scheduler = make_scheduler(optimizer, recipe)
    state = {**scheduler.state_dict(), "last_epoch": 19_249}
    scheduler.load_state_dict(state)
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(recipe.learning_rate(19_250))


@pytest.mark.parametrize("bad", [dict(cooldown_start=-1, cooldown_steps=10), dict(cooldown_start=0, cooldown_steps=0),
                                 dict(cooldown_start=0, cooldown_steps=10, cooldown_lr=-1e-4)])
def test_cooldown_settings_out_of_range_are_refused(bad):
    with pytest.raises(ValueError, match="cool-down"):
        TrainingRecipe(**bad)
