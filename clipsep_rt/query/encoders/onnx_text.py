"""CLIP text embeddings from an exported ONNX graph (ONNX Runtime) and open_clip's tokenizer.

The graph is one that clipsep_rt.export.text_encoder_onnx wrote (FP32 or FP16): int64
`tokens` (N, context_length) in, unit-norm float32 `embeddings` (N, D) out. Tokenising stays
in Python with open_clip's tokenizer: that needs the open_clip package (the `clip` extra)
but no weights, since the BPE vocabulary ships inside the package. ONNX Runtime comes with
the `onnx` extra (or `gpu`, for the CUDA and TensorRT providers).

encoder_id is the id of the weights the graph was exported from (e.g.
'open_clip:ViT-B-32/openai'), so embeddings cached by the torch OpenClipEncoder are reused
and the other way round. Nothing checks that the file really holds those weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clipsep_rt.errors import ClipsepError
from clipsep_rt.optional import describe_exception, import_optional
from clipsep_rt.query.encoders.hub import hub_offline
from clipsep_rt.query.base import l2_normalise
from clipsep_rt.query.prompts import PAPER_TEMPLATE

TOKENS = "tokens"  # int64 (N, context_length), N dynamic: the graph's input
EMBEDDINGS = "embeddings"  # float32 (N, D), rows of unit norm: the graph's output

# ONNX Runtime graph optimisers to turn off when loading these graphs. On x86-64 CPUs,
# ONNX Runtime >= 1.24 (1.31 included) crashes (segfault, at session creation) in
# NchwcTransformer on Transpose -> Cast(fp16->fp32) -> MatMul, the pattern its CPU provider
# makes of the FP16 graph's attention (microsoft/onnxruntime#28392). NCHWc is a layout for
# convolutions: the text tower has none, so nothing is lost, FP32 or FP16.
ORT_DISABLED_OPTIMIZERS = ("NchwcTransformer",)

MAX_BATCH = 256  # texts per ONNX Runtime call, to bound memory on long query lists


class OnnxTextEncoder:
    """The QueryEncoder of an ONNX CLIP text tower: (N,) strings -> (N, D) float32, unit rows.

    path: the .onnx file; tokenizer_name: the open_clip model whose tokenizer made the
    graph's tokens ('ViT-B-32' for OpenAI's CLIP); encoder_id: the id of the weights the
    file was exported from (required: it keys the embedding cache); providers: ONNX
    Runtime execution providers, default CPU only; tokenizer: a ready tokenizer to use
    instead of open_clip's (a callable list[str] -> (N, context_length) integer array).
    """

    default_templates = (PAPER_TEMPLATE,)

    def __init__(
        self,
        path: str | Path,
        tokenizer_name: str = "ViT-B-32",
        *,
        encoder_id: str,
        providers: list | None = None,
        tokenizer=None,
    ) -> None:
        if not encoder_id:
            raise ValueError("encoder_id must name the weights the ONNX file was exported from")
        self.encoder_id = encoder_id
        self.path = Path(path)
        if not self.path.is_file():
            raise ClipsepError(f"{self.path}: ONNX text encoder not found")
        ort = import_optional("onnxruntime", "onnxruntime")
        try:
            self._session = ort.InferenceSession(
                str(self.path),
                providers=list(providers) if providers else ["CPUExecutionProvider"],
                disabled_optimizers=list(ORT_DISABLED_OPTIMIZERS),
            )
        except Exception as exc:
            raise ClipsepError(f"{self.path}: ONNX Runtime cannot load it: {describe_exception(exc)}") from exc
        inputs = {arg.name: arg for arg in self._session.get_inputs()}
        outputs = {arg.name: arg for arg in self._session.get_outputs()}
        if TOKENS not in inputs or EMBEDDINGS not in outputs:
            raise ClipsepError(
                f"{self.path}: not a CLIP text encoder graph (expects input {TOKENS!r} and output "
                f"{EMBEDDINGS!r}; has {sorted(inputs)} -> {sorted(outputs)})"
            )
        length = inputs[TOKENS].shape[1] if len(inputs[TOKENS].shape) == 2 else None
        self.context_length = length if isinstance(length, int) else None
        self._tokenizer = (
            tokenizer if tokenizer is not None else _open_clip_tokenizer(tokenizer_name, self.context_length)
        )
        dim = outputs[EMBEDDINGS].shape[-1] if outputs[EMBEDDINGS].shape else None
        # The exporter fixes D in the graph; for other files one forward pass finds it.
        self.embedding_dim = dim if isinstance(dim, int) else int(self.encode_text([""]).shape[1])

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """(N,) strings -> (N, D) float32, rows of unit norm."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        rows = []
        for start in range(0, len(texts), MAX_BATCH):
            tokens = self._tokens(texts[start : start + MAX_BATCH])
            rows.append(self._session.run([EMBEDDINGS], {TOKENS: tokens})[0])
        return l2_normalise(np.concatenate(rows))

    def _tokens(self, texts: list[str]) -> np.ndarray:
        tokens = self._tokenizer(texts)
        tokens = np.asarray(tokens.cpu().numpy() if hasattr(tokens, "cpu") else tokens, dtype=np.int64)
        if self.context_length is not None and tokens.shape[1] != self.context_length:
            raise ClipsepError(
                f"{self.path}: the tokenizer gives {tokens.shape[1]} tokens per text but the graph takes "
                f"{self.context_length}: use the tokenizer of the model it was exported from"
            )
        return tokens


def _open_clip_tokenizer(tokenizer_name: str, context_length: int | None):
    """open_clip's tokenizer for `tokenizer_name`; needs the package, not weights."""
    open_clip = import_optional("open_clip", "clip")
    try:
        with hub_offline():  # hf-hub: tokenizers come from the local Hugging Face cache
            return open_clip.get_tokenizer(tokenizer_name, context_length=context_length)
    except Exception as exc:
        raise ClipsepError(
            f"open_clip has no usable tokenizer for {tokenizer_name!r}: {describe_exception(exc)}"
        ) from exc
