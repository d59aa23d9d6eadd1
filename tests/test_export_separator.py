"""The separator as ONNX: BatchNorm folding, export, ORT vs torch, graph structure, FP16."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from clipsep_rt.config import ModelConfig
from clipsep_rt.errors import ClipsepError
from clipsep_rt.export.separator_onnx import (
    check_onnx,
    compare_fp16,
    convert_separator_fp16,
    export_separator_onnx,
    fold_batchnorm,
    mask_snr_db,
    verify_separator_onnx,
)
from clipsep_rt.model import CLIPSepSeparator


@pytest.fixture(scope="module")
def reference_model(reference_checkpoint):
    return reference_checkpoint.build()


@pytest.fixture(scope="module")
def exported(reference_model, tmp_path_factory):
    return export_separator_onnx(reference_model, tmp_path_factory.mktemp("onnx") / "separator.onnx")


@pytest.fixture(scope="module")
def exported_fp16(exported, tmp_path_factory):
    return convert_separator_fp16(exported, tmp_path_factory.mktemp("onnx16") / "separator_fp16.onnx")


def small_model(noise_heads: int = 2, seed: int = 0) -> CLIPSepSeparator:
    """ngf=4, with non-trivial BatchNorm statistics and affines."""
    torch.manual_seed(seed)
    model = CLIPSepSeparator(ModelConfig(ngf=4, noise_heads=noise_heads))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.2)
    return model.eval()


def inputs(batch=3, queries=2, frames=256, seed=1):
    generator = torch.Generator().manual_seed(seed)
    log_mag = torch.randn(batch, 1, 256, frames, generator=generator) * 3 - 2
    return log_mag, torch.randn(queries, 512, generator=generator)


def conv_following_norms(model: CLIPSepSeparator) -> list[nn.Module]:
    return list(model.unet.down_norms) + list(model.unet.up_norms)


# ------------------------------------------------------------------------ BatchNorm folding


def test_fold_batchnorm_is_exact_and_removes_every_norm_after_a_conv(reference_model):
    folded = fold_batchnorm(reference_model)
    assert all(isinstance(norm, nn.Identity) for norm in conv_following_norms(folded))
    batch_norms = [name for name, module in folded.named_modules() if isinstance(module, nn.BatchNorm2d)]
    assert batch_norms == ["unet.input_norm"]  # on the input, before a zero-padded conv: kept
    assert not folded.training
    # The original is untouched.
    assert all(isinstance(norm, nn.BatchNorm2d) for norm in conv_following_norms(reference_model))

    log_mag, embeddings = inputs()
    with torch.no_grad():
        # Exact up to rounding: in float64 the two agree far below 1e-5 ...
        double = copy.deepcopy(reference_model).double()
        want = double(log_mag.double(), embeddings.double())
        got = fold_batchnorm(double)(log_mag.double(), embeddings.double())
        torch.testing.assert_close(got.query, want.query, atol=1e-5, rtol=0)
        torch.testing.assert_close(got.noise, want.noise, atol=1e-5, rtol=0)
        # ... and in float32 up to a few ulps of logits that reach ~40.
        want = reference_model(log_mag, embeddings)
        got = folded(log_mag, embeddings)
        torch.testing.assert_close(got.query, want.query, atol=1e-4, rtol=0)
        torch.testing.assert_close(got.noise, want.noise, atol=1e-4, rtol=0)


def test_fold_batchnorm_small_model_float32_and_idempotent():
    model = small_model()
    folded = fold_batchnorm(model)
    twice = fold_batchnorm(folded)
    log_mag, embeddings = inputs(batch=2, queries=3)
    with torch.no_grad():
        want = model(log_mag, embeddings)
        for candidate in (folded, twice):
            got = candidate(log_mag, embeddings)
            torch.testing.assert_close(got.query, want.query, atol=1e-5, rtol=0)
            torch.testing.assert_close(got.noise, want.noise, atol=1e-5, rtol=0)


# ------------------------------------------------------------------------- export and ORT


def test_export_passes_checks_and_matches_torch(reference_model, exported):
    check_onnx(exported)
    snrs = verify_separator_onnx(reference_model, exported, batch_sizes=(1, 7), query_counts=(1, 5))
    assert set(snrs) == {"query_logits", "noise_logits"}
    assert all(snr >= 90 for snr in snrs.values()), snrs

    graph = onnx.load(str(exported)).graph
    shapes = {
        info.name: [dim.dim_param or dim.dim_value for dim in info.type.tensor_type.shape.dim]
        for info in list(graph.input) + list(graph.output)
    }
    assert shapes == {
        "log_mag": ["batch", 1, 256, 256],
        "embeddings": ["queries", 512],
        "query_logits": ["batch", "queries", 256, 256],
        "noise_logits": ["batch", "queries", 2, 256, 256],
    }


def test_graph_structure(exported, reference_model):
    model = onnx.load(str(exported))
    assert max(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")) >= 17
    nodes = model.graph.node
    op_types = {node.op_type for node in nodes}
    assert "GridSample" not in op_types
    resizes = [node for node in nodes if node.op_type == "Resize"]
    assert len(resizes) == reference_model.config.depth
    for node in resizes:
        attributes = {attr.name: onnx.helper.get_attribute_value(attr) for attr in node.attribute}
        assert attributes["coordinate_transformation_mode"] == b"align_corners"
        assert attributes["mode"] == b"linear"
    batch_norms = [node for node in nodes if node.op_type == "BatchNormalization"]
    assert len(batch_norms) <= 1
    for node in batch_norms:
        assert node.input[0] == "log_mag"  # only the input normalisation remains
    assert "Cast" not in op_types and "Identity" not in op_types


def test_onnx_reproduces_the_golden_logits(exported, golden):
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    query, noise = session.run(
        ["query_logits", "noise_logits"],
        {"log_mag": golden["warped_log_mag"][None, None], "embeddings": golden["query_embedding"]},
    )
    np.testing.assert_allclose(query[0, 0], golden["query_mask_logits"], atol=1e-3, rtol=0)
    np.testing.assert_allclose(noise[0, 0], golden["noise_mask_logits"], atol=1e-3, rtol=0)


def test_verify_reports_a_mismatch(reference_model, exported):
    other = fold_batchnorm(reference_model)
    with torch.no_grad():
        other.heads.bias += 1e-2
    with pytest.raises(ClipsepError, match=r"query_logits masks are only .* dB SNR from torch's \(need 90 dB\)"):
        verify_separator_onnx(other, exported, batch_sizes=(1,), query_counts=(1,))
    with torch.no_grad():
        other.heads.bias -= 1e-2 - 1e-3  # off by 1e-3 only: ~76 dB, still refused
    with pytest.raises(ClipsepError, match="masks are only"):
        verify_separator_onnx(other, exported, batch_sizes=(1,), query_counts=(1,))


def test_plain_clipsep_with_dynamic_frames(tmp_path):
    model = small_model(noise_heads=0)
    path = export_separator_onnx(model, tmp_path / "plain.onnx", window_frames=128, dynamic_frames=True)
    graph = onnx.load(str(path)).graph
    dims = {info.name: [d.dim_param or d.dim_value for d in info.type.tensor_type.shape.dim] for info in graph.output}
    assert dims["noise_logits"] == ["batch", "queries", 0, 256, "frames"]
    for frames in (128, 384):
        # Resize and torch round their float32 sampling coordinates differently; the error
        # that makes grows with the frame count (~1e-4 in the logits at 384 frames, ~110 dB
        # in the masks), within the default bound of 90 dB.
        snrs = verify_separator_onnx(model, path, batch_sizes=(2,), query_counts=(3,), frames=frames)
        assert snrs["noise_logits"] == float("inf")  # empty for plain CLIPSep
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    log_mag, embeddings = inputs(batch=2, queries=3, frames=128)
    query, noise = session.run(None, {"log_mag": log_mag.numpy(), "embeddings": embeddings.numpy()})
    assert query.shape == (2, 3, 256, 128) and noise.shape == (2, 3, 0, 256, 128)


def test_export_refuses_bad_frames_and_opset(tmp_path):
    model = small_model()
    with pytest.raises(ClipsepError, match="multiple"):
        export_separator_onnx(model, tmp_path / "x.onnx", window_frames=200)
    with pytest.raises(ClipsepError, match="opset"):
        export_separator_onnx(model, tmp_path / "x.onnx", opset=13)
    assert not (tmp_path / "x.onnx").exists()


def test_check_onnx_rejects_broken_files(tmp_path, exported):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not an onnx model")
    with pytest.raises(ClipsepError, match="garbage.onnx"):
        check_onnx(garbage)
    with pytest.raises(ClipsepError, match="no such"):
        check_onnx(tmp_path / "missing.onnx")
    # A graph whose declared output shape contradicts what the ops compute.
    model = onnx.load(str(exported))
    model.graph.output[0].type.tensor_type.shape.dim[2].dim_value = 100
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    with pytest.raises(ClipsepError, match="broken.onnx"):
        check_onnx(broken)


# ------------------------------------------------------------------------------------ FP16


def test_fp16_graph_is_valid_with_float32_io(exported_fp16):
    check_onnx(exported_fp16)
    model = onnx.load(str(exported_fp16))
    float32 = onnx.TensorProto.FLOAT
    assert all(
        info.type.tensor_type.elem_type == float32 for info in list(model.graph.input) + list(model.graph.output)
    )
    weights = [init for init in model.graph.initializer if init.dims and np.prod(init.dims) > 16]
    assert weights and all(init.data_type == onnx.TensorProto.FLOAT16 for init in weights)


def test_fp16_masks_within_40_db_of_fp32(exported, exported_fp16):
    snrs = compare_fp16(exported, exported_fp16, batch_sizes=(1, 7), query_counts=(1, 5))
    assert snrs["query_logits"] >= 40 and snrs["noise_logits"] >= 40, snrs


def test_fp16_keep_list_runs(exported, tmp_path):
    path = convert_separator_fp16(exported, tmp_path / "keep.onnx", keep_fp32=("BatchNormalization", "Einsum"))
    snrs = compare_fp16(exported, path, batch_sizes=(1,), query_counts=(1,))
    assert min(snrs.values()) >= 40


def test_mask_snr_db():
    logits = np.linspace(-8, 8, 1000)
    assert mask_snr_db(logits, logits) == float("inf")
    assert 40 < mask_snr_db(logits, logits + 1e-2) < 60
    assert mask_snr_db(logits, logits + 1e-1) < mask_snr_db(logits, logits + 1e-2)
