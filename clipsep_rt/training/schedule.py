"""Training recipe of CLIPSep / CLIPSep-NIT: Adam, learning-rate schedule, gradient clip.

Paper schedule: linear warm-up from 0 to 1e-3 over the first 5,000 steps, linear decay to
1e-4 at step 100,000, then constant 1e-4; batch 32, 200,000 steps, gradient-norm clip 1.0,
noise regulariser threshold gamma = 0.25.

Cool-down (optional, not in the paper): from step `cooldown_start` the rate falls linearly
from the schedule's value at that step to `cooldown_lr` over `cooldown_steps` steps, then stays
there. It ends a long run whose score has stopped rising at a high rate (warm-up, stable,
decay) without rewriting the schedule of the steps already trained: the steps before
`cooldown_start` keep their rates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch.optim.lr_scheduler import LambdaLR


@dataclass(frozen=True)
class TrainingRecipe:
    batch_size: int = 32
    steps: int = 200_000
    peak_lr: float = 1e-3
    warmup_steps: int = 5_000
    final_lr: float = 1e-4
    decay_end: int = 100_000
    grad_clip: float = 1.0  # max gradient L2 norm (torch.nn.utils.clip_grad_norm_)
    gamma: float = 0.25  # CLIPSep-NIT noise regulariser threshold
    reg_weight: float = 0.1  # regulariser weight: a choice made here, not from the paper's code
    cooldown_start: int | None = None  # None: no cool-down
    cooldown_steps: int = 0
    cooldown_lr: float = 0.0

    def __post_init__(self) -> None:
        if self.cooldown_start is not None and (self.cooldown_start < 0 or self.cooldown_steps < 1 or self.cooldown_lr < 0):
            raise ValueError("cool-down: cooldown_start must be >= 0, cooldown_steps >= 1 and cooldown_lr >= 0, "
                             f"got {self.cooldown_start}, {self.cooldown_steps}, {self.cooldown_lr}")

    def learning_rate(self, step: int) -> float:
        if self.cooldown_start is None or step <= self.cooldown_start:
            return self._scheduled(step)
        start = self._scheduled(self.cooldown_start)
        done = min(1.0, (step - self.cooldown_start) / self.cooldown_steps)
        return start + (self.cooldown_lr - start) * done

    def _scheduled(self, step: int) -> float:
        """The warm-up / decay schedule's rate at `step`, before any cool-down."""
        return learning_rate(step, self.peak_lr, self.warmup_steps, self.final_lr, self.decay_end)

    def to_dict(self) -> dict:
        return asdict(self)


def learning_rate(
    step: int, peak: float = 1e-3, warmup: int = 5_000, final: float = 1e-4, decay_end: int = 100_000
) -> float:
    """Learning rate at `step` (0-based): 0 -> peak linearly over `warmup` steps, then
    peak -> final linearly until `decay_end`, then constant `final`."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if step < warmup:
        return peak * step / warmup
    if step < decay_end:
        return peak + (final - peak) * (step - warmup) / (decay_end - warmup)
    return final


def make_optimizer(parameters, recipe: TrainingRecipe = TrainingRecipe()) -> torch.optim.Adam:
    """Adam with lr = recipe.peak_lr (the scheduler scales it)."""
    return torch.optim.Adam(parameters, lr=recipe.peak_lr)


def make_scheduler(optimizer: torch.optim.Optimizer, recipe: TrainingRecipe = TrainingRecipe()) -> LambdaLR:
    """LambdaLR giving each group lr = learning_rate(step) (base lr must be recipe.peak_lr).

    Call `scheduler.step()` once after each `optimizer.step()`; before the first step the
    lr is learning_rate(0) = 0.
    """
    for group in optimizer.param_groups:
        base = group.get("initial_lr", group["lr"])
        if abs(base - recipe.peak_lr) > 1e-12:
            raise ValueError(f"optimizer lr {base} must equal recipe.peak_lr {recipe.peak_lr}")
    return LambdaLR(optimizer, lambda step: recipe.learning_rate(step) / recipe.peak_lr)
