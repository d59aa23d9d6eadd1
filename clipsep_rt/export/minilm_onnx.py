"""The bundled MiniLM text encoder (all-MiniLM-L6-v2) as ONNX, FP32 and FP16, and its parity check.

The graph is what sentence-transformers computes for the model (modules Transformer ->
Pooling(mean) -> Normalize): BERT's last hidden states, averaged over the attention mask,
L2-normalised. Interface (names in clipsep_rt.query.encoders.onnx_minilm):

    input_ids, attention_mask  int64 (N, L), N ("texts") and L ("tokens") dynamic
    embeddings                 float32 (N, 384), rows of unit norm

token_type_ids are zeros for a single sentence and stay inside the graph. The tokenizer is
the installed model's tokenizer.json, shipped beside the graph and set (cut at 256 tokens,
padding to the longest text) as sentence-transformers uses it.

Exporter: the TorchScript one (`torch.onnx.export(..., dynamo=False)`), opset 17, with the
model's eager attention (an explicit additive mask before Softmax). FP16 uses
`convert_text_encoder_fp16` (LayerNormalization, Softmax and the final normalisation kept in
FP32, see clipsep_rt.export.text_encoder_onnx); it is kept only if its embeddings hold up
against sentence-transformers' (cosine >= FP16_MIN_COSINE).
"""

from __future__ import annotations

import copy
import io
import warnings
from pathlib import Path

import numpy as np
import torch

from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.files import atomic_output
from clipsep_rt.optional import describe_exception, import_optional
from clipsep_rt.query.encoders.minilm import MiniLMEncoder
from clipsep_rt.query.encoders.onnx_minilm import ATTENTION_MASK, INPUT_IDS, OnnxMiniLMEncoder, minilm_tokenizer
from clipsep_rt.query.encoders.onnx_text import EMBEDDINGS

DEFAULT_OPSET = 17
TOKENIZER_FILE = "tokenizer.json"  # in the installed model's folder


class _MeanPooledMiniLM(torch.nn.Module):
    """(input_ids, attention_mask) int64 (N, L) -> mean-pooled, L2-normalised float32 (N, D)."""

    def __init__(self, bert: torch.nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)


def export_minilm_onnx(encoder: MiniLMEncoder, path: str | Path, opset: int = DEFAULT_OPSET) -> Path:
    """Write `encoder`'s network (FP32, CPU) to `path` as ONNX (atomically, checked by onnx.checker)."""
    onnx = import_optional("onnx", "onnx")
    path = Path(path)
    bert = copy.deepcopy(encoder.model[0].auto_model).float().cpu().eval()
    bert.set_attn_implementation("eager")  # an explicit mask the exporter writes as plain ops
    wrapper = _MeanPooledMiniLM(bert).eval()
    # Two texts of four tokens, the second padded: no size-1 axis to specialise, a real mask.
    input_ids = torch.tensor([[101, 2000, 2001, 102], [101, 2002, 102, 0]], dtype=torch.int64)
    attention_mask = (input_ids != 0).to(torch.int64)
    buffer = io.BytesIO()
    axes = {0: "texts", 1: "tokens"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*feature will be removed.*")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        # transformers' mask code indexes with non-negative indices only, which the exporter cannot know
        warnings.filterwarnings("ignore", message="Exporting aten::index operator of advanced indexing")
        try:
            torch.onnx.export(
                wrapper, (input_ids, attention_mask), buffer, dynamo=False, opset_version=opset,
                input_names=[INPUT_IDS, ATTENTION_MASK], output_names=[EMBEDDINGS],
                dynamic_axes={INPUT_IDS: axes, ATTENTION_MASK: axes, EMBEDDINGS: {0: "texts"}},
                do_constant_folding=True,
            )
        except Exception as error:
            raise ClipsepError(f"{path}: ONNX export of the MiniLM encoder failed ({describe_exception(error)})") from error
    proto = onnx.load_from_string(buffer.getvalue())
    proto.doc_string = "all-MiniLM-L6-v2: input_ids, attention_mask -> mean-pooled, L2-normalised embeddings"
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as error:
        raise ClipsepError(f"{path}: the MiniLM graph fails onnx.checker ({describe_exception(error)})") from error
    with atomic_output(path, overwrite=True) as temporary:
        onnx.save_model(proto, str(temporary))
    return path


def write_minilm_tokenizer(encoder: MiniLMEncoder, path: str | Path) -> Path:
    """The installed model's tokenizer.json, set up as the ONNX encoder uses it, at `path` (atomically)."""
    path = Path(path)
    tokenizer = minilm_tokenizer(encoder.model_dir / TOKENIZER_FILE, int(encoder.model.max_seq_length))
    with atomic_output(path, overwrite=True) as temporary:
        tokenizer.save(str(temporary))
    return path


def minilm_cosine(encoder: MiniLMEncoder, onnx_path: str | Path, tokenizer_path: str | Path,
                  texts: list[str]) -> float:
    """Lowest cosine similarity, over `texts`, of the ONNX encoder's embeddings and sentence-transformers'."""
    if not texts:
        raise ValueError("minilm_cosine needs at least one text")
    got = OnnxMiniLMEncoder(onnx_path, tokenizer_path, int(encoder.model.max_seq_length)).encode_text(texts)
    want = encoder.encode_text(texts)
    cosines = np.sum(got.astype(np.float64) * want.astype(np.float64), axis=1)
    return float(np.min(np.where(np.isfinite(cosines), cosines, -np.inf)))
