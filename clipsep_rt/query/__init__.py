"""Query encoders: text (or a stored vector) -> the embedding that steers the separator.

Typical use, which loads the encoder only for queries not in the cache, and then keeps it:

    embedder = QueryEmbedder("minilm", QueryEncoderOptions())
    embeddings = embedder.embed_text(["dog barking", "violin"], dim=expected_dim)   # (2, D)
    check_embedding_dim(embeddings, expected_dim, checkpoint_encoder_id, checkpoint_name, embedder.encoder_id)
"""

from clipsep_rt.query.base import ImageQueryEncoder, QueryEncoder, check_embedding_dim, l2_normalise
from clipsep_rt.query.cache import EmbeddingCache, cache_key, default_cache_dir
from clipsep_rt.query.embedder import QueryEmbedder, QueryEncoderOptions
from clipsep_rt.query.vectors import load_query_embeddings, save_query_embeddings
from clipsep_rt.query.encoders.minilm import MiniLMEncoder
from clipsep_rt.query.encoders.open_clip import OpenClipEncoder, open_clip_encoder_id
from clipsep_rt.query.prompts import (
    ENSEMBLE_TEMPLATES,
    PAPER_TEMPLATE,
    PLAIN_TEMPLATE,
    combine_prompt_embeddings,
    render_prompts,
)
from clipsep_rt.query.encoders.registry import (
    DEFAULT_ENCODER,
    EncoderSpec,
    build_encoder,
    default_templates_for,
    encoder_id_for,
    parse_encoder_spec,
)

__all__ = [
    "QueryEmbedder",
    "QueryEncoderOptions",
    "DEFAULT_ENCODER",
    "ENSEMBLE_TEMPLATES",
    "PAPER_TEMPLATE",
    "PLAIN_TEMPLATE",
    "EmbeddingCache",
    "EncoderSpec",
    "ImageQueryEncoder",
    "MiniLMEncoder",
    "OpenClipEncoder",
    "QueryEncoder",
    "build_encoder",
    "cache_key",
    "check_embedding_dim",
    "combine_prompt_embeddings",
    "default_cache_dir",
    "default_templates_for",
    "encoder_id_for",
    "l2_normalise",
    "load_query_embeddings",
    "open_clip_encoder_id",
    "parse_encoder_spec",
    "render_prompts",
    "save_query_embeddings",
]
