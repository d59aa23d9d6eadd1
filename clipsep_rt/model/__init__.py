"""Separator network (U-Net + query heads) and checkpoint I/O."""

from .checkpoint import Checkpoint, checkpoint_from_model, load_checkpoint, save_checkpoint
from .separator import CLIPSepSeparator, MaskLogits

__all__ = [
    "CLIPSepSeparator",
    "Checkpoint",
    "MaskLogits",
    "checkpoint_from_model",
    "load_checkpoint",
    "save_checkpoint",
]
