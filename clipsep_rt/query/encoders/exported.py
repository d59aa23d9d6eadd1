"""An engine folder's exported text encoder: which kind, which files, and the encoder it builds.

runtime.engines.manifest describes the folder's files; this is what serves its text queries
with ONNX Runtime alone (no torch, no open_clip weights, no sentence-transformers).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clipsep_rt.errors import ClipsepError
from clipsep_rt.query.base import QueryEncoder

KINDS = ("open_clip", "minilm")


@dataclass(frozen=True)
class ExportedTextEncoder:
    kind: str  # "open_clip" (a CLIP text tower) or "minilm" (all-MiniLM-L6-v2)
    onnx: Path  # the graph
    tokenizer: str  # open_clip: the tokenizer's model name; minilm: the tokenizer.json path
    context_length: int  # open_clip: tokens per text; minilm: the most tokens per text
    encoder_id: str  # the weights it was exported from: it keys the embedding cache

    def build(self, providers: list | None = None) -> QueryEncoder:
        """The ONNX Runtime encoder (CPU unless `providers` says otherwise)."""
        if self.kind == "minilm":
            from clipsep_rt.query.encoders.onnx_minilm import OnnxMiniLMEncoder

            return OnnxMiniLMEncoder(self.onnx, self.tokenizer, self.context_length, providers=providers)
        if self.kind == "open_clip":
            from clipsep_rt.query.encoders.onnx_text import OnnxTextEncoder

            return OnnxTextEncoder(self.onnx, self.tokenizer, encoder_id=self.encoder_id, providers=providers)
        raise ClipsepError(f"{self.onnx}: unknown text encoder kind {self.kind!r} (known: {', '.join(KINDS)})")
