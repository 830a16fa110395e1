"""Question answering with verified citations over Chinese health-policy reports.

>>> from assistant import Assistant                      # doctest: +SKIP
>>> a = Assistant.from_settings()                        # doctest: +SKIP
>>> a.ask("丽水市2019年市级医院排队平均时间缩短到多少?").text  # doctest: +SKIP
"""

from .runtime import apply_process_defaults

apply_process_defaults()

from .config import Settings  # noqa: E402
from .types import Answer, Chunk, Citation, Document, Filters, ScoredChunk  # noqa: E402

__all__ = ["Answer", "Assistant", "Chunk", "Citation", "Document", "Filters", "ScoredChunk", "Settings"]


def __getattr__(name: str) -> object:
    if name == "Assistant":
        from .facade import Assistant

        return Assistant
    raise AttributeError(name)
