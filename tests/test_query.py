"""Query encoders, prompts, the embedding cache and embedding files (clipsep_rt.query)."""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pytest
import torch

from clipsep_rt.errors import ClipsepError
from clipsep_rt.optional import import_optional
from clipsep_rt.query import (
    ENSEMBLE_TEMPLATES,
    PAPER_TEMPLATE,
    EmbeddingCache,
    OpenClipEncoder,
    build_encoder,
    cache_key,
    check_embedding_dim,
    combine_prompt_embeddings,
    default_cache_dir,
    default_templates_for,
    encoder_id_for,
    l2_normalise,
    load_query_embeddings,
    parse_encoder_spec,
    render_prompts,
    save_query_embeddings,
)
from clipsep_rt.query.prompts import check_template
from clipsep_rt.query.embedder import QueryEmbedder, QueryEncoderOptions, embed_texts

# --- fakes -------------------------------------------------------------------------------


class FakeEncoder:
    """Deterministic embeddings derived from the text; counts what it encodes."""

    default_templates = ("{}",)

    def __init__(self, encoder_id: str = "fake:v1", dim: int = 8) -> None:
        self.encoder_id = encoder_id
        self.embedding_dim = dim
        self.encoded: list[str] = []

    def encode_text(self, texts: list[str]) -> np.ndarray:
        self.encoded += texts
        seeds = [int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) for text in texts]
        return l2_normalise(np.array([np.random.default_rng(s).normal(size=self.embedding_dim) for s in seeds]))


class CountingFactory:
    def __init__(self, encoder_id: str = "fake:v1", dim: int = 8) -> None:
        self.encoder_id, self.dim, self.calls = encoder_id, dim, 0
        self.encoders: list[FakeEncoder] = []

    def __call__(self) -> FakeEncoder:
        self.calls += 1
        self.encoders.append(FakeEncoder(self.encoder_id, self.dim))
        return self.encoders[-1]


def assert_unit_rows(embeddings: np.ndarray) -> None:
    assert embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


# --- prompts -----------------------------------------------------------------------------


def test_prompts_render_each_template():
    assert render_prompts("dog barking", [PAPER_TEMPLATE]) == ["a photo of dog barking"]
    assert render_prompts("a {b}", ["{}.", "the sound of {}."]) == ["a {b}.", "the sound of a {b}."]
    assert len(render_prompts("x", ENSEMBLE_TEMPLATES)) == len(ENSEMBLE_TEMPLATES)


@pytest.mark.parametrize("template", ["a photo", "{} and {}", "{query}", "{0}", "a {"])
def test_prompts_reject_bad_templates(template):
    with pytest.raises(ClipsepError, match="template"):
        check_template(template)


def test_prompt_ensemble_is_normalised_mean_of_normalised_rows():
    rows = np.array([[3.0, 0.0], [0.0, 0.5]], dtype=np.float32)
    np.testing.assert_allclose(combine_prompt_embeddings(rows), [2**-0.5, 2**-0.5], rtol=1e-6)


# --- open_clip backend (small model built here; no weights needed) -----------------------

TINY_CFG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def open_clip():
    import open_clip  # `make test` installs the clip extra: a broken import must fail, not skip

    return open_clip


@pytest.fixture(scope="module")
def tiny_clip(open_clip):
    torch.manual_seed(0)
    model = open_clip.CLIP(
        embed_dim=TINY_CFG["embed_dim"],
        vision_cfg=open_clip.CLIPVisionCfg(**TINY_CFG["vision_cfg"]),
        text_cfg=open_clip.CLIPTextCfg(**TINY_CFG["text_cfg"]),
    )
    tokenizer = open_clip.get_tokenizer("ViT-B-32")  # its BPE vocabulary ships with open_clip
    preprocess = open_clip.image_transform(32, is_train=False)
    return model, tokenizer, preprocess


@pytest.fixture(scope="module")
def tiny_encoder(tiny_clip):
    model, tokenizer, preprocess = tiny_clip
    return OpenClipEncoder("tiny-test", "random-init", model=model, tokenizer=tokenizer, preprocess=preprocess)


def test_open_clip_text_embeddings(tiny_encoder, tiny_clip):
    assert tiny_encoder.encoder_id == "open_clip:tiny-test/random-init"
    assert tiny_encoder.embedding_dim == 64
    texts = ["a photo of dog barking", "a photo of violin", "a photo of rain"]
    embeddings = tiny_encoder.encode_text(texts)
    assert embeddings.shape == (3, 64)
    assert_unit_rows(embeddings)
    model, tokenizer, _ = tiny_clip
    with torch.no_grad():
        direct = torch.nn.functional.normalize(model.encode_text(tokenizer(texts)), dim=-1).numpy()
    np.testing.assert_allclose(embeddings, direct, atol=1e-5)
    assert not np.allclose(embeddings[0], embeddings[1])


def test_open_clip_prompt_ensemble_is_normalised_mean(tiny_encoder):
    templates = ENSEMBLE_TEMPLATES
    got = embed_texts(["dog barking", "violin"], lambda: tiny_encoder, tiny_encoder.encoder_id, templates)
    assert got.shape == (2, 64)
    assert_unit_rows(got)
    per_template = tiny_encoder.encode_text([t.format("violin") for t in templates])
    mean = per_template.mean(axis=0)
    np.testing.assert_allclose(got[1], mean / np.linalg.norm(mean), atol=1e-5)


def test_open_clip_image_embeddings(tiny_encoder):
    from PIL import Image

    pixels = torch.rand(2, 3, 32, 32)
    embeddings = tiny_encoder.encode_image(pixels)
    assert embeddings.shape == (2, 64)
    assert_unit_rows(embeddings)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 40, 3), dtype=np.uint8))
    from_pil = tiny_encoder.encode_image([image])
    np.testing.assert_allclose(from_pil, tiny_encoder.encode_image(tiny_encoder._preprocess(image)[None]), atol=1e-6)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        tiny_encoder.encode_image(torch.rand(3, 32, 32))


@pytest.fixture
def tiny_weights_file(open_clip, tiny_clip, tmp_path, monkeypatch):
    """The tiny model as a registered open_clip architecture plus a weights file of it."""
    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, "tiny-test", json.loads(json.dumps(TINY_CFG)))
    path = tmp_path / "tiny weights.pt"
    torch.save(tiny_clip[0].state_dict(), path)
    return path


def test_open_clip_loads_local_weights_file(tiny_weights_file, tiny_encoder):
    sha = hashlib.sha256(tiny_weights_file.read_bytes()).hexdigest()
    encoder = OpenClipEncoder("tiny-test", str(tiny_weights_file))
    assert encoder.encoder_id == f"open_clip:tiny-test/tiny weights.pt@{sha[:12]}"
    assert encoder.encoder_id == encoder_id_for("open_clip:tiny-test", tiny_weights_file)
    texts = ["a photo of dog barking", "a photo of violin"]
    np.testing.assert_allclose(encoder.encode_text(texts), tiny_encoder.encode_text(texts), atol=1e-5)
    assert encoder.encode_image(torch.rand(1, 3, 32, 32)).shape == (1, 64)


def test_open_clip_weights_file_of_known_tag_gets_the_tags_quick_gelu(tiny_weights_file, open_clip, monkeypatch):
    from open_clip.transformer import QuickGELU

    sha = hashlib.sha256(tiny_weights_file.read_bytes()).hexdigest()
    url = f"https://openaipublic.azureedge.net/clip/models/{sha}/tiny.pt"
    monkeypatch.setattr(open_clip, "list_pretrained_tags_by_model", lambda name: ["fake-openai"])
    monkeypatch.setattr(open_clip, "get_pretrained_cfg", lambda name, tag: {"url": url, "quick_gelu": True})
    encoder = OpenClipEncoder("tiny-test", str(tiny_weights_file))
    assert any(isinstance(m, QuickGELU) for m in encoder._model.modules())


def test_open_clip_spec_with_file_id_needs_that_file(tiny_weights_file, tmp_path):
    file_id = encoder_id_for("open_clip:tiny-test", tiny_weights_file)
    assert encoder_id_for(file_id, tiny_weights_file) == file_id
    with pytest.raises(ClipsepError, match="pass that file"):
        encoder_id_for(file_id)
    other = tmp_path / "other.pt"
    other.write_bytes(b"not the same weights")
    with pytest.raises(ClipsepError, match="is not the one"):
        encoder_id_for(file_id, other)


@pytest.fixture
def no_model_built(open_clip, monkeypatch):
    """Fail the test if open_clip builds any model (random weights included)."""

    def refuse(*args, **kwargs):
        raise AssertionError("a CLIP model was built")

    for name in ("create_model", "create_model_and_transforms", "create_model_from_pretrained"):
        monkeypatch.setattr(open_clip, name, refuse)


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
    return tmp_path / "hf-cache"


@pytest.mark.parametrize(
    ("model_name", "pretrained"),
    [("ViT-B-32", "openai"), ("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", None)],
)
def test_open_clip_missing_weights_fail_fast_offline(model_name, pretrained, empty_hf_cache, no_model_built):
    import huggingface_hub.constants

    offline_before = huggingface_hub.constants.HF_HUB_OFFLINE
    start = time.monotonic()
    with pytest.raises(ClipsepError) as error:
        OpenClipEncoder(model_name, pretrained, cache_dir=empty_hf_cache)
    assert time.monotonic() - start < 10
    message = str(error.value)
    assert "\n" not in message
    assert "not in the local cache" in message and str(empty_hf_cache) in message
    assert f"open_clip.create_model_and_transforms('{model_name}'" in message
    assert ("--clip-weights" in message) == (pretrained is not None)  # hf-hub models bring their own
    assert huggingface_hub.constants.HF_HUB_OFFLINE == offline_before


@pytest.mark.parametrize("pretrained", [None, ""])
def test_open_clip_refuses_random_weights(pretrained, no_model_built):
    with pytest.raises(ClipsepError, match="needs pretrained weights"):
        OpenClipEncoder("ViT-B-32", pretrained)


def test_open_clip_unknown_model_tag_or_file(no_model_built, tmp_path):
    with pytest.raises(ClipsepError, match="no weights tagged 'nope' for ViT-B-32 .*openai"):
        OpenClipEncoder("ViT-B-32", "nope")
    with pytest.raises(ClipsepError, match="no model named 'ViT-Nope'"):
        OpenClipEncoder("ViT-Nope", "openai")
    with pytest.raises(ClipsepError, match="does not exist"):
        OpenClipEncoder("ViT-B-32", str(tmp_path / "missing.pt"))


def test_build_encoder_offline_without_weights(empty_hf_cache, no_model_built):
    import huggingface_hub.constants

    # The Hub's cache folder is fixed when huggingface_hub is imported; point it at an empty one.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(empty_hf_cache))
        with pytest.raises(ClipsepError, match="not in the local cache"):
            build_encoder("open_clip:ViT-B-32/openai")


# --- MiniLM backend ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    return build_encoder("minilm")


def test_minilm_real_embeddings(minilm):
    assert minilm.encoder_id == "minilm:all-MiniLM-L6-v2" == encoder_id_for("minilm")
    assert minilm.embedding_dim == 384
    embeddings = minilm.encode_text(["dog barking", "a dog is barking loudly", "violin music"])
    assert embeddings.shape == (3, 384)
    assert_unit_rows(embeddings)
    similar, unrelated = embeddings[0] @ embeddings[1], embeddings[0] @ embeddings[2]
    assert similar > unrelated + 0.3


def test_minilm_through_cache(minilm, tmp_path):
    cache = EmbeddingCache(tmp_path)
    first = embed_texts(["dog barking"], lambda: minilm, minilm.encoder_id, default_templates_for("minilm"), cache)
    again = embed_texts(["dog barking"], pytest.fail, minilm.encoder_id, default_templates_for("minilm"), cache)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, minilm.encode_text(["dog barking"]), atol=1e-6)


# --- cache ---------------------------------------------------------------------------------


def test_cache_hit_never_builds_the_encoder(tmp_path):
    cache, factory = EmbeddingCache(tmp_path), CountingFactory()
    first = embed_texts(["dog", "violin"], factory, "fake:v1", ENSEMBLE_TEMPLATES, cache)
    assert factory.calls == 1 and len(factory.encoders[0].encoded) == 2 * len(ENSEMBLE_TEMPLATES)
    again = embed_texts(["violin", "dog"], factory, "fake:v1", ENSEMBLE_TEMPLATES, cache)
    assert factory.calls == 1
    np.testing.assert_array_equal(again, first[::-1])
    assert again.shape == (2, 8)
    assert_unit_rows(again)
    embed_texts(["dog", "rain"], factory, "fake:v1", ENSEMBLE_TEMPLATES, cache)
    assert factory.calls == 2 and len(factory.encoders[1].encoded) == len(ENSEMBLE_TEMPLATES)  # only 'rain'


def test_cache_key_depends_on_encoder_and_prompt(tmp_path):
    assert cache_key("fake:v1", "a photo of dog") == hashlib.sha256(b"fake:v1\na photo of dog").hexdigest()
    assert cache_key("fake:v1", "a photo of dog") != cache_key("fake:v2", "a photo of dog")
    assert cache_key("fake:v1", "a photo of dog") != cache_key("fake:v1", "a photo of dog.")
    cache, factory = EmbeddingCache(tmp_path), CountingFactory("fake:v2")
    embed_texts(["dog"], CountingFactory(), "fake:v1", [PAPER_TEMPLATE], cache)
    embed_texts(["dog"], factory, "fake:v2", [PAPER_TEMPLATE], cache)
    assert factory.calls == 1


def test_cache_recovers_from_corrupt_entry(tmp_path):
    cache, factory = EmbeddingCache(tmp_path), CountingFactory()
    expected = embed_texts(["dog"], factory, "fake:v1", [PAPER_TEMPLATE], cache)
    entry = cache.path("fake:v1", "a photo of dog")
    for damage in (b"\x93NUMPY garbage", b""):
        entry.write_bytes(damage)
        assert cache.get("fake:v1", "a photo of dog") is None
        np.testing.assert_array_equal(embed_texts(["dog"], factory, "fake:v1", [PAPER_TEMPLATE], cache), expected)
        np.testing.assert_allclose(cache.get("fake:v1", "a photo of dog"), expected[0], atol=1e-6)
    np.save(entry, np.full(8, 5.0, dtype=np.float32))  # readable, but not a unit vector
    assert cache.get("fake:v1", "a photo of dog") is None
    assert factory.calls == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [entry.name]  # no temporary files left


def test_cache_rejects_entry_of_another_size(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.put("fake:v1", "a photo of dog", l2_normalise(np.ones((1, 8)))[0])
    assert cache.get("fake:v1", "a photo of dog", dim=8) is not None
    assert cache.get("fake:v1", "a photo of dog", dim=4) is None
    factory = CountingFactory(dim=4)
    got = embed_texts(["dog"], factory, "fake:v1", [PAPER_TEMPLATE], cache, dim=4)
    assert factory.calls == 1 and got.shape == (1, 4)
    assert cache.get("fake:v1", "a photo of dog").shape == (4,)


def test_loaded_encoder_overrules_cached_entries_of_another_size(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.put("fake:v1", "a photo of dog", l2_normalise(np.ones((1, 8)))[0])
    got = embed_texts(["dog", "cat"], CountingFactory(dim=4), "fake:v1", [PAPER_TEMPLATE], cache)
    assert got.shape == (2, 4)


def test_embed_texts_checks_the_factory_builds_the_named_encoder(tmp_path):
    with pytest.raises(ValueError, match="fake:v2"):
        embed_texts(["dog"], CountingFactory("fake:v2"), "fake:v1", [PAPER_TEMPLATE], EmbeddingCache(tmp_path))


def test_cache_that_cannot_be_written_does_not_stop_a_run(tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    got = embed_texts(["dog"], CountingFactory(), "fake:v1", [PAPER_TEMPLATE], EmbeddingCache(blocker))
    assert got.shape == (1, 8)
    assert "cannot write embedding cache entry" in caplog.text


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("CLIPSEP_RT_CACHE_DIR")  # the suite's user cache (conftest)
    monkeypatch.setenv("CLIPSEP_RT_CACHE", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    assert EmbeddingCache().root == tmp_path / "mine"
    monkeypatch.delenv("CLIPSEP_RT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "clipsep-rt" / "embeddings"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "clipsep-rt" / "embeddings"


def test_check_embedding_dim():
    check_embedding_dim(np.zeros((2, 512), np.float32), 512, "open_clip:ViT-B-32/openai", "ckpt.pt")
    with pytest.raises(ClipsepError) as error:
        check_embedding_dim(np.zeros((1, 384), np.float32), 512, "open_clip:ViT-B-32/openai", "ckpt.pt")
    assert str(error.value) == (
        "query embedding has 384 values but checkpoint ckpt.pt expects 512 (trained with open_clip:ViT-B-32/openai)"
    )
    with pytest.raises(ClipsepError, match="from minilm:all-MiniLM-L6-v2 has 384 values"):
        check_embedding_dim(np.zeros((1, 384)), 512, None, "ckpt.pt", "minilm:all-MiniLM-L6-v2")
    with pytest.raises(ClipsepError, match=r"shape \(N, D\)"):
        check_embedding_dim(np.zeros(512), 512, None, "ckpt.pt")


# --- embedding files -----------------------------------------------------------------------


def test_npy_vector_is_used_exactly_as_stored(tmp_path):
    path = tmp_path / "dog.npy"
    np.save(path, np.array([3.0, 4.0, 0.1], dtype=np.float64))
    names, embeddings = load_query_embeddings(path)
    assert names == ["dog"]
    assert embeddings.dtype == np.float32 and embeddings.shape == (1, 3)
    np.testing.assert_array_equal(embeddings, np.array([[3.0, 4.0, 0.1]], dtype=np.float32))


def test_npy_matrix(tmp_path):
    path = tmp_path / "q.npy"
    np.save(path, np.arange(1, 7, dtype=np.float32).reshape(2, 3))
    names, embeddings = load_query_embeddings(path)
    assert names == ["q_0", "q_1"] and embeddings.shape == (2, 3)


def test_npz_names_round_trip(tmp_path):
    path = tmp_path / "queries.npz"
    vectors = np.array([[1, 2, 3], [0, 0, 1], [5, 0, 0]], dtype=np.float32)
    save_query_embeddings(path, ["dog barking", "violin", "file"], vectors)
    names, embeddings = load_query_embeddings(path)
    assert names == ["dog barking", "violin", "file"]
    np.testing.assert_array_equal(embeddings, vectors)
    with pytest.raises(ClipsepError, match="unique"):
        save_query_embeddings(path, ["a", "a"], vectors[:2])


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.array([1.0, np.nan]), "NaN or infinite"),
        (np.array([1.0, np.inf]), "NaN or infinite"),
        (np.array([1e39, 1.0]), "NaN or infinite"),  # overflows float32
        (np.zeros(4), "all zeros"),
        (np.ones((2, 2, 2)), r"\(D,\) or \(N, D\)"),
        (np.zeros((0, 4)), "no values"),
        (np.array(["a", "b"]), "real numbers"),
        (np.array([1 + 1j, 0]), "real numbers"),
    ],
)
def test_bad_npy_rejected_naming_the_file(tmp_path, array, message):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(ClipsepError, match=message) as error:
        load_query_embeddings(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"dog": np.ones(3), "cat": np.array([0.0, np.nan, 1.0])}, "'cat'.* NaN"),
        ({"dog": np.ones(3), "cat": np.zeros(3)}, r"\('cat'\) is all zeros"),
        ({"dog": np.ones((1, 3))}, r"'dog' must have shape \(D,\)"),
        ({"dog": np.ones(3), "cat": np.ones(4)}, "differ in size"),
        ({}, "no arrays"),
    ],
)
def test_bad_npz_rejected_naming_the_file(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ClipsepError, match=message) as error:
        load_query_embeddings(path)
    assert str(path) in str(error.value)


def test_unreadable_or_missing_embedding_file(tmp_path):
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(b"definitely not numpy")
    with pytest.raises(ClipsepError, match="garbage.npy is not a readable"):
        load_query_embeddings(garbage)
    pickled = tmp_path / "pickled.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ClipsepError, match="pickled.npy is not a readable"):
        load_query_embeddings(pickled)
    with pytest.raises(ClipsepError, match="missing.npy does not exist"):
        load_query_embeddings(tmp_path / "missing.npy")


# --- registry ------------------------------------------------------------------------------


def test_encoder_specs():
    assert encoder_id_for("open_clip:ViT-B-32/openai") == "open_clip:ViT-B-32/openai"
    assert encoder_id_for("open_clip") == "open_clip:ViT-B-32/openai"
    assert encoder_id_for("open_clip:hf-hub:org/repo") == "open_clip:hf-hub:org/repo"
    assert encoder_id_for("minilm:all-MiniLM-L6-v2") == "minilm:all-MiniLM-L6-v2"
    assert parse_encoder_spec("open_clip:ViT-B-32/openai").pretrained == "openai"
    assert default_templates_for("open_clip:ViT-B-32/openai") == (PAPER_TEMPLATE,)
    assert default_templates_for("minilm") == ("{}",)


@pytest.mark.parametrize(
    ("spec", "weights", "message"),
    [
        ("clap", None, "unknown query encoder"),
        ("minilm:other", None, "only all-MiniLM-L6-v2"),
        ("minilm", "w.pt", "ships its own weights"),
        ("open_clip:ViT-B-32", None, "needs pretrained weights"),
        ("open_clip:ViT-B-32/openai", "w.pt", "give one of them"),
        ("open_clip:hf-hub:org/repo", "w.pt", "brings its own weights"),
        ("open_clip:local-dir:/x", None, "unsupported open_clip model"),
    ],
)
def test_bad_encoder_specs(spec, weights, message):
    with pytest.raises(ClipsepError, match=message):
        encoder_id_for(spec, weights)


def test_optional_import_errors_are_one_line(tmp_path, monkeypatch):
    with pytest.raises(ClipsepError, match=r"not installed: pip install 'clipsep-rt\[clip\]'"):
        import_optional("surely_not_an_installed_module", "clip")
    module = "raise RuntimeError('operator torchvision::nms does not exist\\nsecond line')\n"
    (tmp_path / "broken_dependency.py").write_text(module)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ClipsepError) as error:
        import_optional("broken_dependency", "clip")
    message = str(error.value)
    assert "\n" not in message
    assert "fails to import (RuntimeError: operator torchvision::nms does not exist)" in message
    assert "torchvision does not match torch" in message


# --- encoder sizes, checked before any weights are looked for (issue 12, item 4) -------------------


def test_known_embedding_sizes_match_open_clip_configs():
    from clipsep_rt.query.encoders.registry import KNOWN_EMBEDDING_DIMS, known_embedding_dim

    open_clip = pytest.importorskip("open_clip")
    for spec, dim in KNOWN_EMBEDDING_DIMS.items():
        backend, _, name = spec.partition(":")
        if backend == "open_clip":
            assert open_clip.get_model_config(name)["embed_dim"] == dim, spec
    assert known_embedding_dim("minilm") == 384 and known_embedding_dim("open_clip:ViT-L-14/openai") == 768
    assert known_embedding_dim("open_clip:hf-hub:org/unknown") is None


def test_an_encoder_of_the_wrong_size_is_refused_before_its_weights_are_looked_for(tmp_path, monkeypatch, capsys):
    """The bundled model takes 384-value MiniLM queries: a CLIP encoder (512) is refused naming both sizes,
    on separation and on `embed`, without building it (no 'weights missing' detour)."""
    import soundfile as sf

    import clipsep_rt.query.embedder as embedder
    from clipsep_rt.cli import main

    def no_build(*_, **__):
        raise AssertionError("the encoder was built")

    monkeypatch.setattr(embedder, "build_encoder", no_build)
    sf.write(tmp_path / "x.wav", np.zeros(16000, dtype=np.float32), 16000)
    wrong = ["--query-encoder", "open_clip:ViT-B-32/openai"]
    assert main([str(tmp_path / "x.wav"), "-q", "violin", *wrong, "--no-cache", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "open_clip:ViT-B-32/openai does not fit this model" in err
    assert "512-value embeddings and the model takes 384" in err and not (tmp_path / "out").exists()
    assert main(["embed", "violin", "-c", str(_default_checkpoint()), *wrong, "-o", str(tmp_path / "q.npz")]) == 2
    assert "512-value embeddings and the model takes 384" in capsys.readouterr().err
    assert not (tmp_path / "q.npz").exists()


def _default_checkpoint():
    from clipsep_rt.model.weights import default_checkpoint

    return default_checkpoint()


def test_embed_defaults_to_the_bundled_models_encoder(tmp_path, capsys):
    """`embed TEXT -o FILE` with no model and no encoder uses the bundled model's (MiniLM, 384 values),
    from the bundled folder's INT8 graph (no torch): within cosine 0.999 of sentence-transformers."""
    from clipsep_rt.cli import main
    from clipsep_rt.query import MiniLMEncoder

    assert main(["embed", "violin", "-o", str(tmp_path / "q.npz"), "--no-cache"]) == 0
    out = capsys.readouterr().out
    assert "with minilm:all-MiniLM-L6-v2 (384 values each, for the bundled default model)" in out
    with np.load(tmp_path / "q.npz") as stored:
        assert float(stored["violin"] @ MiniLMEncoder().encode_text(["violin"])[0]) > 0.999


def test_onnx_minilm_tokens_match_sentence_transformers():
    """The `tokenizers` set-up of the ONNX MiniLM encoder gives sentence-transformers' ids and masks,
    long texts cut at 256 tokens, a batch padded to its longest text."""
    from clipsep_rt.query import MiniLMEncoder
    from clipsep_rt.query.encoders.onnx_minilm import MAX_TOKENS, minilm_tokenizer

    encoder = MiniLMEncoder()
    texts = ["violin", "a dog barking loudly in a park", "rain on a tin roof " * 80]
    tokenizer = minilm_tokenizer(encoder.model_dir / "tokenizer.json")
    encodings = tokenizer.encode_batch(texts)
    want = encoder.model.preprocess(texts)
    assert encoder.model.max_seq_length == MAX_TOKENS
    np.testing.assert_array_equal(np.array([e.ids for e in encodings]), want["input_ids"].numpy())
    np.testing.assert_array_equal(np.array([e.attention_mask for e in encodings]), want["attention_mask"].numpy())
    assert len(encodings[2].ids) == MAX_TOKENS


def test_a_query_embedder_loads_its_encoder_once_for_all_new_texts(tmp_path):
    """A separator keeps one QueryEmbedder: every new text after the first costs one encoder call, not a load."""
    factory = CountingFactory()
    embedder = QueryEmbedder("minilm", QueryEncoderOptions(use_cache=False), factory=factory, encoder_id="fake:v1")
    assert not embedder.loaded and factory.calls == 0
    embedder.load()
    assert embedder.loaded and factory.calls == 1
    for text in ("dog", "violin", "rain"):
        assert embedder.embed_text([text]).shape == (1, 8)
    assert factory.calls == 1 and len(factory.encoders[0].encoded) == 3
