"""The hand-checked indicator gold set: loading, validation against the corpus, scoring an extractor.

The contract is ``docs/indicators.md``.  A gold file is JSONL; each line is a **passage** or a
**record**::

    {"type": "passage", "doc": "000_02aee6cc86416636.txt", "quote": "…exact text of the passage…"}
    {"type": "record", "doc": "000_02aee6cc86416636.txt", "city": "丽水市", "year": 2019,
     "metric": "居民健康素养水平", "value": 28.82, "unit": "%", "comparator": "=",
     "kind": "achieved", "quote": "居民健康素养水平达28.82%"}

Passages are annotated exhaustively: every figure inside a passage that the contract calls a
record is listed, so an extractor's precision is measured on its records that fall inside
passages and its recall on all gold records.  Either line may carry an optional ``note``
(free text for the annotator, e.g. why a number is deliberately not a record); it is not loaded.

:func:`load_indicator_gold` rejects malformed files with :class:`~assistant.errors.GoldSetError`,
:func:`validate_indicator_gold` lists problems against a corpus directory and
:func:`score_extraction` compares an extractor's records with the gold set.

Command line: ``python -m assistant.evals.indicator_gold evals/indicators_gold.jsonl seeds/``.
"""

from __future__ import annotations

import json
import math
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, TypedDict

from assistant.errors import GoldSetError, LoadError
from assistant.numbers import cn_to_number, extract_numbers

COMPARATORS: tuple[str, ...] = ("=", "≥", "≤")
KINDS: tuple[str, ...] = ("achieved", "target", "change")
LINE_TYPES: tuple[str, ...] = ("passage", "record")
PASSAGE_FIELDS: tuple[str, ...] = ("type", "doc", "quote")
RECORD_FIELDS: tuple[str, ...] = (
    "type", "doc", "city", "year", "metric", "value", "unit", "comparator", "kind", "quote",
)  # fmt: skip
OPTIONAL_FIELDS: tuple[str, ...] = ("note",)
#: Multipliers are folded into the value and are never a unit (``1.86万人次`` → 18600 人次).
SCALE_WORDS: frozenset[str] = frozenset({"万", "亿", "千万", "百万", "万亿"})
#: Lenient metric rule of the contract: one name contains the other, or bigram Dice ≥ this.
METRIC_DICE_THRESHOLD = 0.5

VALUE_ABS_TOL = 1e-6
VALUE_REL_TOL = 1e-9

_WS_RE = re.compile(r"\s+")
# Figures extract_numbers deliberately skips but a record may state: ranks (排名全省第5) and
# tenths (超六成 → 60%).
_RANK_RE = re.compile(r"第\s*([0-9]+|[零〇一二两三四五六七八九十百]+)")
_TENTHS_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?|[零〇一二两三四五六七八九十]+)\s*成")


@dataclass(frozen=True)
class GoldPassage:
    """A stretch of one report (a paragraph or sentences) whose records are all annotated."""

    doc: str
    quote: str
    line: int = field(default=0, compare=False)  # 1-based line in the gold file (0 = unknown)


@dataclass(frozen=True)
class GoldRecord:
    """One indicator record as defined in ``docs/indicators.md``."""

    doc: str
    city: str
    year: int
    metric: str
    value: float
    unit: str
    comparator: str
    kind: str
    quote: str
    line: int = field(default=0, compare=False)  # 1-based line in the gold file (0 = unknown)

    def describe(self) -> str:
        """A one-line description for reports: ``doc:line metric comparator value unit (kind)``."""
        where = f"{self.doc}" + (f" (line {self.line})" if self.line else "")
        return f"{where}: {self.metric} {self.comparator} {_fmt(self.value)}{self.unit} ({self.kind})"


class ExtractedRecord(Protocol):
    """What :func:`score_extraction` reads from an extractor's record (attributes only)."""

    @property
    def doc(self) -> str: ...
    @property
    def metric(self) -> str: ...
    @property
    def value(self) -> float: ...
    @property
    def unit(self) -> str: ...
    @property
    def comparator(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def quote(self) -> str: ...


class ExtractionScore(TypedDict):
    """Result of :func:`score_extraction`.

    ``precision`` counts only extracted records whose quote lies inside an annotated passage of
    the same document; ``recall`` is over all gold records.  ``pairs`` is the number of
    gold/extracted pairs that agree on document, quote and metric (all strict matches plus the
    best remaining near misses); the ``*_accuracy`` fields are the share of those pairs that
    also agree on that field, so a low one says which field the extractor gets wrong.
    """

    precision: float
    recall: float
    f1: float
    gold: int
    extracted: int
    extracted_in_passages: int
    matched: int
    pairs: int
    value_accuracy: float
    unit_accuracy: float
    comparator_accuracy: float
    kind_accuracy: float
    missed: list[str]
    spurious: list[str]


# --- loading ---------------------------------------------------------------------------


def load_indicator_gold(path: str | Path) -> tuple[list[GoldPassage], list[GoldRecord]]:
    """Parse a gold file into passages and records (file order); raise GoldSetError on any defect.

    Blank lines and lines starting with ``#`` or ``//`` are skipped.  Errors name the file and
    line and say how to fix it.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise GoldSetError(f"{p}: indicator gold file not found.", "Check the path.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise GoldSetError(f"{p}: cannot read indicator gold file ({e}).", "Save it as UTF-8.") from None

    passages: list[GoldPassage] = []
    records: list[GoldRecord] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        s = raw.strip()
        if not s or s.startswith("#") or s.startswith("//"):
            continue
        try:
            obj = json.loads(s)
        except json.JSONDecodeError as e:
            raise GoldSetError(
                f"{p.name}:{n}: malformed JSON ({e.msg} at column {e.colno}).",
                "Each line must be one complete JSON object: a passage or a record.",
            ) from None
        item = _item_from_obj(f"{p.name}:{n}", n, obj)
        if isinstance(item, GoldPassage):
            passages.append(item)
        else:
            records.append(item)
    if not records:
        raise GoldSetError(f"{p.name}: the indicator gold file has no records.", "Add at least one record line.")
    return passages, records


def _item_from_obj(where: str, line: int, obj: Any) -> GoldPassage | GoldRecord:
    def fail(msg: str, hint: str = "") -> GoldSetError:
        return GoldSetError(f"{where}: {msg}", hint)

    if not isinstance(obj, dict):
        raise fail(f"expected a JSON object, got {type(obj).__name__}.", 'Write {"type": "record", ...}.')
    if "type" not in obj:
        raise fail("missing field(s): type.", 'Every line needs "type": "passage" or "type": "record".')
    kind_of_line = obj["type"]
    if kind_of_line not in LINE_TYPES:
        raise fail(f"unknown type {kind_of_line!r}.", 'Use "passage" or "record".')
    required = PASSAGE_FIELDS if kind_of_line == "passage" else RECORD_FIELDS
    missing = [k for k in required if k not in obj]
    if missing:
        raise fail(
            f"{kind_of_line} line missing field(s): {', '.join(missing)}.",
            f"A {kind_of_line} line has: {', '.join(required)}.",
        )
    unknown = sorted(set(obj) - set(required) - set(OPTIONAL_FIELDS))
    if unknown:
        allowed = ", ".join(required + OPTIONAL_FIELDS)
        raise fail(f"unknown field(s) for a {kind_of_line}: {', '.join(unknown)}.", f"Allowed: {allowed}.")
    if "note" in obj and not isinstance(obj["note"], str):
        raise fail("field 'note' must be a string.", "Write the annotator's remark as text.")
    text_fields = ("doc", "quote") if kind_of_line == "passage" else ("doc", "city", "metric", "quote")
    for k in text_fields:
        if not isinstance(obj[k], str) or not obj[k].strip():
            raise fail(f"field {k!r} must be a non-empty string.", f"Fill in {k!r} (see docs/indicators.md).")
    if kind_of_line == "passage":
        return GoldPassage(doc=obj["doc"], quote=obj["quote"], line=line)

    year, value, unit = obj["year"], obj["value"], obj["unit"]
    if isinstance(year, bool) or not isinstance(year, int) or not 1900 <= year <= 2100:
        raise fail(f"field 'year' must be a year between 1900 and 2100, got {year!r}.", "Write it as a number: 2019.")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise fail(f"field 'value' must be a finite number, got {value!r}.", 'Write 18600, not "1.86万".')
    if not isinstance(unit, str):
        raise fail(f"field 'unit' must be a string, got {type(unit).__name__}.", 'A bare number has unit "".')
    if unit.strip() != unit:
        raise fail(f"field 'unit' has surrounding whitespace: {unit!r}.", "Remove the spaces.")
    if unit in SCALE_WORDS:
        raise fail(
            f"unit {unit!r} is a multiplier.",
            'Fold it into the value (1.86万人次 → 18600, unit 人次; bare 2万 → unit "").',
        )
    if obj["comparator"] not in COMPARATORS:
        raise fail(f"unknown comparator {obj['comparator']!r}.", f"Use one of: {', '.join(COMPARATORS)}.")
    if obj["kind"] not in KINDS:
        raise fail(f"unknown kind {obj['kind']!r}.", f"Use one of: {', '.join(KINDS)}.")
    return GoldRecord(
        doc=obj["doc"],
        city=obj["city"],
        year=year,
        metric=obj["metric"],
        value=float(value),
        unit=unit,
        comparator=obj["comparator"],
        kind=obj["kind"],
        quote=obj["quote"],
        line=line,
    )


# --- validation against the corpus -------------------------------------------------------


def stated_values(quote: str) -> list[float]:
    """The values a quote states: every non-calendar number :func:`extract_numbers` reads, plus
    ranks written as ordinals (``排名全省第5`` → 5) and tenths (``超六成`` → 60)."""
    values = [m.value for m in extract_numbers(quote) if not m.is_year]
    for m in _RANK_RE.finditer(quote):
        rank = _read_number(m.group(1))
        if rank is not None:
            values.append(rank)
    for m in _TENTHS_RE.finditer(quote):
        tenths = _read_number(m.group(1))
        if tenths is not None:
            values.append(tenths * 10)
    return values


def _read_number(s: str) -> float | None:
    return float(s) if s[0].isdigit() else cn_to_number(s)


def value_stated(record: GoldRecord, quote: str | None = None) -> bool:
    """True when some number in ``quote`` (default: the record's quote) is the record's value;
    a change may be written without its sign (下降5% → −5)."""
    wanted = [record.value, -record.value] if record.kind == "change" else [record.value]
    return any(values_equal(v, w) for v in stated_values(record.quote if quote is None else quote) for w in wanted)


def validate_indicator_gold(
    passages: Sequence[GoldPassage], records: Sequence[GoldRecord], corpus_dir: str | Path
) -> list[str]:
    """Check passages and records against the documents in ``corpus_dir``; return the problems.

    Checks: every document exists; every passage and record quote is an exact substring of its
    document's text (as :func:`assistant.loading.load_file` returns it); every record quote lies
    inside a passage of its document and is at most one sentence; some number in the record's
    quote has the record's value; records of one document name one city; no duplicates.
    """
    corpus = Path(corpus_dir)
    if not corpus.is_dir():
        return [f"corpus directory {corpus} does not exist"]
    texts: dict[str, str | None] = {}
    problems: list[str] = []

    def doc_text(name: str) -> str | None:
        if name not in texts:
            texts[name] = _read_document(corpus, name)
        return texts[name]

    by_doc: dict[str, list[GoldPassage]] = {}
    seen_passages: set[tuple[str, str]] = set()
    for psg in passages:
        where = f"passage (line {psg.line})"
        text = doc_text(psg.doc)
        if text is None:
            problems.append(f"{where}: document {psg.doc!r} not found (or unreadable) in {corpus}")
            continue
        if psg.quote not in text:
            problems.append(f"{where}: quote not found in {psg.doc}: {psg.quote[:40]!r}…{_ws_hint(psg.quote, text)}")
        if (psg.doc, psg.quote) in seen_passages:
            problems.append(f"{where}: duplicate passage")
        seen_passages.add((psg.doc, psg.quote))
        by_doc.setdefault(psg.doc, []).append(psg)

    cities: dict[str, Counter[str]] = {}
    seen_records: set[tuple[str, str, str, float, str]] = set()
    for rec in records:
        where = f"record (line {rec.line}) {rec.metric!r}"
        cities.setdefault(rec.doc, Counter())[rec.city] += 1
        text = doc_text(rec.doc)
        if text is None:
            problems.append(f"{where}: document {rec.doc!r} not found (or unreadable) in {corpus}")
            continue
        if rec.quote not in text:
            problems.append(f"{where}: quote not found in {rec.doc}: {rec.quote!r}{_ws_hint(rec.quote, text)}")
        if not any(rec.quote in psg.quote for psg in by_doc.get(rec.doc, [])):
            problems.append(f"{where}: quote is not inside any passage of {rec.doc}: {rec.quote!r}")
        if "\n" in rec.quote or "。" in rec.quote.rstrip("。"):
            problems.append(f"{where}: quote is longer than one sentence: {rec.quote[:40]!r}")
        if not value_stated(rec):
            problems.append(f"{where}: value {_fmt(rec.value)} is not stated in its quote {rec.quote!r}")
        key = (rec.doc, rec.quote, rec.metric, rec.value, rec.unit)
        if key in seen_records:
            problems.append(f"{where}: duplicate record")
        seen_records.add(key)
    for doc, counts in cities.items():
        if len(counts) > 1:
            problems.append(f"{doc}: records name more than one city: {', '.join(sorted(counts))}")
    return problems


def _read_document(corpus: Path, name: str) -> str | None:
    from assistant.loading import load_file  # imported lazily: it pulls in the HTML/PDF/DOCX readers

    path = corpus / name
    if Path(name).name != name or not path.is_file():
        return None
    try:
        return load_file(path).text
    except LoadError:
        return None


def _ws_hint(quote: str, text: str) -> str:
    if _norm(quote) in _norm(text):
        return " (it matches once whitespace and full-width forms are ignored: copy it exactly)"
    return ""


# --- metric matching and scoring -----------------------------------------------------------


@lru_cache(maxsize=8192)
def _norm(text: str) -> str:
    """NFKC with all whitespace removed: how quotes and metrics are compared when scoring."""
    return _WS_RE.sub("", unicodedata.normalize("NFKC", text))


def _bigrams(s: str) -> Counter[str]:
    return Counter(s[i : i + 2] for i in range(len(s) - 1))


def metric_matches(a: str, b: str) -> bool:
    """The contract's lenient metric rule: one name contains the other, or their character-bigram
    overlap (Dice coefficient) is at least one half.  Empty names match nothing.

    >>> metric_matches("居民健康素养水平", "全市居民健康素养水平"), metric_matches("孕产妇死亡率", "婴儿死亡率")
    (True, False)
    """
    na, nb = _norm(a), _norm(b)
    if not na or not nb:
        return False
    if na in nb or nb in na:
        return True
    ba, bb = _bigrams(na), _bigrams(nb)
    total = sum(ba.values()) + sum(bb.values())
    return total > 0 and 2 * sum((ba & bb).values()) / total >= METRIC_DICE_THRESHOLD


def values_equal(a: float, b: float) -> bool:
    """Values agree within an absolute tolerance of 1e-6 or a relative one of 1e-9."""
    return math.isclose(a, b, rel_tol=VALUE_REL_TOL, abs_tol=VALUE_ABS_TOL)


def _spans(hay: str, needle: str) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    start = hay.find(needle)
    while start != -1:
        out.append((start, start + len(needle)))
        start = hay.find(needle, start + 1)
    return out


def _quotes_overlap(a: str, b: str, frames: Sequence[str]) -> bool:
    """One quote contains the other, or both occur in one frame (a document or passage text,
    normalised) at overlapping positions."""
    na, nb = _norm(a), _norm(b)
    if not na or not nb:
        return False
    if na in nb or nb in na:
        return True
    for frame in frames:
        sa, sb = _spans(frame, na), _spans(frame, nb)
        if any(x0 < y1 and y0 < x1 for x0, x1 in sa for y0, y1 in sb):
            return True
    return False


def _max_matching(n_left: int, edges: Mapping[int, Sequence[int]], taken: set[int] | None = None) -> dict[int, int]:
    """Maximum bipartite matching (Kuhn): left index → right index; ``taken`` rights are unavailable."""
    owner: dict[int, int] = {}
    blocked = taken or set()

    def augment(left: int, visited: set[int]) -> bool:
        for right in edges.get(left, ()):
            if right in blocked or right in visited:
                continue
            visited.add(right)
            if right not in owner or augment(owner[right], visited):
                owner[right] = left
                return True
        return False

    for left in range(n_left):
        if left in edges:
            augment(left, set())
    return {left: right for right, left in owner.items()}


def score_extraction(
    passages: Sequence[GoldPassage],
    records: Sequence[GoldRecord],
    extracted: Sequence[ExtractedRecord],
    *,
    documents: Mapping[str, str] | None = None,
) -> ExtractionScore:
    """Compare an extractor's records with the gold set.

    A gold and an extracted record match when the document is the same, the quotes overlap (one
    contains the other, or they overlap in the document — in the passage text when ``documents``
    (doc → text) is not given), :func:`metric_matches` holds, the values are equal (abs tol 1e-6,
    rel tol 1e-9) and unit, comparator and kind are equal.  Matching is one to one (maximum
    bipartite matching).  Precision is over the extracted records whose quote lies inside an
    annotated passage of their document; recall is over all gold records.

    For the per-field accuracies, gold records left unmatched are paired with remaining extracted
    records that agree on document, quote and metric, preferring the pairs that agree on the most
    of value, unit, comparator and kind.
    """
    frames: dict[str, list[str]] = {}
    for psg in passages:
        frames.setdefault(psg.doc, []).append(_norm(psg.quote))
    doc_frames = {doc: [_norm(text)] for doc, text in documents.items()} if documents is not None else frames

    inside = [
        ei for ei, ex in enumerate(extracted) if (q := _norm(ex.quote)) and any(q in f for f in frames.get(ex.doc, ()))
    ]
    agree: dict[tuple[int, int], tuple[bool, bool, bool, bool]] = {}
    for gi, g in enumerate(records):
        for ei, ex in enumerate(extracted):
            if (
                g.doc == ex.doc
                and metric_matches(g.metric, ex.metric)
                and _quotes_overlap(g.quote, ex.quote, doc_frames.get(g.doc, ()))
            ):
                agree[gi, ei] = _fields_agree(g, ex)

    # Tier 4 (all four fields equal) is the strict matching; lower tiers only feed the accuracies.
    pairs: dict[int, int] = {}
    strict: dict[int, int] = {}
    for tier in (4, 3, 2, 1, 0):
        edges: dict[int, list[int]] = {}
        for (gi, ei), fields in agree.items():
            if gi not in pairs and sum(fields) == tier:
                edges.setdefault(gi, []).append(ei)
        found = _max_matching(len(records), edges, taken=set(pairs.values()))
        pairs.update(found)
        if tier == 4:
            strict = found

    matched_extracted = set(strict.values())
    matched_inside = sum(1 for ei in inside if ei in matched_extracted)
    precision = matched_inside / len(inside) if inside else 0.0
    recall = len(strict) / len(records) if records else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0

    def accuracy(i: int) -> float:
        return sum(1 for gi, ei in pairs.items() if agree[gi, ei][i]) / len(pairs) if pairs else 0.0

    return ExtractionScore(
        precision=precision,
        recall=recall,
        f1=f1,
        gold=len(records),
        extracted=len(extracted),
        extracted_in_passages=len(inside),
        matched=len(strict),
        pairs=len(pairs),
        value_accuracy=accuracy(0),
        unit_accuracy=accuracy(1),
        comparator_accuracy=accuracy(2),
        kind_accuracy=accuracy(3),
        missed=[records[gi].describe() for gi in range(len(records)) if gi not in strict],
        spurious=[_describe_extracted(extracted[ei]) for ei in inside if ei not in matched_extracted],
    )


def _fields_agree(g: GoldRecord, ex: ExtractedRecord) -> tuple[bool, bool, bool, bool]:
    """Whether value, unit, comparator and kind agree (in that order)."""
    value = ex.value
    value_ok = isinstance(value, int | float) and not isinstance(value, bool) and values_equal(g.value, float(value))
    return value_ok, g.unit == ex.unit, g.comparator == ex.comparator, g.kind == ex.kind


def _describe_extracted(ex: ExtractedRecord) -> str:
    return f"{ex.doc}: {ex.metric} {ex.comparator} {_fmt(ex.value)}{ex.unit} ({ex.kind}) «{ex.quote}»"


def _fmt(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e15 else repr(value)


# --- command line -------------------------------------------------------------------------


def summarize(passages: Sequence[GoldPassage], records: Sequence[GoldRecord]) -> list[str]:
    """Counts for the command line: per document, per kind and per unit."""
    lines = [f"{len(passages)} passages, {len(records)} records"]
    docs = sorted({p.doc for p in passages} | {r.doc for r in records})
    for doc in docs:
        recs = [r for r in records if r.doc == doc]
        city = recs[0].city if recs else "?"
        n_psg = sum(1 for p in passages if p.doc == doc)
        years = ", ".join(f"{y}: {c}" for y, c in sorted(Counter(r.year for r in recs).items()))
        lines.append(f"  {doc} {city}: {n_psg} passages, {len(recs)} records ({years})")
    lines.append("  kinds: " + _counts(r.kind for r in records))
    lines.append("  comparators: " + _counts(r.comparator for r in records))
    lines.append("  units: " + _counts(r.unit or '""' for r in records))
    return lines


def _counts(values: Iterable[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in Counter(values).most_common())


def main(argv: Sequence[str] | None = None, *, out: Callable[[str], None] = print) -> int:
    """``python -m assistant.evals.indicator_gold GOLD CORPUS_DIR``: print counts and problems,
    exit 1 when the file is malformed or has problems."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m assistant.evals.indicator_gold", description=main.__doc__)
    ap.add_argument("gold", help="indicator gold file (.jsonl)")
    ap.add_argument("corpus", help="directory holding the documents the gold file names")
    args = ap.parse_args(argv)
    try:
        passages, records = load_indicator_gold(args.gold)
    except GoldSetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for line in summarize(passages, records):
        out(line)
    problems = validate_indicator_gold(passages, records, args.corpus)
    for prob in problems:
        out(prob)
    if problems:
        print(f"{len(problems)} problem(s).", file=sys.stderr)
        return 1
    out("OK: no problems.")
    return 0


__all__ = [
    "COMPARATORS",
    "KINDS",
    "ExtractedRecord",
    "ExtractionScore",
    "GoldPassage",
    "GoldRecord",
    "load_indicator_gold",
    "main",
    "metric_matches",
    "score_extraction",
    "stated_values",
    "validate_indicator_gold",
    "value_stated",
    "values_equal",
]


if __name__ == "__main__":
    raise SystemExit(main())
