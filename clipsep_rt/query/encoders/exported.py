"""An engine folder's exported text encoder: which kind, which files, and the encoder it builds.

runtime.engines.manifest describes the folder's files; this is what serves its text queries
with OpenVINO or ONNX Runtime (no torch, no open_clip weights, no sentence-transformers). A folder may
carry the FP32 graph, an FP16 one, a weight-only INT8 one (export --text-encoder-int8), or only
the compact ones (export --no-fp32-text-encoder): GRAPH_PREFERENCE says which one serves.

The bundled default model's folder (clipsep_rt/model/weights/, `make default-engine`) carries
the INT8 MiniLM graph: bundled_minilm() finds it for the `minilm` encoder spec where
sentence-transformers cannot be imported (query.encoders.registry.build_encoder). It is found
by path, not by import: model and query are sibling layers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from clipsep_rt.errors import ClipsepError
from clipsep_rt.query.base import QueryEncoder

KINDS = ("open_clip", "minilm")
# A manifest's text_encoder entry: its graph keys, the one that serves first (the closest to the
# reference encoder: FP32, FP16 at cosine ~1.0, INT8 at >= 0.999).
GRAPH_PREFERENCE = ("onnx", "onnx_fp16", "onnx_int8")
BUNDLED_MODEL_DIR = Path(__file__).resolve().parents[2] / "model" / "weights"  # clipsep_rt.model.weights
BUNDLED_MANIFEST = BUNDLED_MODEL_DIR / "manifest.json"  # runtime.engines.contract.MANIFEST_NAME


@dataclass(frozen=True)
class ExportedTextEncoder:
    kind: str  # "open_clip" (a CLIP text tower) or "minilm" (all-MiniLM-L6-v2)
    onnx: Path  # the graph
    tokenizer: str  # open_clip: the tokenizer's model name; minilm: the tokenizer.json path
    context_length: int  # open_clip: tokens per text; minilm: the most tokens per text
    encoder_id: str  # the weights it was exported from: it keys the embedding cache

    @classmethod
    def in_folder(cls, directory: Path, entry: Mapping, encoder_id: str) -> ExportedTextEncoder:
        """The encoder of an engine folder's manifest entry `entry` (runtime.engines.manifest's
        TextEncoderFiles, as a mapping): its first graph in GRAPH_PREFERENCE order."""
        graph = next((entry[key] for key in GRAPH_PREFERENCE if entry.get(key)), None)
        if graph is None:
            raise ClipsepError(f"engine directory {directory}: its manifest's text encoder lists no ONNX graph")
        kind = entry["kind"]
        tokenizer = str(directory / entry["tokenizer"]) if kind == "minilm" else entry["tokenizer"]
        return cls(kind, directory / graph, tokenizer, int(entry["context_length"]), encoder_id)

    def build(self, providers: list | None = None) -> QueryEncoder:
        """The ONNX Runtime encoder (CPU unless `providers` says otherwise)."""
        if self.kind == "minilm":
            from clipsep_rt.query.encoders.onnx_minilm import OnnxMiniLMEncoder

            return OnnxMiniLMEncoder(self.onnx, self.tokenizer, self.context_length, providers=providers)
        if self.kind == "open_clip":
            from clipsep_rt.query.encoders.onnx_text import OnnxTextEncoder

            return OnnxTextEncoder(self.onnx, self.tokenizer, encoder_id=self.encoder_id, providers=providers)
        raise ClipsepError(f"{self.onnx}: unknown text encoder kind {self.kind!r} (known: {', '.join(KINDS)})")


def bundled_minilm() -> ExportedTextEncoder | None:
    """The MiniLM text encoder in the bundled default model's folder; None where this install
    has none (a folder exported without it, or no manifest)."""
    try:
        data = json.loads(BUNDLED_MANIFEST.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as error:
        raise ClipsepError(f"{BUNDLED_MANIFEST}: unreadable ({error}): reinstall clipsep-rt") from None
    entry = data.get("text_encoder")
    if not entry or entry.get("kind") != "minilm" or not data.get("query_encoder"):
        return None
    return ExportedTextEncoder.in_folder(BUNDLED_MODEL_DIR, entry, data["query_encoder"])
