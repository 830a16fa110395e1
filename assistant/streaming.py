"""Consuming :meth:`assistant.Assistant.stream` at the edge (CLI, UI, API callers).

:func:`watch` runs the stream in a worker thread and passes its parts through, adding a
:class:`~assistant.types.Waiting` notice whenever nothing has come for a while (first
after :data:`WAIT_NOTICE_AFTER` seconds), so a waiting user is told so, with the real
time waited.  The stream itself is untouched: text deltas, at most one
:class:`~assistant.types.StreamReset` per broken LLM stream, then the final
:class:`~assistant.types.Answer`.

>>> from assistant.types import Waiting
>>> [p for p in watch(iter(["甲", "乙"]), after=5.0)]
['甲', '乙']
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from .types import Waiting

#: Seconds without any part of the answer before the first waiting notice.
WAIT_NOTICE_AFTER = 3.0
#: Seconds between later waiting notices.
WAIT_NOTICE_EVERY = 1.0

T = TypeVar("T")
_END = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def watch(parts: Iterable[T], *, after: float = WAIT_NOTICE_AFTER,
          every: float = WAIT_NOTICE_EVERY) -> Iterator[T | Waiting]:
    """``parts`` as they come, with a :class:`Waiting` whenever none came for ``after``
    seconds (then every ``every`` seconds) since the stream started or the last part.

    An exception raised by ``parts`` is raised here, in the caller's thread.  Closing this
    iterator early stops the worker at the next part.
    """
    q: queue.Queue[object] = queue.Queue()
    stop = threading.Event()

    def work() -> None:
        it = iter(parts)
        try:
            for p in it:
                q.put(p)
                if stop.is_set():
                    break
        except BaseException as exc:  # handed over to the consuming thread
            q.put(_Failure(exc))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()
            q.put(_END)

    worker = threading.Thread(target=work, name="answer-stream", daemon=True)
    start = time.monotonic()
    last = start
    next_notice = after
    worker.start()
    try:
        while True:
            now = time.monotonic()
            try:
                item = q.get(timeout=max(0.01, min(0.25, last + next_notice - now)))
            except queue.Empty:
                now = time.monotonic()
                if now - last >= next_notice:
                    yield Waiting(now - start)
                    next_notice = (now - last) + every
                continue
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            last, next_notice = time.monotonic(), after
            yield item  # type: ignore[misc]  # anything else came from ``parts``
    finally:
        stop.set()


__all__ = ["WAIT_NOTICE_AFTER", "WAIT_NOTICE_EVERY", "watch"]
