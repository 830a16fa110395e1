"""The offline answerer: quote and cite the sentences that best answer the question.

No LLM, no key.  Sentences of the retrieved chunks are scored by the
idf-weighted share of the question's terms they contain (jieba), the rank of their
chunk (dense + BM25 fusion) and, for questions asking for a figure, whether they
state a number next to the asked-for metric.  Long sentences are trimmed to the
clauses that carry the answer.  Every piece of the answer is an exact source span
with its offsets, so it verifies by construction.  When nothing clears the
threshold, or a figure is asked and none is stated for that metric, it refuses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .config import AnswerSettings
from .numbers import numbers_to_check
from .query import QueryInfo
from .retrieval import KeywordIndex, matches
from .text import sentence_spans
from .types import REFUSAL_PHRASE, Chunk, Citation, Draft, Filters, ScoredChunk

_CLAUSE_RE = re.compile(r"[,，;；:：]")
_GENERIC = frozenset([
    "工作", "情况", "相关", "内容", "报告", "哪些", "哪个", "什么", "多少", "怎样", "如何",
    "是否", "主要", "提到", "提出", "具体", "实际", "各自", "方面", "措施", "做法", "举措",
    "开展", "推进", "加强", "全市", "全面", "卫生", "健康", "卫生健康", "which", "what",
    "how", "many", "much", "does", "did", "the", "in", "of", "for",
])


@dataclass(frozen=True)
class _Cand:
    ctx_rank: int
    sc: ScoredChunk
    start: int  # absolute offsets in the document text
    end: int
    text: str
    score: float
    cover: float
    has_number: bool
    key_hit: bool


def _question_terms(info: QueryInfo, tokenize: Callable[[str], list[str]]) -> list[str]:
    drop = {str(y) for y in (*info.years, *info.unknown_years)}
    for c in (*info.cities, *info.unknown_places):
        drop |= {c, re.sub(r"(市|县|区)$", "", c)}
    # Single characters (又, 还, 也, 率) carry no topic but can be rare, which would make
    # them the "key" term; they still count through the words that contain them.
    return [t for t in dict.fromkeys(tokenize(info.question))
            if t not in drop and t not in _GENERIC and not (len(t) == 1 and not t.isascii())]


def _weights(qterms: Sequence[str], kw: KeywordIndex) -> dict[str, float]:
    return {t: kw.idf.get(t, kw.default_idf * 0.5) for t in qterms}


def _cover(text_terms: set[str], weights: dict[str, float]) -> float:
    total = sum(weights.values()) or 1.0
    return sum(w for t, w in weights.items() if t in text_terms) / total


def _key_terms(weights: dict[str, float]) -> set[str]:
    """The rarest question terms the corpus knows: the metric asked about (签约率, 托位)."""
    if not weights:
        return set()
    ranked = sorted(weights.items(), key=lambda kv: -kv[1])
    top = ranked[0][1]
    return {t for t, w in ranked[:3] if w >= 0.75 * top}


def _trim(text: str, start: int, end: int, weights: dict[str, float], tokenize: Callable[[str], list[str]],
          want_number: bool, max_chars: int) -> tuple[int, int]:
    """Shrink a long sentence to the window of clauses that carries the answer."""
    if end - start <= max_chars:
        return start, end
    bounds, pos = [], start
    for m in _CLAUSE_RE.finditer(text, start, end):
        bounds.append((pos, m.end()))
        pos = m.end()
    if pos < end:
        bounds.append((pos, end))
    if len(bounds) <= 1:
        return start, end

    def score(a: int, b: int) -> float:
        s = _cover(set(tokenize(text[a:b])), weights)
        if want_number and numbers_to_check(text[a:b]):
            s += 0.5
        return s

    scores = [score(a, b) for a, b in bounds]
    best = max(range(len(bounds)), key=lambda i: scores[i])
    lo = hi = best
    while True:
        grown = False
        for nxt in sorted((i for i in (lo - 1, hi + 1) if 0 <= i < len(bounds)), key=lambda i: -scores[i]):
            na, nb = min(lo, nxt), max(hi, nxt)
            if bounds[nb][1] - bounds[na][0] > max_chars or scores[nxt] <= 0:
                continue
            lo, hi, grown = na, nb, True
            break
        if not grown:
            break
    a, b = bounds[lo][0], bounds[hi][1]
    while b > a and text[b - 1] in ",，;；:：":
        b -= 1
    return a, b


_RANK_RE = re.compile(r"第\s*[\d一二三四五六七八九十]+")


def _states_figure(s_text: str, weights: dict[str, float], keys: set[str],
                   tokenize: Callable[[str], list[str]], ordinal: bool = False) -> bool:
    """Does a clause (with the one before it, which often holds the subject) state a
    number next to the asked-for metric? "323攻坚行动" does not answer 健康素养水平."""
    wants_rate = any(t.endswith("率") or t in ("比例", "占比", "百分比") for t in weights)
    clauses = [c for c in _CLAUSE_RE.split(s_text) if c]
    for i, cl in enumerate(clauses):
        nums = numbers_to_check(cl)
        if not nums and not (ordinal and _RANK_RE.search(cl)):
            continue
        if wants_rate and not any(n.unit in ("%", "‰") or "成" in n.raw for n in nums):
            continue  # a rate is stated as a percentage, not as "三个全覆盖"
        window = set(tokenize((clauses[i - 1] if i else "") + cl))
        cover = _cover(window, weights)
        if (keys & window and cover >= 0.25) or cover >= 0.45:
            return True
    return False


def _candidates(info: QueryInfo, contexts: Sequence[ScoredChunk], weights: dict[str, float],
                tokenize: Callable[[str], list[str]], sims: dict[tuple[str, int], float] | None = None) -> list[_Cand]:
    keys = _key_terms(weights)
    out: list[_Cand] = []
    for rank, sc in enumerate(contexts):
        ch = sc.chunk
        prev_terms: set[str] = set()
        for a, b in sentence_spans(ch.text):
            s_text = ch.text[a:b]
            s_terms = set(tokenize(s_text))
            # A figure sentence often leaves its subject to the sentence before it
            # (流动医院…巡回诊疗车…。全市累计巡诊2708次…): that context counts, discounted.
            cover = max(_cover(s_terms, weights), 0.85 * _cover(s_terms | prev_terms, weights))
            prev_terms = s_terms
            if sims is not None:  # no shared terms (an English question): use the embedding
                cover = max(cover, sims.get((ch.chunk_id, a), 0.0))
            ordinal = info.wants_rank  # "排第几?" is answered by 第5, an ordinal
            has_num = bool(numbers_to_check(s_text)) or (ordinal and bool(_RANK_RE.search(s_text)))
            key_hit = _states_figure(s_text, weights, keys, tokenize, ordinal) if info.wants_figure and has_num \
                else bool(keys & s_terms)
            if sims is not None:
                key_hit = key_hit or has_num
            score = cover + 0.12 / (1 + rank)
            if info.wants_figure and has_num:
                score += 0.10 + (0.10 if key_hit else 0.0)
            if info.wants_department and "责任" in s_text and rank <= 1:
                score += 0.6
            out.append(_Cand(rank, sc, ch.start + a, ch.start + b, s_text, score, cover, has_num, key_hit))
    return out


def _heading_span(heading: str, doc_id: str, corpus: Sequence[Chunk]) -> tuple[Chunk, int, int] | None:
    for ch in corpus:
        if ch.doc_id == doc_id:
            i = ch.text.find(heading)
            if i >= 0:
                return ch, i, i + len(heading)
    return None


def _cite_heading(heading: str, doc_id: str, corpus: Sequence[Chunk], marker: int) -> Citation | None:
    found = _heading_span(heading, doc_id, corpus)
    return Citation.from_chunk(marker, *found) if found is not None else None


def _heading_answer(info: QueryInfo, contexts: Sequence[ScoredChunk], weights: dict[str, float],
                    tokenize: Callable[[str], list[str]], corpus: Sequence[Chunk]) -> Draft | None:
    """Questions about the outline: which part a task belongs to, what part (八) or the
    last part is called. Answers quote the headings themselves."""
    allowed = [c for c in corpus if matches(c, info.filters)] if not info.filters.empty else list(corpus)
    if not allowed:
        return None
    doc_id = contexts[0].chunk.doc_id if contexts else allowed[0].doc_id
    allowed = [c for c in allowed if c.doc_id == doc_id]
    wanted: list[tuple[str, str]] = []
    if info.wants_last:
        tops = [c.section_path[0] for c in allowed if c.section_path]
        if tops:
            wanted = [("最后一部分为", tops[-1])]
    elif info.part_mark:
        mark = info.part_mark
        heads = list(dict.fromkeys(h for c in allowed for h in c.section_path))
        hits = [h for h in heads if h.startswith((f"({mark})", f"（{mark}）", f"{mark}、"))]
        if hits:
            pick = next((h for h in hits for c in allowed if h in c.section_path
                         and any(p in info.question for p in c.section_path[:-1] for p in [p[2:]])), hits[0])
            wanted = [("该部分为", pick)]
    else:
        # The section whose text (with its subsections among the contexts) covers the
        # question best; a deeper section wins a tie. A question may list several tasks.
        ctx = [sc.chunk for sc in contexts if sc.chunk.doc_id == doc_id]
        if not ctx:
            return None
        term_sets = [set(tokenize(c.text + " ".join(c.section_path))) for c in ctx]
        best: tuple[float, tuple[str, ...]] | None = None
        for path in {c.section_path[:i] for c in ctx for i in range(1, len(c.section_path) + 1)}:
            union: set[str] = set()
            under = 0
            for c, ts in zip(ctx, term_sets, strict=True):
                if c.section_path[: len(path)] == path:
                    union |= ts
                    under += 1
            score = _cover(union, weights) + 0.03 * len(path) - 0.04 * (under - 1)
            if best is None or score > best[0]:
                best = (score, path)
        if best is None or best[0] < 0.3:
            return None
        path = best[1]
        is_leaf = any(c.section_path == path for c in ctx) and not any(
            len(c.section_path) > len(path) and c.section_path[: len(path)] == path for c in ctx)
        if is_leaf and len(path) >= 2:
            wanted = [("该内容属于", path[-2]), ("具体条目为", path[-1])]
        else:
            wanted = [("这些内容属于" if not is_leaf else "该内容属于", path[-1])]
    cites: list[Citation] = []
    parts = []
    for label, heading in wanted:
        cite = _cite_heading(heading, doc_id, corpus, len(cites) + 1)
        if cite is not None:
            cites.append(cite)
            parts.append(f"{label}「{heading}」[{cite.marker}]。")
    if not parts:
        return None
    return _draft("".join(parts), cites)


def _label(f: Filters) -> str:
    return "".join(f.cities) + "".join(f"{y}年" for y in f.years)


SentenceScorer = Callable[[str, list[str]], list[float]]  # (question, sentences) → similarities


def _draft(text: str, citations: Sequence[Citation]) -> Draft:
    """An extractive draft: each marker vouches for exactly the spans it quotes."""
    evidence: dict[int, str] = {}
    for c in citations:
        evidence[c.marker] = f"{evidence.get(c.marker, '')}\n{c.quote}".strip()
    return Draft(text=text, mode="extractive", evidence=tuple(evidence.items()), citations=tuple(citations))


def _embedding_sims(info: QueryInfo, contexts: Sequence[ScoredChunk], scorer: SentenceScorer,
                    n_chunks: int = 3) -> dict[tuple[str, int], float]:
    keys, texts = [], []
    for sc in contexts[:n_chunks]:
        for a, b in sentence_spans(sc.chunk.text):
            keys.append((sc.chunk.chunk_id, a))
            texts.append(sc.chunk.text[a:b])
    sims = scorer(info.question, texts) if texts else []
    # e5 cosines sit in a narrow band; rescale so the best sentence scores like a full term match.
    hi = max(sims, default=0.0)
    return {k: max(0.0, 1.0 - (hi - v) * 10) for k, v in zip(keys, sims, strict=True)}


def answer(info: QueryInfo, contexts: Sequence[ScoredChunk], keyword: KeywordIndex,
           tokenize: Callable[[str], list[str]], settings: AnswerSettings | None = None, *,
           sentence_scorer: SentenceScorer | None = None, corpus: Sequence[Chunk] = ()) -> Draft:
    """Compose an extractive answer (or a refusal) from ``contexts``.

    ``sentence_scorer`` (embedding similarity) is used only for questions that share
    no terms with the reports (English questions); ``corpus`` lets a question about
    which part a task belongs to quote that part's heading.
    """
    s = settings or AnswerSettings()
    weights = _weights(_question_terms(info, tokenize), keyword)
    refusal = Draft(text="", mode="extractive", refusal=info.refusal(
        "no_figure" if info.wants_figure else "no_evidence", contexts))
    if not contexts or (info.unknown_places and not info.cities) or (info.unknown_years and not info.years):
        return refusal
    sims = _embedding_sims(info, contexts, sentence_scorer) \
        if sentence_scorer is not None and info.foreign else None
    cands = _candidates(info, contexts, weights, tokenize, sims)
    if info.wants_heading and not info.comparison and corpus:
        located = _heading_answer(info, contexts, weights, tokenize, corpus)
        if located is not None:
            return located

    def ok(c: _Cand) -> bool:
        if info.wants_department and "责任" in c.text and c.ctx_rank <= 1:
            return True
        if c.cover < s.min_cover:
            return False
        return not (info.wants_figure and not (c.has_number and c.key_hit))

    picked: list[_Cand] = []
    groups = info.groups if info.comparison else ()
    if groups:
        for g in groups:
            pool = sorted((c for c in cands if matches(c.sc.chunk, g) and ok(c)), key=lambda c: -c.score)
            if pool:
                picked.append(pool[0])
        if not picked:
            return refusal
    else:
        pool = sorted((c for c in cands if ok(c)), key=lambda c: -c.score)
        if not pool:
            return refusal
        best = pool[0]
        picked.append(best)
        if info.wants_department:
            # The task (the chunk's heading sentence) and its (责任科室:…) note, together.
            dept = next((c for c in pool if "责任" in c.text), None)
            if dept is not None:
                head = next((c for c in cands if c.sc is dept.sc and c.start == dept.sc.chunk.start), None)
                picked = [c for c in (head, dept) if c is not None]
                best = dept
        for c in pool[1:]:
            if len(picked) >= s.max_sentences:
                break
            if c.score >= 0.85 * best.score and all(abs(c.start - p.start) > 0 for p in picked):
                picked.append(c)
    return _compose(info, picked, groups, weights, tokenize, s)


def _compose(info: QueryInfo, picked: list[_Cand], groups: Sequence[Filters], weights: dict[str, float],
             tokenize: Callable[[str], list[str]], s: AnswerSettings) -> Draft:
    """One marker per quoted span; the same span is never quoted twice."""
    citations: list[Citation] = []
    marker_of: dict[tuple[str, int, int], int] = {}
    parts: list[str] = []
    for c in picked if groups else sorted(picked, key=lambda c: (c.sc.chunk.doc_id, c.start)):
        ch = c.sc.chunk
        a, b = _trim(ch.text, c.start - ch.start, c.end - ch.start, weights, tokenize, info.wants_figure,
                     s.max_chars)
        key = (ch.doc_id, ch.start + a, ch.start + b)
        if key in marker_of and not groups:
            continue
        n = marker_of.setdefault(key, len(marker_of) + 1)
        if n == len(citations) + 1:
            citations.append(Citation.from_chunk(n, ch, a, b))
        body = ch.text[a:b].rstrip("。；;！!？?,，")
        prefix = f"{ch.city or ''}{ch.year or ''}{'年' if ch.year else ''}:" if groups else ""
        parts.append(f"{prefix}{body}[{n}]。")
    if groups:
        covered = {i for i, g in enumerate(groups) for c in picked if matches(c.sc.chunk, g)}
        for i, g in enumerate(groups):
            if i not in covered:
                parts.append(f"{REFUSAL_PHRASE}{_label(g)}的相关内容。")
    return _draft(("\n" if groups else "").join(parts), citations)
