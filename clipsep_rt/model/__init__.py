"""Separator network (U-Net + query heads) and checkpoint I/O.

The names below load (with torch) on first use, so `clipsep_rt.model.weights`, the bundled
model's files, can be reached without torch (an onnxruntime separation needs none).
"""

import importlib

_EXPORTS = {
    "CLIPSepSeparator": "clipsep_rt.model.separator",
    "MaskLogits": "clipsep_rt.model.separator",
    "Checkpoint": "clipsep_rt.model.checkpoint",
    "checkpoint_from_model": "clipsep_rt.model.checkpoint",
    "load_checkpoint": "clipsep_rt.model.checkpoint",
    "save_checkpoint": "clipsep_rt.model.checkpoint",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
