"""Evaluation metrics: pure functions from (gold item, answer) to numbers.

Every function here is deterministic and side-effect free, so the harness, the
baselines and the tests score answers the same way.

* **facts** – a fact group is present when any of its variants is a substring of
  the answer text after :func:`normalize_fact` (NFKC, lower case, no whitespace,
  citation markers stripped);
* **retrieval** – a context chunk *hits* an evidence item when it comes from the
  evidence document and its text contains the quote, or at least 60% of it (a
  chunk boundary may cut a quote in two);
* **citations** – precision over the answer's citations, recall over the gold
  evidence;
* **grounding** – unsupported answer sentences and numbers missing from the cited
  quotes;
* **refusals**, **speed** and **cost**.

:func:`score_item` computes all of them for one item; :func:`aggregate` and
:func:`aggregate_by_category` turn item scores into flat ``{name: float}`` dicts.

>>> fact_present(("3.15分钟",), "排队平均时间缩短至３．１５ 分钟[1]。")
True
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path

from assistant.numbers import number_supported, numbers_to_check
from assistant.types import Answer, Chunk, ScoredChunk, Usage
from assistant.verification import strip_markers

from .gold import Evidence, GoldItem

QUOTE_OVERLAP = 0.6  # share of a quote a chunk must hold when a boundary splits the quote
HIT_KS: tuple[int, ...] = (1, 3, 5)
# Timing marks that are not stages of their own (LLM time to first token lies inside "generate").
# Stages inside others: time to the first token and each LLM attempt are parts of "generate"
# (or of "llm_failed", the time spent on an LLM that then failed, which *is* added).
NON_ADDITIVE_STAGES = frozenset({"first_token", "llm_attempt"})

_WS_RE = re.compile(r"\s+")
_BARE_MARKER_RE = re.compile(r"[\[【［]\s*\d+(?:\s*[,，、\-–~]\s*\d+)*\s*[\]】］]")


# --- normalisation ----------------------------------------------------------------------


def normalize_fact(text: str) -> str:
    """Normalise for fact matching: markers stripped, NFKC (full → half width), lower case,
    no whitespace.

    >>> normalize_fact("签约率达 ７５．０９％[2]")
    '签约率达75.09%'
    """
    t = _BARE_MARKER_RE.sub("", strip_markers(text))
    return _WS_RE.sub("", unicodedata.normalize("NFKC", t).lower())


def normalize_quote(text: str) -> str:
    """Normalise for quote matching: NFKC and no whitespace (cleaning may re-space text)."""
    return _WS_RE.sub("", unicodedata.normalize("NFKC", text))


def quote_overlap(quote: str, text: str) -> float:
    """Share of ``quote`` (normalised) found as one contiguous piece of ``text``.

    >>> quote_overlap("甲乙丙丁戊", "……丙丁戊。下一块")
    0.6
    """
    q, t = normalize_quote(quote), normalize_quote(text)
    if not q:
        return 0.0
    if q in t:
        return 1.0
    if not t:
        return 0.0
    m = SequenceMatcher(None, q, t, autojunk=False).find_longest_match(0, len(q), 0, len(t))
    return m.size / len(q)


def quote_found(quote: str, text: str, min_overlap: float = QUOTE_OVERLAP) -> bool:
    """True when ``text`` contains ``quote`` or at least ``min_overlap`` of it."""
    return quote_overlap(quote, text) >= min_overlap


def doc_name(source_path: str) -> str:
    """The file name gold evidence uses for a document."""
    return Path(source_path).name if source_path else ""


# --- facts ------------------------------------------------------------------------------


def fact_present(group: Sequence[str], answer_text: str) -> bool:
    """True when any variant of the fact group occurs in the answer text."""
    norm = normalize_fact(answer_text)
    return any(normalize_fact(v) and normalize_fact(v) in norm for v in group)


def facts_found(groups: Sequence[Sequence[str]], answer_text: str) -> tuple[list[str], list[str]]:
    """(found, missing): the first variant of each fact group, split by presence."""
    found: list[str] = []
    missing: list[str] = []
    for g in groups:
        (found if fact_present(g, answer_text) else missing).append(g[0])
    return found, missing


def fact_recall(groups: Sequence[Sequence[str]], answer_text: str) -> float:
    """Share of fact groups present (1.0 when there are none)."""
    if not groups:
        return 1.0
    found, _ = facts_found(groups, answer_text)
    return len(found) / len(groups)


# --- retrieval ----------------------------------------------------------------------------


def chunk_hits(chunk: Chunk, ev: Evidence) -> bool:
    """Does ``chunk`` carry evidence ``ev``?  Same document, and the chunk text holds the
    quote (or ≥60% of it).  A heading quote also hits any chunk under that heading."""
    if doc_name(chunk.source_path) != ev.doc:
        return False
    if quote_found(ev.quote, chunk.text):
        return True
    path = normalize_quote("".join(chunk.section_path))
    return bool(path) and normalize_quote(ev.quote).rstrip("。.") in path


def evidence_ranks(contexts: Sequence[ScoredChunk], evidence: Sequence[Evidence]) -> list[int | None]:
    """For each evidence item, the 1-based rank of the first context that hits it."""
    out: list[int | None] = []
    for ev in evidence:
        rank = next((i for i, sc in enumerate(contexts, start=1) if chunk_hits(sc.chunk, ev)), None)
        out.append(rank)
    return out


def first_hit_rank(contexts: Sequence[ScoredChunk], evidence: Sequence[Evidence]) -> int | None:
    """1-based rank of the first context hitting any evidence item, or None."""
    ranks = [r for r in evidence_ranks(contexts, evidence) if r is not None]
    return min(ranks) if ranks else None


def hit_at(rank: int | None, k: int) -> float:
    return 1.0 if rank is not None and rank <= k else 0.0


def reciprocal_rank(rank: int | None) -> float:
    return 1.0 / rank if rank else 0.0


def evidence_recall_at(ranks: Sequence[int | None], k: int) -> float:
    """Share of evidence items hit within the top ``k`` (1.0 when there is no evidence)."""
    if not ranks:
        return 1.0
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks)


def docs_covered_at(ranks: Sequence[int | None], evidence: Sequence[Evidence], k: int) -> float:
    """Share of the evidence *documents* with at least one hit in the top ``k``; a
    comparison across cities only counts as fully covered when every city's report is."""
    docs = {ev.doc for ev in evidence}
    if not docs:
        return 1.0
    hit = {ev.doc for ev, r in zip(evidence, ranks, strict=True) if r is not None and r <= k}
    return len(hit) / len(docs)


# --- citations ----------------------------------------------------------------------------


def _context_chunks(answer: Answer) -> dict[str, Chunk]:
    return {sc.chunk.chunk_id: sc.chunk for sc in answer.contexts}


def citation_precision(answer: Answer, item: GoldItem) -> float | None:
    """Share of the answer's citations that are right: the cited quote or its chunk holds
    a gold evidence quote (same document), or the quote states a required fact.
    None when the answer cites nothing."""
    if not answer.citations:
        return None
    chunks = _context_chunks(answer)
    variants = [normalize_fact(v) for g in item.facts for v in g]
    good = 0
    for c in answer.citations:
        chunk = chunks.get(c.chunk_id)
        doc = doc_name(c.source_path or (chunk.source_path if chunk else ""))
        texts = [c.quote] + ([chunk.text] if chunk else [])
        ok = any(ev.doc == doc and any(quote_found(ev.quote, t) for t in texts) for ev in item.evidence)
        if not ok:
            q = normalize_fact(c.quote)
            ok = any(v and v in q for v in variants)
        good += ok
    return good / len(answer.citations)


def citation_recall(answer: Answer, item: GoldItem) -> float | None:
    """Share of gold evidence items cited: some citation from the same document whose
    chunk (or, if the chunk is not among the contexts, whose quote) holds the quote.
    None for items without evidence."""
    if not item.evidence:
        return None
    chunks = _context_chunks(answer)
    cited: list[tuple[str, str]] = []
    for c in answer.citations:
        chunk = chunks.get(c.chunk_id)
        doc = doc_name(c.source_path or (chunk.source_path if chunk else ""))
        cited.append((doc, chunk.text if chunk else c.quote))
    hit = sum(1 for ev in item.evidence if any(d == ev.doc and quote_found(ev.quote, t) for d, t in cited))
    return hit / len(item.evidence)


# --- grounding ----------------------------------------------------------------------------


def unsupported_counts(answer: Answer) -> tuple[int, int]:
    """(unsupported sentences, checked sentences) as flagged by verification."""
    return len(answer.unsupported), len(answer.sentences)


def missing_numbers(answer: Answer) -> list[str]:
    """Numbers the answer states that none of its cited quotes state (years excluded).  Sentences the
    verifier accepted as computed (a difference or an order shown with its arithmetic) are left out:
    their derived numbers are stated as computed, not as quoted."""
    if answer.refused:
        return []
    quotes = "\n".join(c.quote for c in answer.citations)
    text = answer.text
    for s in answer.sentences:
        if s.reason == "computed":
            text = text.replace(s.text, "")
    return [n.raw for n in numbers_to_check(text) if not number_supported(n, quotes)]


# --- speed and cost -----------------------------------------------------------------------


def stage_seconds(timings: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Seconds per stage; ``total`` is the sum of the additive stages."""
    out: dict[str, float] = {}
    for stage, sec in timings:
        out[stage] = out.get(stage, 0.0) + sec
    out["total"] = sum(v for s, v in out.items() if s not in NON_ADDITIVE_STAGES)
    return out


def cost_usd(usage: Usage, price_prompt_per_m: float, price_completion_per_m: float) -> float:
    """Dollar cost of one answer's tokens."""
    return (usage.prompt_tokens * price_prompt_per_m + usage.completion_tokens * price_completion_per_m) / 1e6


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), ``q`` in [0, 100].

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
    2.5
    """
    if not values:
        return 0.0
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


# --- one item -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemScore:
    """Every metric input for one gold item and one answer."""

    item_id: str
    category: str
    answerable: bool
    refused: bool
    first_hit_rank: int | None
    evidence_ranks: tuple[int | None, ...]
    doc_coverage: float  # at the eval's k
    facts_found: tuple[str, ...]
    facts_missing: tuple[str, ...]
    citation_precision: float | None
    citation_recall: float | None
    unsupported_sentences: int
    sentences: int
    numbers_missing: tuple[str, ...]
    stages: tuple[tuple[str, float], ...]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    k: int = 5
    answer_chars: int = 0  # answer length without citation markers

    @property
    def fact_recall(self) -> float:
        n = len(self.facts_found) + len(self.facts_missing)
        return len(self.facts_found) / n if n else 1.0

    @property
    def fact_exact(self) -> bool:
        return not self.facts_missing

    def failure_reasons(self) -> list[str]:
        """Why this item fails (empty = pass).  Answerable: refused, evidence not in the
        top k, facts missing; unanswerable: not refused."""
        if not self.answerable:
            return [] if self.refused else ["answered_unanswerable"]
        reasons: list[str] = []
        if self.refused:
            reasons.append("false_refusal")
        if hit_at(self.first_hit_rank, self.k) == 0.0:
            reasons.append("retrieval_miss")
        elif evidence_recall_at(self.evidence_ranks, self.k) < 1.0:
            reasons.append("partial_evidence")
        if self.facts_missing and not self.refused:
            reasons.append("facts_missing")
        return reasons

    @property
    def passed(self) -> bool:
        """Pass: unanswerable refused; answerable answered with every fact."""
        if not self.answerable:
            return self.refused
        return not self.refused and self.fact_exact


def score_item(item: GoldItem, answer: Answer, *, k: int = 5, price_prompt_per_m: float = 0.0,
               price_completion_per_m: float = 0.0) -> ItemScore:
    """All metric inputs for ``answer`` to ``item``."""
    ranks = evidence_ranks(answer.contexts, item.evidence)
    hit_ranks = [r for r in ranks if r is not None]
    found, missing = facts_found(item.facts, answer.text) if item.answerable else ([], [])
    unsup, sents = unsupported_counts(answer)
    return ItemScore(
        item_id=item.id,
        category=item.category,
        answerable=item.answerable,
        refused=answer.refused,
        first_hit_rank=min(hit_ranks) if hit_ranks else None,
        evidence_ranks=tuple(ranks),
        doc_coverage=docs_covered_at(ranks, item.evidence, k),
        facts_found=tuple(found),
        facts_missing=tuple(missing),
        citation_precision=citation_precision(answer, item) if item.answerable else None,
        citation_recall=citation_recall(answer, item) if item.answerable else None,
        unsupported_sentences=unsup,
        sentences=sents,
        numbers_missing=tuple(missing_numbers(answer)),
        stages=tuple(stage_seconds(answer.timings).items()),
        prompt_tokens=answer.usage.prompt_tokens,
        completion_tokens=answer.usage.completion_tokens,
        cost_usd=cost_usd(answer.usage, price_prompt_per_m, price_completion_per_m),
        k=k,
        answer_chars=len(re.sub(r"\[\d+\]", "", answer.text).strip()),
    )


# --- aggregation --------------------------------------------------------------------------


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def aggregate(scores: Sequence[ItemScore], *, k: int | None = None) -> dict[str, float]:
    """Flat metrics over ``scores``.  A metric with no items to average over (retrieval on
    unanswerable items only, say) is left out rather than reported as 0 or NaN.

    Retrieval, fact, citation and false-refusal metrics use answerable items; refusal
    accuracy uses unanswerable ones; ``unsupported_rate`` is pooled over all sentences.
    """
    k = k if k is not None else (scores[0].k if scores else 5)
    ans = [s for s in scores if s.answerable]
    una = [s for s in scores if not s.answerable]
    out: dict[str, float | None] = {
        "n_items": float(len(scores)),
        "n_answerable": float(len(ans)),
        "n_unanswerable": float(len(una)),
        "pass_rate": _mean([float(s.passed) for s in scores]),
    }
    for kk in sorted({*HIT_KS, k}):
        out[f"hit@{kk}"] = _mean([hit_at(s.first_hit_rank, kk) for s in ans])
    out["mrr"] = _mean([reciprocal_rank(s.first_hit_rank) for s in ans])
    out[f"evidence_recall@{k}"] = _mean([evidence_recall_at(s.evidence_ranks, k) for s in ans])
    out[f"evidence_full@{k}"] = _mean([float(evidence_recall_at(s.evidence_ranks, k) == 1.0) for s in ans])
    out[f"doc_coverage@{k}"] = _mean([s.doc_coverage for s in ans])
    out["fact_recall"] = _mean([s.fact_recall for s in ans])
    out["fact_exact"] = _mean([float(s.fact_exact) for s in ans])
    out["citation_precision"] = _mean([s.citation_precision for s in ans if s.citation_precision is not None])
    out["citation_recall"] = _mean([s.citation_recall for s in ans if s.citation_recall is not None])
    n_sent = sum(s.sentences for s in scores)
    out["unsupported_rate"] = sum(s.unsupported_sentences for s in scores) / n_sent if n_sent else None
    answered = [s for s in scores if not s.refused]
    out["numbers_missing_per_answer"] = _mean([float(len(s.numbers_missing)) for s in answered])
    out["answers_with_missing_numbers"] = _mean([float(bool(s.numbers_missing)) for s in answered])
    out["refusal_accuracy"] = _mean([float(s.refused) for s in una])
    out["false_refusal_rate"] = _mean([float(s.refused) for s in ans])
    lengths = [float(s.answer_chars) for s in ans if not s.refused]
    # "Can a reader take it in at a glance?": median characters of answered questions.
    out["answer_chars_p50"] = percentile(lengths, 50) if lengths else None
    if scores:
        stages = sorted({st for s in scores for st, _ in s.stages})
        for st in stages:
            vals = [dict(s.stages).get(st, 0.0) for s in scores]
            out[f"latency_p50_{st}"] = percentile(vals, 50)
            out[f"latency_p95_{st}"] = percentile(vals, 95)
        out["prompt_tokens_mean"] = _mean([float(s.prompt_tokens) for s in scores])
        out["completion_tokens_mean"] = _mean([float(s.completion_tokens) for s in scores])
        out["cost_per_answer_usd"] = _mean([s.cost_usd for s in scores])
    return {name: float(v) for name, v in out.items() if v is not None}


def aggregate_by_category(scores: Sequence[ItemScore], *,
                          k: int | None = None) -> dict[str, dict[str, float]]:
    """:func:`aggregate` per gold category, in first-seen order."""
    cats: dict[str, list[ItemScore]] = {}
    for s in scores:
        cats.setdefault(s.category, []).append(s)
    return {c: aggregate(items, k=k) for c, items in cats.items()}


def flatten(overall: Mapping[str, float],
            per_category: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """One flat dict: overall names as is, per-category names as ``category/metric``.

    >>> flatten({"hit@5": 1.0}, {"list": {"hit@5": 0.5}})
    {'hit@5': 1.0, 'list/hit@5': 0.5}
    """
    out = dict(overall)
    for cat, m in per_category.items():
        out.update({f"{cat}/{name}": v for name, v in m.items()})
    return out


__all__ = [
    "HIT_KS",
    "QUOTE_OVERLAP",
    "ItemScore",
    "aggregate",
    "aggregate_by_category",
    "chunk_hits",
    "citation_precision",
    "citation_recall",
    "cost_usd",
    "docs_covered_at",
    "evidence_ranks",
    "evidence_recall_at",
    "fact_present",
    "fact_recall",
    "facts_found",
    "first_hit_rank",
    "flatten",
    "hit_at",
    "missing_numbers",
    "normalize_fact",
    "normalize_quote",
    "percentile",
    "quote_found",
    "quote_overlap",
    "reciprocal_rank",
    "score_item",
    "stage_seconds",
    "unsupported_counts",
]
