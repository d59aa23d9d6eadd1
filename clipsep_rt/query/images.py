"""Image queries: pictures -> CLIP image embeddings, cached by file content.

CLIPSep is trained with image queries (the CLIP image embedding of a video frame), so a
picture of the sound source is a natural query for a CLIP-trained separator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from clipsep_rt.errors import ClipsepError
from clipsep_rt.io.files import file_sha256
from clipsep_rt.query.base import QueryEncoder
from clipsep_rt.query.cache import EmbeddingCache


def load_image(path: Path):
    """An RGB PIL image, or a one-line ClipsepError naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise ClipsepError(f"query image {path}: no such file") from None
    except (UnidentifiedImageError, OSError) as error:
        raise ClipsepError(f"query image {path}: not a readable image ({type(error).__name__})") from None


def image_cache_key(path: Path) -> str:
    """The cache's 'prompt' for an image: its content hash, so renaming it costs nothing."""
    try:
        return f"image sha256:{file_sha256(path)}"
    except OSError:
        raise ClipsepError(f"query image {path}: no such file") from None


def embed_images(
    paths: Sequence[Path],
    encoder_factory: Callable[[], QueryEncoder],
    encoder_id: str,
    cache: EmbeddingCache | None = None,
    dim: int | None = None,
) -> np.ndarray:
    """(N,) image files -> (N, D) float32 unit embeddings; the encoder is built only on a miss."""
    keys = [image_cache_key(Path(path)) for path in paths]
    found = {key: cache.get(encoder_id, key, dim) for key in keys} if cache is not None else {}
    missing = [(path, key) for path, key in zip(paths, keys) if found.get(key) is None]
    if missing:
        encoder = encoder_factory()
        if not hasattr(encoder, "encode_image"):
            raise ClipsepError(f"query encoder {encoder_id} has no image tower: image queries need a CLIP encoder")
        images = [load_image(Path(path)) for path, _ in missing]
        for (_, key), embedding in zip(missing, encoder.encode_image(images)):
            found[key] = embedding
            if cache is not None:
                cache.put(encoder_id, key, embedding)
    return np.stack([found[key] for key in keys]).astype(np.float32)
