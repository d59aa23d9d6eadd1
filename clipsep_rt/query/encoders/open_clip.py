"""CLIP query encoder on open_clip: the paper's ViT-B/32 text tower, and its image tower.

Weights come from one of three places, never from random initialisation:
  * an open_clip tag (`pretrained="openai"`), found in the Hugging Face cache
    (open_clip 3.x fetches every tag through the Hub; `cache_dir` overrides the cache),
  * a local weights file (`pretrained="/path/to/ViT-B-32.pt"`, .pt/.bin/.safetensors),
  * an `hf-hub:org/repo` model name (config and weights from the Hugging Face cache).
Look-ups run with the Hub offline, so a missing file fails at once; only with
`allow_download=True` does a cache miss go to the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.files import file_sha256
from clipsep_rt.optional import describe_exception, import_optional
from clipsep_rt.query.encoders.hub import hub_offline
from clipsep_rt.query.base import l2_normalise
from clipsep_rt.query.prompts import PAPER_TEMPLATE

if TYPE_CHECKING:  # torch is imported where it runs, so that importing clipsep_rt.query needs no torch
    import torch

HF_HUB_SCHEMA = "hf-hub:"


def is_weights_path(pretrained: str) -> bool:
    """open_clip's tags are bare words ('openai', 'laion2b_s34b_b79k'): anything path-like is a file."""
    return any(c in pretrained for c in "/\\.~") or Path(pretrained).is_file()


def open_clip_encoder_id(model_name: str, pretrained: str | None) -> str:
    """The encoder id of these weights, worked out without importing open_clip or loading weights.

    'open_clip:ViT-B-32/openai' for a tag, 'open_clip:ViT-B-32/ViT-B-32.pt@40d365715913'
    (file name and the first 12 hex digits of its SHA-256) for a file, and
    'open_clip:hf-hub:org/repo' for a Hub model.
    """
    if model_name.startswith(HF_HUB_SCHEMA):
        if pretrained:
            raise ClipsepError(f"{model_name} brings its own weights: drop the weights argument {pretrained!r}")
        return f"open_clip:{model_name}"
    if not pretrained:
        raise ClipsepError(
            f"CLIP model {model_name} needs pretrained weights (a tag such as 'openai' or a weights file); "
            "random weights would make every query meaningless"
        )
    if is_weights_path(pretrained):
        path = _existing_file(pretrained)
        return f"open_clip:{model_name}/{path.name}@{file_sha256(path)[:12]}"
    return f"open_clip:{model_name}/{pretrained}"


class OpenClipEncoder:
    """Text (and image) embeddings from an open_clip CLIP model, L2-normalised, float32 (N, D).

    Pass `model` and `tokenizer` (and optionally `preprocess`, for PIL images) to use a
    model built by the caller; `model_name` and `pretrained` then only name it in
    encoder_id, so name its weights truthfully.
    """

    default_templates = (PAPER_TEMPLATE,)

    def __init__(
        self,
        model_name: str = "ViT-B-32",
        pretrained: str | None = "openai",
        device: str | torch.device = "cpu",
        *,
        model: torch.nn.Module | None = None,
        tokenizer=None,
        preprocess=None,
        cache_dir: str | Path | None = None,
        allow_download: bool = False,
    ) -> None:
        import torch

        self.encoder_id = open_clip_encoder_id(model_name, pretrained)
        self.device = torch.device(device)
        if (model is None) != (tokenizer is None):
            raise ValueError("pass both model and tokenizer, or neither")
        if model is None:
            model, tokenizer, preprocess = _load_pretrained(
                model_name, pretrained, self.device, cache_dir, allow_download
            )
        self._model = model.to(self.device).eval()
        self._tokenizer = tokenizer
        self._preprocess = preprocess
        # One forward pass gives D for any architecture and checks model and tokenizer agree.
        self.embedding_dim = int(self.encode_text([""]).shape[1])

    @property
    def model(self) -> torch.nn.Module:
        """The open_clip model (for export)."""
        return self._model

    @property
    def tokenizer(self):
        return self._tokenizer

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """(N,) strings -> (N, D) float32, rows of unit norm."""
        import torch

        tokens = self._tokenizer(list(texts)).to(self.device)
        with torch.inference_mode():
            features = self._model.encode_text(tokens)
        return l2_normalise(features.float().cpu().numpy())

    def encode_image(self, images) -> np.ndarray:
        """A list of PIL images, or a float tensor (N, 3, H, W) already preprocessed -> (N, D)."""
        import torch

        if isinstance(images, torch.Tensor):
            if images.ndim != 4 or images.shape[1] != 3:
                raise ValueError(f"expected an image tensor (N, 3, H, W), got {tuple(images.shape)}")
            pixels = images.float()
        else:
            if self._preprocess is None:
                raise ValueError("this encoder has no image preprocessing: pass a preprocessed (N, 3, H, W) tensor")
            pixels = torch.stack([self._preprocess(image) for image in images])
        with torch.inference_mode():
            features = self._model.encode_image(pixels.to(self.device))
        return l2_normalise(features.float().cpu().numpy())


def _load_pretrained(model_name, pretrained, device, cache_dir, allow_download):
    """(model, tokenizer, preprocess) with pretrained weights, or ClipsepError."""
    open_clip = import_optional("open_clip", "clip")
    cache_dir = None if cache_dir is None else str(cache_dir)
    label = model_name if model_name.startswith(HF_HUB_SCHEMA) else f"{model_name}/{pretrained}"
    if model_name.startswith(HF_HUB_SCHEMA):
        weights, settings = None, {}  # open_clip finds config and weights in the Hub cache
        _locate(lambda: _fetch_hub_model(open_clip, model_name, cache_dir), label, cache_dir, allow_download)
    elif open_clip.get_model_config(model_name) is None:
        raise ClipsepError(f"open_clip has no model named {model_name!r} (see open_clip.list_models())")
    elif is_weights_path(pretrained):
        weights = str(_existing_file(pretrained))
        settings = _settings_for_file(open_clip, model_name, Path(weights))
    else:
        tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
        if not tag_cfg:
            known = ", ".join(open_clip.list_pretrained_tags_by_model(model_name)) or "none"
            raise ClipsepError(f"open_clip has no weights tagged {pretrained!r} for {model_name} (known: {known})")
        weights = _locate(
            lambda: open_clip.download_pretrained(tag_cfg, cache_dir=cache_dir), label, cache_dir, allow_download
        )
        settings = _tag_settings(tag_cfg)
    try:
        with hub_offline():
            model, preprocess = open_clip.create_model_from_pretrained(
                model_name, pretrained=weights, device=device, cache_dir=cache_dir, **settings
            )
            tokenizer = open_clip.get_tokenizer(model_name, cache_dir=cache_dir)
    except Exception as exc:
        raise ClipsepError(f"CLIP weights {label} could not be loaded: {describe_exception(exc)}") from exc
    return model, tokenizer, preprocess


def _locate(fetch, label: str, cache_dir: str | None, allow_download: bool):
    """Run `fetch` against the local cache; on a miss, online if allowed, else ClipsepError."""
    try:
        with hub_offline():
            return fetch()
    except Exception as exc:
        if not allow_download:
            raise ClipsepError(_not_cached_message(label, cache_dir)) from exc
    try:
        return fetch()
    except Exception as exc:
        raise ClipsepError(f"could not download CLIP weights {label}: {describe_exception(exc)}") from exc


def _fetch_hub_model(open_clip, model_name: str, cache_dir: str | None) -> str:
    from huggingface_hub import hf_hub_download

    repo = model_name[len(HF_HUB_SCHEMA) :]
    hf_hub_download(repo, "open_clip_config.json", cache_dir=cache_dir)
    return open_clip.pretrained.download_pretrained_from_hf(repo, cache_dir=cache_dir)


def _not_cached_message(label: str, cache_dir: str | None) -> str:
    import huggingface_hub.constants

    cache = cache_dir or huggingface_hub.constants.HF_HUB_CACHE
    if label.startswith(HF_HUB_SCHEMA):
        fetch, alternative = f"open_clip.create_model_and_transforms('{label}')", ""
    else:
        model_name, tag = label.split("/", 1)
        fetch = f"open_clip.create_model_and_transforms('{model_name}', pretrained='{tag}')"
        alternative = ", or pass --clip-weights /path/to/weights.pt"
    return (
        f"CLIP weights for {label} are not in the local cache ({cache}) and downloading is off: "
        f"with internet, rerun with --download-weights; offline, "
        f'run `python -c "import open_clip; {fetch}"` on a machine with internet and copy its '
        f"Hugging Face cache (~/.cache/huggingface) here{alternative}"
    )


def _tag_settings(tag_cfg: dict) -> dict:
    """create_model_from_pretrained arguments that a tag implies besides its weights.

    QuickGELU matters: OpenAI's weights were trained with it but open_clip 3's 'ViT-B-32'
    config uses plain GELU, and only warns about the mismatch.
    """
    return {
        "force_quick_gelu": bool(tag_cfg.get("quick_gelu", False)),
        "image_mean": tag_cfg.get("mean"),
        "image_std": tag_cfg.get("std"),
        "image_interpolation": tag_cfg.get("interpolation"),
        "image_resize_mode": tag_cfg.get("resize_mode"),
    }


def _settings_for_file(open_clip, model_name: str, path: Path) -> dict:
    """The tag settings of a weights file that is a known tag's download (by its SHA-256), else none.

    So the original ~/.cache/clip/ViT-B-32.pt gets QuickGELU like the 'openai' tag does.
    """
    sha256 = file_sha256(path)
    for tag in open_clip.list_pretrained_tags_by_model(model_name):
        tag_cfg = open_clip.get_pretrained_cfg(model_name, tag)
        expected = _url_sha256(tag_cfg.get("url", ""))
        if expected and sha256.startswith(expected):
            return _tag_settings(tag_cfg)
    return {}


def _url_sha256(url: str) -> str:
    """The SHA-256 (or its prefix) that open_clip's download URLs carry, as open_clip reads it."""
    if "openaipublic" in url:
        return url.split("/")[-2]
    if "mlfoundations" in url:
        return Path(url).stem.split("-")[-1]
    return ""


def _existing_file(pretrained: str) -> Path:
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise ClipsepError(f"CLIP weights file {path} does not exist")
    return path
