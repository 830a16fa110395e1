"""The hand-written gold set: loading (structure) and validation (against the corpus).

A gold file is JSONL, one item per line (``.yaml``/``.yml`` with a list of items is
accepted too)::

    {"id": "lishui-2019-queue-time", "question": "丽水2019年市级医院看病排队平均要等多久?",
     "category": "single_fact", "answerable": true, "facts": [["3.15分钟", "3.15 分钟"]],
     "evidence": [{"doc": "000_02aee6cc86416636.txt", "quote": "市级医院排队平均时间缩短至3.15分钟"}]}

``facts`` is a list of fact groups; each group lists accepted variants of one fact, and
the first variant must occur verbatim (after NFKC and whitespace removal) in one of the
item's evidence quotes.  Quotes must be substrings of the named corpus file (after
whitespace normalisation).

:func:`load_gold` rejects malformed files with :class:`~assistant.errors.GoldSetError`;
:func:`validate_gold` returns the list of problems found against a corpus directory.

Command line: ``python -m assistant.evals.gold evals/gold.jsonl seeds/``.
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import GoldSetError

CATEGORIES: tuple[str, ...] = ("single_fact", "list", "comparison", "ranking", "trend", "section", "trap",
                               "unanswerable", "near_miss")
#: Items the reports cannot answer: the right answer is a refusal.  ``near_miss`` items ask for a measure
#: the reports do not state while they state a related one (常住人口签约率 vs 重点人群签约率).
UNANSWERABLE_CATEGORIES: tuple[str, ...] = ("unanswerable", "near_miss")

REQUIRED_FIELDS: tuple[str, ...] = ("id", "question", "category", "answerable", "facts", "evidence")
OPTIONAL_FIELDS: tuple[str, ...] = ("notes", "closest")
EVIDENCE_FIELDS: tuple[str, ...] = ("doc", "quote")

QUOTE_MIN_CHARS = 10
QUOTE_MAX_CHARS = 120

_WS_RE = re.compile(r"\s+")


@dataclass(frozen=True)
class Evidence:
    """A verbatim quote from one corpus document that supports an item's facts."""

    doc: str
    quote: str


@dataclass(frozen=True)
class GoldItem:
    """One gold question.  ``facts`` holds fact groups of accepted variants."""

    id: str
    question: str
    category: str
    answerable: bool
    facts: tuple[tuple[str, ...], ...]
    evidence: tuple[Evidence, ...]
    notes: str = ""
    closest: str = ""  # unanswerable items: the nearest document, if any
    line: int = field(default=0, compare=False)  # 1-based line in the gold file (0 = unknown)

    def where(self) -> str:
        return f"item {self.id!r}" + (f" (line {self.line})" if self.line else "")


# --- loading ---------------------------------------------------------------------------


def load_gold(path: str | Path) -> list[GoldItem]:
    """Parse a gold file (JSONL, or YAML list) into items; raise GoldSetError on any defect."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise GoldSetError(f"{p}: gold file not found.", "Check the path.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise GoldSetError(f"{p}: cannot read gold file ({e}).", "Save it as UTF-8.") from None

    is_yaml = p.suffix.lower() in (".yaml", ".yml")
    raw = _parse_yaml(p, text) if is_yaml else _parse_jsonl(p, text)

    items: list[GoldItem] = []
    seen: dict[str, int] = {}
    for line, obj in raw:
        item = _item_from_obj(p.name, line, obj)
        if item.id in seen:
            raise GoldSetError(
                f"{p.name}:{line}: duplicate id {item.id!r} (first used on line {seen[item.id]}).",
                "Give every item a unique id.",
            )
        seen[item.id] = line
        items.append(item)
    if not items:
        raise GoldSetError(f"{p.name}: the gold file has no items.", "Add at least one item.")
    return items


def _parse_jsonl(p: Path, text: str) -> list[tuple[int, Any]]:
    out: list[tuple[int, Any]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#") or s.startswith("//"):
            continue
        try:
            out.append((n, json.loads(s)))
        except json.JSONDecodeError as e:
            raise GoldSetError(
                f"{p.name}:{n}: malformed JSON ({e.msg} at column {e.colno}).",
                "Each line must be one complete JSON object.",
            ) from None
    return out


def _parse_yaml(p: Path, text: str) -> list[tuple[int, Any]]:
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise GoldSetError(f"{p.name}{where}: malformed YAML ({e}).", "Fix the YAML syntax.") from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise GoldSetError(
            f"{p.name}:1: a YAML gold file must be a list of items.", "Use `- id: ...` entries."
        )
    lines = [n.start_mark.line + 1 for n in node.value] if isinstance(node, yaml.SequenceNode) else []
    if len(lines) != len(data):
        lines = [0] * len(data)
    return list(zip(lines, data, strict=True))


def _item_from_obj(fname: str, line: int, obj: Any) -> GoldItem:
    where = f"{fname}:{line}" if line else fname

    def fail(msg: str, hint: str = "") -> GoldSetError:
        ident = obj.get("id") if isinstance(obj, dict) else None
        label = f" (id {ident!r})" if isinstance(ident, str) and ident else ""
        return GoldSetError(f"{where}{label}: {msg}", hint)

    if not isinstance(obj, dict):
        raise fail(f"expected an object, got {type(obj).__name__}.")
    missing = [k for k in REQUIRED_FIELDS if k not in obj]
    if missing:
        raise fail(f"missing field(s): {', '.join(missing)}.", f"Required: {', '.join(REQUIRED_FIELDS)}.")
    unknown = sorted(set(obj) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        allowed = ", ".join(REQUIRED_FIELDS + OPTIONAL_FIELDS)
        raise fail(f"unknown field(s): {', '.join(unknown)}.", f"Allowed: {allowed}.")

    for k in ("id", "question", "category"):
        if not isinstance(obj[k], str) or not obj[k].strip():
            raise fail(f"field {k!r} must be a non-empty string.")
    for k in OPTIONAL_FIELDS:
        if k in obj and not isinstance(obj[k], str):
            raise fail(f"field {k!r} must be a string.")
    category = obj["category"]
    if category not in CATEGORIES:
        raise fail(f"unknown category {category!r}.", f"Use one of: {', '.join(CATEGORIES)}.")
    answerable = obj["answerable"]
    if not isinstance(answerable, bool):
        raise fail("field 'answerable' must be true or false.")
    if (category in UNANSWERABLE_CATEGORIES) == answerable:
        raise fail(
            f"category {category!r} contradicts answerable={str(answerable).lower()}.",
            "Categories 'unanswerable' and 'near_miss' go with answerable=false, every other category with true.",
        )

    facts = _facts(obj["facts"], fail)
    evidence = _evidence(obj["evidence"], fail)
    if answerable:
        if not facts:
            raise fail("answerable item without facts.", "Add at least one fact group.")
        if not evidence:
            raise fail("answerable item without evidence.", "Add at least one evidence quote.")
    else:
        if facts:
            raise fail("unanswerable item with facts.", "Unanswerable items have facts [].")
        if evidence:
            raise fail("unanswerable item with evidence.", "Unanswerable items have evidence [].")

    return GoldItem(
        id=obj["id"].strip(),
        question=obj["question"],
        category=category,
        answerable=answerable,
        facts=facts,
        evidence=evidence,
        notes=obj.get("notes", ""),
        closest=obj.get("closest", ""),
        line=line,
    )


def _facts(value: Any, fail: Callable[..., GoldSetError]) -> tuple[tuple[str, ...], ...]:
    if not isinstance(value, list):
        raise fail("field 'facts' must be a list of fact groups (lists of strings).")
    groups: list[tuple[str, ...]] = []
    for i, group in enumerate(value):
        if not isinstance(group, list) or not group:
            raise fail(f"fact group {i} must be a non-empty list of strings.")
        if not all(isinstance(v, str) and v.strip() for v in group):
            raise fail(f"fact group {i} must contain only non-empty strings.")
        groups.append(tuple(group))
    return tuple(groups)


def _evidence(value: Any, fail: Callable[..., GoldSetError]) -> tuple[Evidence, ...]:
    if not isinstance(value, list):
        raise fail("field 'evidence' must be a list of {doc, quote} objects.")
    out: list[Evidence] = []
    for i, ev in enumerate(value):
        if not isinstance(ev, dict):
            raise fail(f"evidence {i} must be an object with 'doc' and 'quote'.")
        missing = [k for k in EVIDENCE_FIELDS if k not in ev]
        unknown = sorted(set(ev) - set(EVIDENCE_FIELDS))
        if missing or unknown:
            bits = ([f"missing {', '.join(missing)}"] if missing else []) + (
                [f"unknown {', '.join(unknown)}"] if unknown else []
            )
            raise fail(
                f"evidence {i}: {'; '.join(bits)}.", "Evidence objects have exactly 'doc' and 'quote'."
            )
        if not all(isinstance(ev[k], str) and ev[k].strip() for k in EVIDENCE_FIELDS):
            raise fail(f"evidence {i}: 'doc' and 'quote' must be non-empty strings.")
        out.append(Evidence(doc=ev["doc"], quote=ev["quote"]))
    return tuple(out)


# --- validation against the corpus -------------------------------------------------------


def read_corpus_text(path: Path) -> str:
    """The text of a corpus file as the validator sees it.

    Plain text (``.txt``) is decoded raw: utf-8-sig, then gb18030. Every other format
    (``.md``, ``.html``, ``.docx``, ``.pdf``) is read through
    :func:`assistant.loading.load_file`, so quotes are matched against the converted text
    (HTML without page chrome, DOCX paragraphs and table rows, markdown without markup).
    A file the loader rejects raises :class:`OSError`.
    """
    if path.suffix.lower() != ".txt":
        from assistant.errors import LoadError
        from assistant.loading import load_file

        try:
            return load_file(path).text
        except LoadError as e:
            raise OSError(str(e)) from e
    data = path.read_bytes()
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    raise UnicodeDecodeError("gb18030", data, 0, 1, "neither UTF-8 nor GB18030")


def _ws(text: str) -> str:
    """Whitespace normalisation for quote matching: runs of whitespace → one space."""
    return _WS_RE.sub(" ", text).strip()


def _fact_norm(text: str) -> str:
    """NFKC and all whitespace removed, for matching a fact inside a quote."""
    return _WS_RE.sub("", unicodedata.normalize("NFKC", text))


def validate_gold(items: Iterable[GoldItem], corpus_dir: str | Path | Sequence[str | Path]) -> list[str]:
    """Check every item against the corpus (one folder, or several searched in order);
    return problems (empty list = valid)."""
    dirs = [Path(corpus_dir)] if isinstance(corpus_dir, str | Path) else [Path(d) for d in corpus_dir]
    corpus = dirs[0] if len(dirs) == 1 else Path(", ".join(str(d) for d in dirs))
    problems: list[str] = []
    docs: dict[str, str | None] = {}
    seen: set[str] = set()

    def doc_text(name: str) -> str | None:
        if name not in docs:
            path = next((d / name for d in dirs if (d / name).is_file()), dirs[0] / name)
            if Path(name).name != name or not path.is_file():
                docs[name] = None
            else:
                try:
                    docs[name] = _ws(read_corpus_text(path))
                except (OSError, UnicodeDecodeError):
                    docs[name] = None
        return docs[name]

    missing = [d for d in dirs if not d.is_dir()]
    if missing:
        return [f"corpus directory {missing[0]} does not exist"]

    for item in items:
        w = item.where()
        if item.id in seen:
            problems.append(f"{w}: duplicate id")
        seen.add(item.id)
        if item.category not in CATEGORIES:
            problems.append(f"{w}: unknown category {item.category!r}")
        for ev in item.evidence:
            text = doc_text(ev.doc)
            if text is None:
                problems.append(f"{w}: evidence document {ev.doc!r} not found (or unreadable) in {corpus}")
                continue
            if "\n" in ev.quote or "\r" in ev.quote:
                problems.append(f"{w}: quote spans a line break: {ev.quote[:40]!r}")
            n = len(ev.quote.strip())
            if not QUOTE_MIN_CHARS <= n <= QUOTE_MAX_CHARS:
                problems.append(
                    f"{w}: quote has {n} characters (allowed {QUOTE_MIN_CHARS}-{QUOTE_MAX_CHARS}): "
                    f"{ev.quote[:40]!r}"
                )
            if _ws(ev.quote) not in text:
                problems.append(f"{w}: quote not found in {ev.doc}: {ev.quote!r}")
        quotes = [_fact_norm(ev.quote) for ev in item.evidence]
        for group in item.facts:
            first = _fact_norm(group[0])
            if not any(first in q for q in quotes):
                problems.append(f"{w}: fact {group[0]!r} not found in any evidence quote")
        if item.answerable and not item.evidence:
            problems.append(f"{w}: answerable item without evidence")
        if not item.answerable and item.facts:
            problems.append(f"{w}: unanswerable item with facts")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m assistant.evals.gold GOLD CORPUS_DIR``: print problems, exit 1 if any."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m assistant.evals.gold", description=main.__doc__)
    ap.add_argument("gold", help="gold file (.jsonl, .yaml or .yml)")
    ap.add_argument("corpus", help="directory holding the documents named in the evidence")
    args = ap.parse_args(argv)
    try:
        items = load_gold(args.gold)
    except GoldSetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    problems = validate_gold(items, args.corpus)
    for prob in problems:
        print(prob)
    if problems:
        print(f"{len(problems)} problem(s) in {len(items)} items.", file=sys.stderr)
        return 1
    counts: dict[str, int] = {}
    for item in items:
        counts[item.category] = counts.get(item.category, 0) + 1
    summary = ", ".join(f"{c}={counts.get(c, 0)}" for c in CATEGORIES)
    print(f"OK: {len(items)} items ({summary}).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
