"""CLIP text tower -> ONNX (FP32 and FP16), and the ONNX Runtime query encoder.

A small open_clip model (2 text layers, random weights) is built here: no weights are
downloaded. Acceptance: ONNX Runtime vs open_clip cosine >= 0.9999 (FP32), >= 0.999 (FP16).
"""

from __future__ import annotations

import copy
import sys

import numpy as np
import onnx  # the dev extra installs onnx and onnxruntime: a broken import must fail, not skip
import onnxruntime as ort
import pytest
import torch
from tiny_clip import tiny_clip as build_tiny_clip

from clipsep_rt.errors import ClipsepError
from clipsep_rt.export.text_encoder_onnx import (
    EMBEDDINGS,
    FP16_MIN_COSINE,
    FP32_MIN_COSINE,
    ORT_DISABLED_OPTIMIZERS,
    TOKENS,
    convert_text_encoder_fp16,
    export_text_encoder_onnx,
    verify_text_encoder_onnx,
)
from clipsep_rt.query import OpenClipEncoder, QueryEncoder
from clipsep_rt.query.encoders.onnx_text import OnnxTextEncoder

EMBED_DIM = 64
CONTEXT = 77
EOT = 49407  # open_clip's end-of-text id, the largest; CLIP pools there
ENCODER_ID = "open_clip:tiny-test/random-init"

# Different lengths, down to none at all, and one longer than the context (truncated).
PROMPTS = [
    "a photo of dog barking",
    "a photo of violin",
    "",
    "a photo of heavy rain falling on a tin roof while thunder rolls in the distance",
    " ".join(["engine"] * 100),
]


@pytest.fixture(scope="module")
def open_clip():
    import open_clip  # the clip extra is part of the test install

    return open_clip


@pytest.fixture(scope="module")
def tiny_clip(open_clip):
    model, tokenizer = build_tiny_clip(embed_dim=EMBED_DIM, text_layers=2)
    return model, tokenizer


@pytest.fixture(scope="module")
def fp32_path(tiny_clip, tmp_path_factory):
    return export_text_encoder_onnx(tiny_clip[0], tmp_path_factory.mktemp("onnx") / "text.onnx")


@pytest.fixture(scope="module")
def fp16_path(fp32_path):
    return convert_text_encoder_fp16(fp32_path, fp32_path.with_name("text.fp16.onnx"))


def session(path):
    return ort.InferenceSession(
        str(path), providers=["CPUExecutionProvider"], disabled_optimizers=list(ORT_DISABLED_OPTIMIZERS)
    )


def run_onnx(path, tokens) -> np.ndarray:
    return session(path).run([EMBEDDINGS], {TOKENS: np.asarray(tokens, dtype=np.int64)})[0]


def open_clip_embeddings(model, tokens) -> np.ndarray:
    with torch.no_grad():
        return torch.nn.functional.normalize(model.encode_text(torch.as_tensor(tokens)), dim=-1).numpy()


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def tokens_with_garbage_after_eot(tokenizer, texts, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """Tokens, and the same tokens with random ids (all below EOT) after each EOT."""
    clean = tokenizer(texts).numpy()
    dirty = clean.copy()
    rng = np.random.default_rng(seed)
    for row in dirty:
        end = int(np.argmax(row))
        assert row[end] == EOT and end + 1 < CONTEXT
        row[end + 1 :] = rng.integers(1, EOT - 1, CONTEXT - end - 1)
    assert (dirty.argmax(axis=1) == clean.argmax(axis=1)).all()
    return clean, dirty


# --- FP32 export --------------------------------------------------------------------------


def test_fp32_export_is_valid_onnx_with_the_documented_interface(fp32_path):
    model = onnx.load(str(fp32_path))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17
    (tokens,), (embeddings,) = model.graph.input, model.graph.output
    assert tokens.name == TOKENS and tokens.type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert [d.dim_param or d.dim_value for d in tokens.type.tensor_type.shape.dim] == ["texts", CONTEXT]
    assert embeddings.name == EMBEDDINGS and embeddings.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_param or d.dim_value for d in embeddings.type.tensor_type.shape.dim] == ["texts", EMBED_DIM]
    props = {p.key: p.value for p in model.metadata_props}
    assert props["clipsep_rt.precision"] == "fp32"
    assert props["clipsep_rt.embedding_dim"] == str(EMBED_DIM)
    # The causal mask is applied as an additive mask before each Softmax, in the graph.
    assert sum(node.op_type == "Softmax" for node in model.graph.node) == 2


def test_fp32_matches_open_clip_on_prompts_of_different_lengths(tiny_clip, fp32_path):
    model, tokenizer = tiny_clip
    minimum = verify_text_encoder_onnx(model, tokenizer, fp32_path, PROMPTS, FP32_MIN_COSINE)
    assert minimum >= FP32_MIN_COSINE


@pytest.mark.parametrize("batch", [1, 5])
def test_fp32_batch_sizes(tiny_clip, fp32_path, batch):
    model, tokenizer = tiny_clip
    tokens = tokenizer(PROMPTS[:batch]).numpy()
    got = run_onnx(fp32_path, tokens)
    assert got.shape == (batch, EMBED_DIM) and got.dtype == np.float32
    assert cosines(got, open_clip_embeddings(model, tokens)).min() >= FP32_MIN_COSINE
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # A row does not depend on the others in its batch.
    np.testing.assert_allclose(got[:1], run_onnx(fp32_path, tokens[:1]), atol=1e-6)


def test_verify_raises_below_min_cosine(tiny_clip, fp32_path, open_clip):
    _, tokenizer = tiny_clip
    other, _ = build_tiny_clip(embed_dim=EMBED_DIM, text_layers=2, seed=1)
    with pytest.raises(ClipsepError, match="differ from open_clip's"):
        verify_text_encoder_onnx(other, tokenizer, fp32_path, PROMPTS[:2], FP32_MIN_COSINE)


def test_export_refuses_a_wrong_context_length(tiny_clip, tmp_path):
    with pytest.raises(ClipsepError, match="context_length 64"):
        export_text_encoder_onnx(tiny_clip[0], tmp_path / "x.onnx", context_length=64)
    assert not (tmp_path / "x.onnx").exists()


# --- causal mask --------------------------------------------------------------------------


def test_causal_mask_survives_export(tiny_clip, fp32_path, fp16_path):
    """Tokens after EOT cannot reach the EOT position, where CLIP pools, only through the mask."""
    model, tokenizer = tiny_clip
    clean, dirty = tokens_with_garbage_after_eot(tokenizer, PROMPTS[:3])
    np.testing.assert_array_equal(open_clip_embeddings(model, clean), open_clip_embeddings(model, dirty))
    for path in (fp32_path, fp16_path):
        np.testing.assert_array_equal(run_onnx(path, clean), run_onnx(path, dirty))


def test_mask_check_would_catch_a_maskless_graph(tiny_clip, tmp_path):
    """Control: the same model exported without its mask does see the tokens after EOT."""
    model, tokenizer = tiny_clip
    maskless = copy.deepcopy(model)
    maskless.attn_mask.zero_()
    path = export_text_encoder_onnx(maskless, tmp_path / "maskless.onnx")
    clean, dirty = tokens_with_garbage_after_eot(tokenizer, PROMPTS[:3])
    changed = 1.0 - cosines(run_onnx(path, clean), run_onnx(path, dirty))
    assert (changed > 1e-4).all()


def test_dynamo_exporter_gives_the_same_graph_interface_and_numerics(tiny_clip, tmp_path):
    model, tokenizer = tiny_clip
    with pytest.raises(ClipsepError, match="opset 18"):
        export_text_encoder_onnx(model, tmp_path / "d.onnx", dynamo=True)
    path = export_text_encoder_onnx(model, tmp_path / "d.onnx", opset=18, dynamo=True)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    assert verify_text_encoder_onnx(model, tokenizer, path, PROMPTS, FP32_MIN_COSINE) >= FP32_MIN_COSINE
    clean, dirty = tokens_with_garbage_after_eot(tokenizer, PROMPTS[:3])
    np.testing.assert_array_equal(run_onnx(path, clean), run_onnx(path, dirty))
    half = convert_text_encoder_fp16(path, tmp_path / "d16.onnx")
    assert verify_text_encoder_onnx(model, tokenizer, half, PROMPTS, FP16_MIN_COSINE) >= FP16_MIN_COSINE


# --- FP16 ---------------------------------------------------------------------------------


def test_fp16_matches_open_clip(tiny_clip, fp16_path):
    model, tokenizer = tiny_clip
    assert verify_text_encoder_onnx(model, tokenizer, fp16_path, PROMPTS, FP16_MIN_COSINE) >= FP16_MIN_COSINE
    tokens = tokenizer(PROMPTS).numpy()
    for batch in (1, 5):
        got = run_onnx(fp16_path, tokens[:batch])
        assert got.shape == (batch, EMBED_DIM) and got.dtype == np.float32
        assert cosines(got, open_clip_embeddings(model, tokens[:batch])).min() >= FP16_MIN_COSINE


def test_fp16_file_is_smaller_keeps_io_types_and_float32_islands(fp32_path, fp16_path):
    assert fp16_path.stat().st_size < 0.6 * fp32_path.stat().st_size
    model = onnx.load(str(fp16_path))
    onnx.checker.check_model(model, full_check=True)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    weights = {init.name: init.data_type for init in model.graph.initializer}
    assert weights["model.token_embedding.weight"] == onnx.TensorProto.FLOAT16
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True).graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*inferred.value_info, *inferred.input)}
    types.update(weights)
    first_input_type = {node.name: types.get(node.input[0]) for node in model.graph.node if node.input}
    kept = [node for node in model.graph.node if node.op_type in ("LayerNormalization", "Softmax", "ReduceL2")]
    assert len(kept) == 2 * 2 + 1 + 2 + 1  # ln_1, ln_2 per layer; ln_final; Softmax per layer; ReduceL2
    assert all(first_input_type[node.name] == onnx.TensorProto.FLOAT for node in kept)
    # LayerNorm gains and biases stay float32, also where the exporter merged a bias of zeros
    # with an attention bias that is float16 now (the converter gets an untied copy).
    norms = [node for node in model.graph.node if node.op_type == "LayerNormalization"]
    assert all(weights[name] == onnx.TensorProto.FLOAT for node in norms for name in node.input[1:])
    divide = next(node for node in model.graph.node if EMBEDDINGS in node.output)
    assert divide.op_type == "Div" and first_input_type[divide.name] == onnx.TensorProto.FLOAT
    matmuls = [node for node in model.graph.node if node.op_type == "MatMul"]
    assert sum(first_input_type[node.name] == onnx.TensorProto.FLOAT16 for node in matmuls) >= 8
    props = {p.key: p.value for p in model.metadata_props}
    assert props["clipsep_rt.precision"] == "fp16"


def test_fp16_can_keep_attention_scores_in_fp32(tiny_clip, fp32_path, tmp_path):
    model, tokenizer = tiny_clip
    path = convert_text_encoder_fp16(fp32_path, tmp_path / "scores32.onnx", keep_attention_scores_fp32=True)
    graph = onnx.load(str(path)).graph
    producers = {out: node for node in graph.node for out in node.output}
    for softmax in (node for node in graph.node if node.op_type == "Softmax"):
        node = producers[softmax.input[0]]
        while node.op_type != "MatMul":  # back through the mask Add; no Cast in between
            assert node.op_type in ("Add", "Mul", "Div"), node.op_type
            node = producers[node.input[0]] if node.input[0] in producers else producers[node.input[1]]
    assert verify_text_encoder_onnx(model, tokenizer, path, PROMPTS, FP16_MIN_COSINE) >= FP16_MIN_COSINE


def test_fp16_refuses_an_fp16_source(fp16_path, tmp_path):
    with pytest.raises(ClipsepError, match="float16"):
        convert_text_encoder_fp16(fp16_path, tmp_path / "twice.onnx")


# --- OnnxTextEncoder ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_encoder(tiny_clip):
    model, tokenizer = tiny_clip
    return OpenClipEncoder("tiny-test", "random-init", model=model, tokenizer=tokenizer)


def test_onnx_encoder_matches_open_clip_encoder(torch_encoder, fp32_path):
    encoder = OnnxTextEncoder(fp32_path, "ViT-B-32", encoder_id=torch_encoder.encoder_id)
    assert isinstance(encoder, QueryEncoder)
    assert encoder.encoder_id == ENCODER_ID == torch_encoder.encoder_id  # cache entries are shared
    assert encoder.embedding_dim == EMBED_DIM == torch_encoder.embedding_dim
    assert encoder.default_templates == OpenClipEncoder.default_templates == ("a photo of {}",)
    got = encoder.encode_text(PROMPTS)
    assert got.shape == (len(PROMPTS), EMBED_DIM) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert cosines(got, torch_encoder.encode_text(PROMPTS)).min() >= FP32_MIN_COSINE
    assert encoder.encode_text([]).shape == (0, EMBED_DIM)


def test_onnx_encoder_runs_the_fp16_graph(torch_encoder, fp16_path):
    encoder = OnnxTextEncoder(fp16_path, encoder_id=torch_encoder.encoder_id)
    got = encoder.encode_text(PROMPTS)
    assert got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert cosines(got, torch_encoder.encode_text(PROMPTS)).min() >= FP16_MIN_COSINE


def test_onnx_encoder_errors(fp32_path, tmp_path, monkeypatch):
    with pytest.raises(ClipsepError, match="not found"):
        OnnxTextEncoder(tmp_path / "missing.onnx", encoder_id=ENCODER_ID)
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(ClipsepError, match="cannot load"):
        OnnxTextEncoder(tmp_path / "junk.onnx", encoder_id=ENCODER_ID)
    short = OnnxTextEncoder(fp32_path, encoder_id=ENCODER_ID, tokenizer=lambda texts: np.ones((len(texts), 16)))
    with pytest.raises(ClipsepError, match="16 tokens"):
        short.encode_text(["a"])
    monkeypatch.setitem(sys.modules, "open_clip", None)  # as if not installed
    with pytest.raises(ClipsepError, match=r"pip install 'clipsep-rt\[clip\]'"):
        OnnxTextEncoder(fp32_path, encoder_id=ENCODER_ID)
