"""Prompt templates: how a query such as 'dog barking' becomes the text that is encoded.

A template is a string with one '{}' field. Several templates form a prompt ensemble:
the query's embedding is then the normalised mean of its per-template (normalised)
embeddings, the prompt-ensembling idea of the CLIP paper (Radford et al., ICML 2021,
section 3.1.4), which averages embeddings over many templates such as "a photo of a {}.".
"""

from __future__ import annotations

import string
from collections.abc import Sequence

import numpy as np

from clipsep_rt.errors import ClipsepError
from clipsep_rt.query.base import l2_normalise

PAPER_TEMPLATE = "a photo of {}"
"""CLIPSep's prompt (Dong et al., ICLR 2023): "a photo of [user input query]"."""

PLAIN_TEMPLATE = "{}"
"""The query as it is: the default for text-only encoders (MiniLM), which were not
trained on image captions, so "a photo of" would only dilute the query."""

ENSEMBLE_TEMPLATES = ("a photo of {}.", "the sound of {}.", "a video of {}.", "{}.")
"""A small ensemble in the spirit of CLIP's: photo and video captions (what CLIP saw),
the sound itself, and the bare query. Optional; CLIPSep itself uses PAPER_TEMPLATE."""


def check_template(template: str) -> str:
    """Return `template` if it has exactly one empty '{}' field, else raise ClipsepError."""
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except ValueError as exc:
        raise ClipsepError(f"prompt template {template!r} is malformed: {exc}") from None
    if fields != [""]:
        raise ClipsepError(f"prompt template {template!r} must contain exactly one '{{}}' for the query")
    return template


def render_prompts(query: str, templates: Sequence[str]) -> list[str]:
    """One prompt per template, in template order."""
    if not templates:
        raise ClipsepError("at least one prompt template is needed")
    return [check_template(template).format(query) for template in templates]


def combine_prompt_embeddings(per_template: np.ndarray) -> np.ndarray:
    """(T, D) per-template embeddings -> (D,): the normalised mean of the normalised rows."""
    if per_template.ndim != 2 or per_template.shape[0] == 0:
        raise ValueError(f"expected (T, D) with T >= 1, got {per_template.shape}")
    return l2_normalise(l2_normalise(per_template).mean(axis=0, keepdims=True))[0]
