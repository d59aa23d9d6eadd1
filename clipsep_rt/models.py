"""Old import path of the bundled default model, kept for existing code: use
`clipsep_rt.model.weights`."""

from clipsep_rt.model.weights import DEFAULT_MODEL_NAME, MODEL_CARD, MODEL_DIR, default_checkpoint

__all__ = ["DEFAULT_MODEL_NAME", "MODEL_CARD", "MODEL_DIR", "default_checkpoint"]
