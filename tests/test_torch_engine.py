"""The torch engine's settings: devices, precisions, CUDA graphs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clipsep_rt.config import ModelConfig
from clipsep_rt.errors import ClipsepError, OptionError
from clipsep_rt.model import CLIPSepSeparator
from clipsep_rt.runtime.engines.torch_engine import TorchEngine
from clipsep_rt.model.device import resolve_device, resolve_precision
from clipsep_rt.model.hardware import cpu_has_native_bf16


def tiny():
    return CLIPSepSeparator(ModelConfig(ngf=2, query_dim=8))


def test_precision_resolution():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision("auto", cuda) == "fp16"
    assert resolve_precision("auto", cpu) == ("bf16" if cpu_has_native_bf16() else "fp32")
    assert resolve_precision("fp32", cpu) == "fp32"
    with pytest.raises(ClipsepError, match="fp16 needs -d cuda"):
        resolve_precision("fp16", cpu)
    with pytest.raises(ClipsepError, match="expected one of"):
        resolve_precision("int8", cpu)


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ClipsepError, match="expected cpu, cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ClipsepError, match="CUDA is not available"):
            resolve_device("cuda")


def test_cuda_graphs_need_cuda():
    with pytest.raises(OptionError, match="CUDA graphs need device cuda"):
        TorchEngine(tiny(), "cpu", "fp32", cuda_graphs=True)


def test_queries_prepared_once_give_row_layout_per_query():
    engine = TorchEngine(tiny(), "cpu", "fp32")
    assert engine.device == "cpu" and engine.torch_device == torch.device("cpu")
    embeddings = torch.randn(3, 8).numpy()
    prepared = engine.prepare_queries(embeddings, noise_heads=True)
    assert prepared.rows == 9
    log_mag = torch.randn(2, 1, 256, 256).numpy()
    masks = engine.probabilities(log_mag, prepared)
    assert isinstance(masks, np.ndarray) and masks.dtype == np.float32 and masks.shape == (2, 9, 256, 256)
    alone = engine.probabilities(log_mag, engine.prepare_queries(embeddings[1:2], noise_heads=True))
    np.testing.assert_allclose(masks[:, 3:6], alone, atol=1e-5, rtol=1.3e-6)  # query 1: its mask, then its two noise heads
    with torch.no_grad():
        logits = engine.model(torch.from_numpy(log_mag), torch.from_numpy(embeddings))
    np.testing.assert_allclose(masks[:, 0::3], torch.sigmoid(logits.query).numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(masks[:, 4], torch.sigmoid(logits.noise[:, 1, 0]).numpy(), atol=1e-6, rtol=0)
