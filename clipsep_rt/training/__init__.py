"""Training pieces for CLIPSep, CLIPSep-NIT and their baselines (Dong et al., ICLR 2023).

Mix-and-separate with two sources, everything on the 256-bin log-frequency grid:

- `targets`: warped magnitudes, binary target masks and per-bin loss weights.
- `losses`: CLIPSep weighted BCE, CLIPSep-NIT permutation-invariant noise loss and its
  noise regulariser, the PIT baseline loss.
- `schedule`: `TrainingRecipe` (paper defaults), the learning-rate schedule, Adam.
- `baselines`: LabelSep (learned label embeddings), the query-free PIT U-Net, and
  `source_logits` (per-item queries, one U-Net pass).
- `index`, `datasets`: the dataset index CSV, random crops, 2-source mixture batches
  (clean or with off-screen noise), precomputed query tables.
- `trainer`: `train`, resumable (`clipsep-rt train`): `train_config` (`TrainConfig`, TOML/JSON),
  `build` (the run's data and model), `step` (forward and loss per model type), `run_state`
  (checkpoints, the state it resumes from, the logs).
- `evaluate`: BSS Eval v4 SDR/SIR/SAR, SDRi, SI-SDR (`clipsep_rt.dsp.metrics`) on
  held-out mixtures, PIT with oracle output selection (`clipsep-rt eval`).
"""

from clipsep_rt.training.baselines import LabelSepSeparator, PITSeparator, source_logits
from clipsep_rt.training.losses import (
    NITLoss,
    PITLoss,
    clipsep_loss,
    nit_loss,
    noise_assignments,
    noise_regulariser,
    pit_loss,
    weighted_bce,
    weighted_bce_with_logits,
)
from clipsep_rt.training.schedule import TrainingRecipe, learning_rate, make_optimizer, make_scheduler
from clipsep_rt.training.targets import MixBatch, binary_masks, loss_weights, mix_and_warp, warp_magnitude

__all__ = [
    "LabelSepSeparator",
    "MixBatch",
    "NITLoss",
    "PITLoss",
    "PITSeparator",
    "TrainingRecipe",
    "binary_masks",
    "clipsep_loss",
    "learning_rate",
    "loss_weights",
    "make_optimizer",
    "make_scheduler",
    "mix_and_warp",
    "nit_loss",
    "noise_assignments",
    "noise_regulariser",
    "pit_loss",
    "source_logits",
    "warp_magnitude",
    "weighted_bce",
    "weighted_bce_with_logits",
]
