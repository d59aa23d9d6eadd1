"""MiniLM text embeddings from an exported ONNX graph: OpenVINO or ONNX Runtime, and `tokenizers`.

The graph is one that clipsep_rt.export.minilm_onnx wrote (FP32, FP16, or weight-only INT8 as
the bundled model's folder ships it) from the bundled
all-MiniLM-L6-v2: the BERT encoder, mean pooling over the attention mask and L2
normalisation, as sentence-transformers computes them:

    input_ids       int64   (N, L)   N and L dynamic; the tokenizer's ids, padded to the longest text
    attention_mask  int64   (N, L)   1 for a token, 0 for padding
    embeddings      float32 (N, 384) rows of unit L2 norm

Tokenising uses the engine folder's tokenizer.json with the `tokenizers` package (no
transformers, no sentence-transformers, no torch), cut at `max_tokens` (256, the model's
max_seq_length) as sentence-transformers does. encoder_id is the torch MiniLMEncoder's, so
the embedding cache is shared between the two.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np

from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.user_cache import compile_openvino
from clipsep_rt.optional import describe_exception, import_optional
from clipsep_rt.query.base import l2_normalise
from clipsep_rt.query.encoders.minilm import MiniLMEncoder
from clipsep_rt.query.encoders.onnx_text import EMBEDDINGS, MAX_BATCH, ORT_DISABLED_OPTIMIZERS

INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
PAD_TOKEN = "[PAD]"
MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length in sentence-transformers
OPENVINO_CONFIG = {"INFERENCE_PRECISION_HINT": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": "0"}


def minilm_tokenizer(path: str | Path, max_tokens: int = MAX_TOKENS):
    """The `tokenizers` Tokenizer of a tokenizer.json, set to cut at `max_tokens` and pad to the longest text."""
    tokenizers = import_optional("tokenizers", "onnxruntime")
    path = Path(path)
    if not path.is_file():
        raise ClipsepError(f"{path}: MiniLM tokenizer not found")
    try:
        tokenizer = tokenizers.Tokenizer.from_file(str(path))
    except Exception as exc:
        raise ClipsepError(f"{path}: not a readable tokenizer.json: {describe_exception(exc)}") from exc
    pad_id = tokenizer.token_to_id(PAD_TOKEN)
    if pad_id is None:
        raise ClipsepError(f"{path}: the tokenizer has no {PAD_TOKEN} token: not MiniLM's tokenizer")
    tokenizer.enable_truncation(max_length=max_tokens)
    tokenizer.enable_padding(pad_id=pad_id, pad_token=PAD_TOKEN)
    return tokenizer


class OnnxMiniLMEncoder:
    """The QueryEncoder of an exported MiniLM graph: (N,) strings -> (N, 384) float32, unit rows."""

    encoder_id = MiniLMEncoder.encoder_id
    default_templates = MiniLMEncoder.default_templates

    def __init__(self, path: str | Path, tokenizer_path: str | Path, max_tokens: int = MAX_TOKENS,
                 providers: list | None = None) -> None:
        """`providers`: ONNX Runtime execution providers (a GPU); without them the graph runs on
        the CPU through OpenVINO where it is installed (the core install), else ONNX Runtime."""
        self.path = Path(path)
        if not self.path.is_file():
            raise ClipsepError(f"{self.path}: ONNX text encoder not found")
        self._tokenizer = minilm_tokenizer(tokenizer_path, max_tokens)
        if providers or importlib.util.find_spec("openvino") is None:
            self._run, inputs, outputs = _onnxruntime_runner(self.path, providers)
        else:
            self._run, inputs, outputs = _openvino_runner(self.path)
        if inputs != {INPUT_IDS, ATTENTION_MASK} or EMBEDDINGS not in outputs:
            raise ClipsepError(
                f"{self.path}: not a MiniLM text encoder graph (expects {INPUT_IDS!r}, {ATTENTION_MASK!r} -> "
                f"{EMBEDDINGS!r}; has {sorted(inputs)} -> {sorted(outputs)})"
            )
        self.embedding_dim = outputs[EMBEDDINGS]

    def tokens(self, texts: list[str]) -> dict[str, np.ndarray]:
        """(N,) strings -> the graph's feeds: input_ids and attention_mask, int64 (N, L)."""
        encodings = self._tokenizer.encode_batch(list(texts))
        return {
            INPUT_IDS: np.array([e.ids for e in encodings], dtype=np.int64),
            ATTENTION_MASK: np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """(N,) strings -> (N, 384) float32, rows of unit norm."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        rows = [self._run(self.tokens(texts[start : start + MAX_BATCH])) for start in range(0, len(texts), MAX_BATCH)]
        return l2_normalise(np.concatenate(rows))


Runner = Callable[[dict[str, np.ndarray]], np.ndarray]  # the graph's feeds -> embeddings (N, D) float32


def _onnxruntime_runner(path: Path, providers: list | None) -> tuple[Runner, set[str], dict[str, int]]:
    """The graph on ONNX Runtime: its runner, input names and output sizes (name -> last dimension)."""
    ort = import_optional("onnxruntime", "onnxruntime")
    try:
        session = ort.InferenceSession(str(path), providers=list(providers) if providers else ["CPUExecutionProvider"],
                                       disabled_optimizers=list(ORT_DISABLED_OPTIMIZERS))
    except Exception as exc:
        raise ClipsepError(f"{path}: ONNX Runtime cannot load it: {describe_exception(exc)}") from exc
    outputs = {arg.name: _size(arg.shape[-1]) for arg in session.get_outputs()}
    return (lambda feeds: session.run([EMBEDDINGS], feeds)[0]), {arg.name for arg in session.get_inputs()}, outputs


def _openvino_runner(path: Path) -> tuple[Runner, set[str], dict[str, int]]:
    """The graph on OpenVINO's CPU plugin in f32, its dynamic quantisation of activations off (on
    by default for graphs with 8-bit weights: it costs 0.001 of cosine on short texts), so that it
    computes what ONNX Runtime does (to 1e-6)."""
    openvino = import_optional("openvino", "openvino")
    try:  # through OpenVINO's model cache in the user cache: a third of the compile time from there
        compiled = compile_openvino(openvino.Core(), str(path), OPENVINO_CONFIG)
    except Exception as exc:
        raise ClipsepError(f"{path}: OpenVINO cannot load it: {describe_exception(exc)}") from exc
    inputs = {name for port in compiled.inputs for name in port.get_names()}
    outputs = {name: _size(port.get_partial_shape()[-1].get_length() if port.get_partial_shape()[-1].is_static else None)
               for port in compiled.outputs for name in port.get_names()}
    request = compiled.create_infer_request()

    def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
        request.infer(feeds)
        return np.array(request.get_tensor(EMBEDDINGS).data, dtype=np.float32)

    return run, inputs, outputs


def _size(dimension) -> int:
    """The embedding size a graph declares (384 when it leaves it dynamic)."""
    return int(dimension) if isinstance(dimension, int) else MiniLMEncoder.embedding_dim
