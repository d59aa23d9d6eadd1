"""Separator network (U-Net + query heads) and checkpoint I/O."""

from clipsep_rt.model.checkpoint import Checkpoint, checkpoint_from_model, load_checkpoint, save_checkpoint
from clipsep_rt.model.separator import CLIPSepSeparator, MaskLogits

__all__ = [
    "CLIPSepSeparator",
    "Checkpoint",
    "MaskLogits",
    "checkpoint_from_model",
    "load_checkpoint",
    "save_checkpoint",
]
