"""Keep Hugging Face Hub look-ups on the local cache for the duration of a block."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def hub_offline() -> Iterator[None]:
    """Within the block, Hugging Face Hub file look-ups use the local cache only.

    huggingface_hub reads HF_HUB_OFFLINE once, when it is first imported, so setting the
    environment variable is not enough once it is loaded: its module-level flag is switched
    as well. Offline, a missing file fails at once instead of after about 25 s of retries
    per file when there is no network.
    """
    import huggingface_hub.constants as hub_constants

    saved_flag = hub_constants.HF_HUB_OFFLINE
    saved_env = os.environ.get("HF_HUB_OFFLINE")
    hub_constants.HF_HUB_OFFLINE = True
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = saved_flag
        if saved_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved_env
