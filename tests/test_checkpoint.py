"""Checkpoints: the released CLIPSep-NIT layout, the project's format, and conversion."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import REFERENCE, REFERENCE_CHECKPOINT
from safetensors.torch import save_file

from clipsep_rt.config import ModelConfig
from clipsep_rt.errors import ClipsepError
from clipsep_rt.model import (
    CLIPSepSeparator,
    checkpoint_from_model,
    load_checkpoint,
    save_checkpoint,
)
from clipsep_rt.model.official import from_official_state, official_key_map


def test_full_size_layout_infers_the_paper_architecture():
    layout = json.loads((REFERENCE / "official_nit_layout.json").read_text())
    state = {key: torch.zeros(shape) for key, shape in layout["keys"].items()}
    config, own = from_official_state(state)
    assert config == ModelConfig(depth=7, ngf=64, channels=32, query_dim=512, noise_heads=2)
    model = CLIPSepSeparator(config)
    model.load_state_dict(own, strict=True)
    assert sum(p.numel() for p in model.parameters()) == layout["num_parameters"] == 30_292_771
    # Shapes line up key by key.
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {k: tuple(own[k].shape) for k in own}


def test_small_reference_checkpoint_infers_ngf_8(reference_checkpoint):
    assert reference_checkpoint.model_config == ModelConfig(depth=7, ngf=8, channels=32, query_dim=512, noise_heads=2)
    assert reference_checkpoint.query_encoder == "open_clip:ViT-B-32/openai"
    assert reference_checkpoint.provenance["converted_from"] == REFERENCE_CHECKPOINT.name


@pytest.mark.parametrize("depth", [5, 6, 8])
def test_other_depths_round_trip_through_the_official_layout(depth):
    config = ModelConfig(depth=depth, ngf=4, query_dim=16, noise_heads=2)
    model = CLIPSepSeparator(config)
    official = {f"module.{theirs}": model.state_dict()[ours] for ours, theirs in official_key_map(config).items()}
    inferred, own = from_official_state(official)
    assert inferred == config
    assert all(torch.equal(own[key], value) for key, value in model.state_dict().items())


def test_own_format_round_trip_keeps_outputs_and_metadata(tmp_path, reference_checkpoint, golden):
    path = tmp_path / "model.safetensors"
    save_checkpoint(reference_checkpoint, path)
    loaded = load_checkpoint(path)
    assert loaded.model_config == reference_checkpoint.model_config
    assert loaded.spectral_config == reference_checkpoint.spectral_config
    assert loaded.query_encoder == "open_clip:ViT-B-32/openai"
    assert loaded.provenance["source_sha256"] == reference_checkpoint.provenance["source_sha256"]
    x = torch.from_numpy(golden["warped_log_mag"])[None, None]
    q = torch.from_numpy(golden["query_embedding"])
    with torch.no_grad():
        a, b = reference_checkpoint.build()(x, q), loaded.build()(x, q)
    assert torch.equal(a.query, b.query) and torch.equal(a.noise, b.noise)


def test_half_storage_is_close_and_smaller(tmp_path, reference_checkpoint):
    full, half = tmp_path / "full.safetensors", tmp_path / "half.safetensors"
    save_checkpoint(reference_checkpoint, full)
    save_checkpoint(reference_checkpoint, half, half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = load_checkpoint(half)
    for key, value in reference_checkpoint.state_dict.items():
        if value.is_floating_point():
            torch.testing.assert_close(loaded.state_dict[key], value, atol=2e-3, rtol=1e-3)


def test_plain_clipsep_has_no_noise_heads(tmp_path):
    model = CLIPSepSeparator(ModelConfig(depth=5, ngf=4, query_dim=8, noise_heads=0))
    path = tmp_path / "clipsep.safetensors"
    save_checkpoint(checkpoint_from_model(model, "minilm:all-MiniLM-L6-v2"), path)
    loaded = load_checkpoint(path)
    assert loaded.model_config.noise_heads == 0
    with torch.no_grad():
        logits = loaded.build()(torch.randn(1, 1, 64, 64), torch.randn(2, 8))
    assert logits.query.shape == (1, 2, 64, 64) and logits.noise.shape == (1, 2, 0, 64, 64)


def test_unet_runs_once_whatever_the_query_count():
    model = CLIPSepSeparator(ModelConfig(depth=5, ngf=4, query_dim=8)).eval()
    calls = []
    model.unet.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        logits = model(torch.randn(2, 1, 64, 64), torch.randn(5, 8))
    assert len(calls) == 1
    assert logits.query.shape == (2, 5, 64, 64) and logits.noise.shape == (2, 5, 2, 64, 64)


def test_bad_checkpoints_are_one_line_errors(tmp_path):
    cases = {}
    (tmp_path / "text.pt").write_text("not a checkpoint")
    cases["text.pt"] = "cannot be read as a PyTorch checkpoint"
    torch.save({"module.something.weight": torch.zeros(3)}, tmp_path / "other.pt")
    cases["other.pt"] = "not a CLIPSep checkpoint"
    state = torch.load(REFERENCE_CHECKPOINT, weights_only=True)
    state["module.extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "extra.pt")
    cases["extra.pt"] = "unexpected key 'extra.weight'"
    save_file({"x": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    cases["plain.safetensors"] = "without clipsep-rt metadata"
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 20)
    cases["broken.safetensors"] = "not a readable safetensors file"
    for name, message in cases.items():
        with pytest.raises(ClipsepError) as error:
            load_checkpoint(tmp_path / name)
        text = str(error.value)
        assert name in text and message in text and "\n" not in text, text


def test_convert_refuses_to_overwrite(tmp_path, capsys):
    from clipsep_rt.cli import main

    out = tmp_path / "m.safetensors"
    assert main(["convert", str(REFERENCE_CHECKPOINT), "-o", str(out)]) == 0
    out_bytes = out.read_bytes()
    assert main(["convert", str(REFERENCE_CHECKPOINT), "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == out_bytes
    assert main(["convert", str(REFERENCE_CHECKPOINT), "-o", str(out), "--overwrite", "--half"]) == 0
    assert load_checkpoint(out).state_dict["heads.scale"].dtype == torch.float32
    np.testing.assert_allclose(
        load_checkpoint(out).state_dict["heads.scale"].numpy(),
        torch.load(REFERENCE_CHECKPOINT, weights_only=True)["module.synth_net.scale"].numpy(),
        rtol=1e-3,
    )


def test_convert_resaves_a_project_checkpoint_in_half_precision(tmp_path, capsys):
    from clipsep_rt.cli import main

    full = tmp_path / "full.safetensors"
    assert main(["convert", str(REFERENCE_CHECKPOINT), "-o", str(full), "--query-encoder", "minilm"]) == 0
    half = tmp_path / "half.safetensors"
    assert main(["convert", str(full), "-o", str(half), "--half"]) == 0
    source, converted = load_checkpoint(full), load_checkpoint(half)
    assert converted.query_encoder == "minilm" and converted.model_config == source.model_config
    weight = next(k for k, v in source.state_dict.items() if v.ndim == 4)
    torch.testing.assert_close(converted.state_dict[weight].float(), source.state_dict[weight], rtol=1e-3, atol=1e-4)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    assert main(["convert", str(full), "-o", str(full), "--overwrite", "--half"]) == 2
    assert "onto itself" in capsys.readouterr().err
