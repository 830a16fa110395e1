"""Answer feedback: 👍/👎 with an optional comment, kept in ``<data_dir>/feedback.jsonl``.

The file is append-only: rating an answer again appends a new line, and the latest
line per ``answer_id`` wins.  :meth:`FeedbackStore.export_gold` turns the latest
ratings into candidate gold items (schema of ``evals/gold.jsonl``) whose ``facts``
a person fills in before adding them to the gold set.

>>> store = FeedbackStore(Path("/tmp/fb.jsonl"))                         # doctest: +SKIP
>>> store.add(make_entry(answer, rating="up", comment="", answer_id="a1",
...                      settings=settings_snapshot(assistant.settings, assistant.mode)))  # doctest: +SKIP
>>> store.export_gold()[0]["evidence"]                                  # doctest: +SKIP
[{'doc': '000_02aee6cc86416636.txt', 'quote': '…市级医院排队平均时间缩短至3.15分钟'}]
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from assistant.config import Settings
from assistant.types import Answer

Rating = Literal["up", "down"]
RATING_EMOJI: dict[str, str] = {"up": "👍", "down": "👎"}
FEEDBACK_FILE = "feedback.jsonl"

# One lock per process: Streamlit runs every session in its own thread.
_WRITE_LOCK = threading.Lock()


def feedback_path(settings: Settings) -> Path:
    """Where the UI keeps feedback: next to the index, never inside the repository."""
    return Path(settings.index.data_dir) / FEEDBACK_FILE


def settings_snapshot(settings: Settings, mode: str) -> dict[str, Any]:
    """The settings that shaped an answer, for later analysis.  Picks named fields
    only, so API keys and base URLs (which may embed credentials) never reach disk."""
    return {
        "mode": mode,
        "llm_model": settings.llm.model if mode == "llm" else None,
        "embedding_model": settings.embedding.model_id,
        "top_k": settings.retrieval.top_k,
        "chunk_max_tokens": settings.chunk.max_tokens,
    }


def citation_records(answer: Answer) -> list[dict[str, Any]]:
    """Citations as plain JSON (``doc`` is the source file name, as in the gold set)."""
    return [{"marker": c.marker, "doc": Path(c.source_path).name if c.source_path else c.doc_id,
             "doc_id": c.doc_id, "title": c.title, "city": c.city, "year": c.year,
             "section_path": list(c.section_path), "quote": c.quote, "start": c.start, "end": c.end}
            for c in answer.citations]


def make_entry(answer: Answer, *, rating: Rating | None, comment: str, answer_id: str,
               settings: dict[str, Any], when: float | None = None) -> dict[str, Any]:
    """One feedback line.  ``rating`` None records that a rating was withdrawn."""
    if rating not in (None, "up", "down"):
        raise ValueError(f"rating must be 'up', 'down' or None, not {rating!r}")
    t = time.time() if when is None else when
    return {
        "answer_id": answer_id,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t)),
        "rating": rating,
        "comment": comment.strip(),
        "question": answer.question,
        "standalone_question": answer.standalone_question,
        "answer": answer.text,
        "refused": answer.refused,
        "citations": citation_records(answer),
        "filters": answer.filters.describe(),
        "settings": settings,
    }


class FeedbackStore:
    """Append-only JSONL of feedback entries (see :func:`make_entry`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def add(self, entry: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with _WRITE_LOCK, self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)

    def all(self) -> list[dict[str, Any]]:
        """Every entry in file order; a torn or hand-mangled line is skipped, not fatal."""
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict) and obj.get("answer_id"):
                out.append(obj)
        return out

    def latest(self) -> list[dict[str, Any]]:
        """The last entry per answer, in the order answers were first rated."""
        by_id: dict[str, dict[str, Any]] = {}
        for e in self.all():
            by_id[e["answer_id"]] = e  # a dict keeps the first insertion's position
        return list(by_id.values())

    def rating_of(self, answer_id: str) -> str | None:
        for e in reversed(self.all()):
            if e["answer_id"] == answer_id:
                rating = e.get("rating")
                return str(rating) if rating is not None else None
        return None

    def export_gold(self) -> list[dict[str, Any]]:
        """Candidate gold items from the latest rated entries (withdrawn ratings skipped)."""
        return [gold_candidate(e) for e in self.latest() if e.get("rating") in RATING_EMOJI]

    def export_gold_jsonl(self) -> str:
        return to_jsonl(self.export_gold())


def record_feedback(store: FeedbackStore, answer: Answer, *, value: int | None, comment: str, answer_id: str,
                    settings: dict[str, Any]) -> dict[str, Any] | None:
    """Store a thumbs widget's state (``st.feedback``: 1 = 👍, 0 = 👎, None = none).

    A comment without any rating is not stored yet (it is saved with the rating);
    withdrawing an earlier rating is stored as ``rating: None``.
    """
    ratings: dict[int, Rating] = {1: "up", 0: "down"}
    rating: Rating | None = ratings.get(value) if value is not None else None
    if rating is None and store.rating_of(answer_id) is None:
        return None
    entry = make_entry(answer, rating=rating, comment=comment, answer_id=answer_id, settings=settings)
    store.add(entry)
    return entry


def gold_candidate(entry: dict[str, Any]) -> dict[str, Any]:
    """A gold item to complete by hand: ``facts`` is empty and must be filled in.

    Refused answers become ``unanswerable`` items without evidence, because the gold
    validator rejects an unanswerable item that has a category other than
    ``unanswerable`` or carries evidence.
    """
    answerable = not entry.get("refused", False)
    cited = entry.get("citations", []) if answerable else []
    evidence = [{"doc": c["doc"], "quote": c["quote"]} for c in cited]
    note = f"from feedback: {RATING_EMOJI.get(entry.get('rating') or '', '')}"
    if entry.get("comment"):
        note += f" {entry['comment']}"
    return {
        "id": f"feedback-{entry['answer_id']}",
        "question": entry["question"],
        "category": "single_fact" if answerable else "unanswerable",
        "answerable": answerable,
        "facts": [],
        "evidence": _dedupe(evidence),
        "notes": note,
    }


def _dedupe(items: Iterable[dict[str, str]]) -> list[dict[str, str]]:
    seen: set[tuple[str, str]] = set()
    out = []
    for it in items:
        key = (it["doc"], it["quote"])
        if key not in seen:
            seen.add(key)
            out.append(it)
    return out


def to_jsonl(items: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(it, ensure_ascii=False) + "\n" for it in items)


__all__ = ["FeedbackStore", "citation_records", "feedback_path", "gold_candidate", "make_entry",
           "record_feedback", "settings_snapshot", "to_jsonl"]
