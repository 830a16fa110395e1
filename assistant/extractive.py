"""The offline answerer: quote and cite the sentences that best answer the question.

No LLM, no key.  The sentences of the retrieved chunks arrive scored by
:mod:`assistant.evidence` (term and character cover, answer type, novelty, rank, …,
combined by a model fitted on data); the best one is quoted, a second when it scores
nearly as well, one per side for a comparison.  Long sentences are trimmed to the
clauses that carry the answer.  Every piece of the answer is an exact source span with
its offsets, so it verifies by construction.  When no sentence reaches the model's
threshold, or the question names a place or year no evidence speaks of, it refuses.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Sequence

from .config import AnswerSettings
from .evidence import Candidate, SentenceModel, cover, has_answer_type, list_items
from .indicator_match import other_group
from .query import ACHIEVED_RE, PART_YEAR_RE, QueryInfo, kinds_named, mentions_place
from .retrieval import matches
from .text import answer_sentences, clause_bounds
from .types import REFUSAL_PHRASE, Chunk, Citation, Draft, Filters, ScoredChunk


def _trim(text: str, start: int, end: int, weights: dict[str, float], tokenize: Callable[[str], list[str]],
          answer_type: str | None, max_chars: int, units: Sequence[str] = ()) -> tuple[int, int]:
    """Shrink a long sentence to a window of clauses that carries the answer: it starts from
    the clause that best covers the question's terms or holds what the question word asks
    for (the number of 多少, the person of 谁), then takes in neighbours while they fit,
    matching ones first, then the clause after (where a stated subject's answer follows),
    then the one before. Trimming never cuts inside brackets."""
    if end - start <= max_chars:
        return start, end
    bounds = clause_bounds(text, start, end)
    if len(bounds) <= 1:
        return start, end

    def score(a: int, b: int) -> float:
        clause = text[a:b]
        s = cover(set(tokenize(clause)), weights)
        if answer_type == "list":
            s += 0.5 * list_items(clause)
        elif answer_type is not None and has_answer_type(answer_type, clause, tokenize(clause), units):
            s += 0.5
        return s

    scores = [score(a, b) for a, b in bounds]
    best = max(range(len(bounds)), key=lambda i: scores[i])
    lo = hi = best
    while True:
        options = [i for i in (hi + 1, lo - 1) if 0 <= i < len(bounds)
                   and bounds[max(hi, i)][1] - bounds[min(lo, i)][0] <= max_chars]
        if not options:
            break
        nxt = max(options, key=lambda i: (scores[i] > 0, scores[i], i > hi))
        lo, hi = min(lo, nxt), max(hi, nxt)
    a, b = bounds[lo][0], bounds[hi][1]
    while b > a and text[b - 1] in ",，;；:：":
        b -= 1
    return a, b


def _heading_span(heading: str, doc_id: str, corpus: Sequence[Chunk]) -> tuple[Chunk, int, int] | None:
    """Where ``heading`` (a section label: its whitespace taken out) stands in the report's text,
    which may space it (第一部分　2021年主要工作)."""
    spaced = re.compile(r"\s*".join(map(re.escape, heading)))
    for ch in corpus:
        if ch.doc_id == doc_id:
            m = spaced.search(ch.text)
            if m:
                return ch, m.start(), m.end()
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
        hits = [h for h in heads if h.startswith((f"({mark})", f"（{mark}）", f"{mark}、", f"第{mark}部分"))]
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
        # In the order the contexts were retrieved, so a tie goes to the better-retrieved section
        # (a set's order would change with the process's string hashing: another answer per run).
        for path in dict.fromkeys(c.section_path[:i] for c in ctx for i in range(1, len(c.section_path) + 1)):
            union: set[str] = set()
            under = 0
            for c, ts in zip(ctx, term_sets, strict=True):
                if c.section_path[: len(path)] == path:
                    union |= ts
                    under += 1
            score = cover(union, weights) + 0.03 * len(path) - 0.04 * (under - 1)
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
    return _headings_draft(wanted, doc_id, corpus)


def _headings_draft(wanted: Sequence[tuple[str, str]], doc_id: str, corpus: Sequence[Chunk]) -> Draft | None:
    """``label「heading」[n]。`` for each (label, heading), each heading quoted from the report."""
    cites: list[Citation] = []
    parts = []
    for label, heading in wanted:
        cite = _cite_heading(heading, doc_id, corpus, len(cites) + 1)
        if cite is not None:
            cites.append(cite)
            parts.append(f"{label}「{cite.quote.strip()}」[{cite.marker}]。")  # as the report writes it
    if not parts:
        return None
    return _draft("".join(parts), cites)


def _kind_part(info: QueryInfo, doc_id: str, corpus: Sequence[Chunk], unless: Sequence[str] = ()) -> Draft | None:
    """The first heading of the report that names a kind of part the question asks for (对下一年的
    安排 → 第三部分 2022年工作打算), quoted; looked for in the whole report (its year is the
    report's). None when there is none or it is one of ``unless``."""
    asked = _asked_kinds(info)
    if not asked:
        return None
    kind = next((h for c in sorted((c for c in corpus if c.doc_id == doc_id), key=lambda c: c.start)
                 for h in c.section_path if asked & kinds_named(h)), None)
    return _headings_draft([("该内容属于", kind)], doc_id, corpus) if kind and kind not in unless else None


def _located_answer(best: Candidate, corpus: Sequence[Chunk]) -> Draft | None:
    """Which part of its report states something, when the question's words do not pick the part out
    (the user's words for the task are not the report's): the sections of the sentence the model
    found, each heading quoted, and that sentence itself."""
    ch = best.sc.chunk
    cites: list[Citation] = []
    for heading in ch.section_path:
        cite = _cite_heading(heading, ch.doc_id, corpus, len(cites) + 1)
        if cite is not None:
            cites.append(cite)
    if not cites:
        return None
    quote = Citation.from_chunk(len(cites) + 1, ch, best.start - ch.start, best.end - ch.start)
    path = " › ".join(f"「{c.quote.strip()}」[{c.marker}]" for c in cites)
    return _draft(f"该内容属于{path}。原文：{best.text.strip()}[{quote.marker}]", [*cites, quote])


# A report's 落款: the issuing body on a line of its own, and the date it was signed on the next.
_ORG_LINE_RE = re.compile(r"[^\s，,。；;：:]{2,40}?(?:委员会|卫生健康局|卫健局|卫生局|人民政府|办公室|办公厅|管理局|"
                          r"卫健委|局|中心)")
_DATE_LINE_RE = re.compile(r"(?:(?:19|20)\d\d|[一二三四五六七八九〇○零]{4})\s*年"
                           r"\s*(?:\d{1,2}|[一二三四五六七八九十]{1,3})\s*月\s*(?:\d{1,2}|[一二三四五六七八九十]{1,3})\s*日")


def _signature(ch: Chunk) -> tuple[int, int, str, str] | None:
    """The first 落款 in ``ch``: (start, end) in the chunk text, the issuer and the date."""
    lines, pos = [], 0
    for line in ch.text.split("\n"):
        lines.append((pos, line))
        pos += len(line) + 1
    for (a, org), (b, date) in itertools.pairwise(lines):
        o, d = _ORG_LINE_RE.fullmatch(org.strip()), _DATE_LINE_RE.fullmatch(date.strip())
        if o and d:
            a += len(org) - len(org.lstrip())
            return a, b + len(date.rstrip()), org.strip(), date.strip()
    return None


def _issuer_answer(contexts: Sequence[ScoredChunk], corpus: Sequence[Chunk]) -> Draft | None:
    """Who issued the report and when: its 落款 (the issuing body on one line, the date on the
    next), quoted from the report the best context (there is one) belongs to. None when it has none."""
    doc_id = contexts[0].chunk.doc_id
    for ch in sorted((c for c in corpus if c.doc_id == doc_id), key=lambda c: c.start):
        found = _signature(ch)
        if found is not None:
            a, b, org, date = found
            cite = Citation.from_chunk(1, ch, a, b)
            return _draft(f"发文单位为「{org}」，落款日期为「{date}」[1]。", [cite])
    return None


def _label(f: Filters) -> str:
    return "".join(f.cities) + "".join(f"{y}年" for y in f.years)


def _draft(text: str, citations: Sequence[Citation]) -> Draft:
    """An extractive draft: each marker vouches for exactly the spans it quotes."""
    evidence: dict[int, str] = {}
    for c in citations:
        evidence[c.marker] = f"{evidence.get(c.marker, '')}\n{c.quote}".strip()
    return Draft(text=text, mode="extractive", evidence=tuple(evidence.items()), citations=tuple(citations))


_ITEM_RE = re.compile(r"^\s*(?:[一二三四五六七八九十]+是|[①②③④⑤⑥⑦⑧⑨⑩]|[（(][一二三四五六七八九十\d]{1,2}[)）]"
                      r"|\d{1,2}[.、．])|[；;，,。：:]\s*(?:[一二三四五六七八九十]+是|[①②③④⑤⑥⑦⑧⑨⑩])")
_MAX_ITEMS = 8


_SEMICOLONS = ("；", ";")


def _enumeration(best: Candidate, evidence: Sequence[Candidate]) -> list[Candidate]:
    """A list stated over several sentences (一是…二是…, ①②③, (1)(2)) or over the clauses of one
    (split at its semicolons): every item of the run the best one belongs to, in order; [] when it
    is not in one."""
    same = sorted((c for c in evidence if c.sc.chunk.chunk_id == best.sc.chunk.chunk_id), key=lambda c: c.start)
    i = next((k for k, c in enumerate(same) if c.start == best.start), None)
    if i is None:
        return []
    lo = hi = i
    if _ITEM_RE.search(same[i].text):
        while lo > 0 and _ITEM_RE.search(same[lo - 1].text):
            lo -= 1
        while hi + 1 < len(same) and _ITEM_RE.search(same[hi + 1].text):
            hi += 1
    else:
        # One sentence whose clauses are the items, split at its semicolons (扩大艾滋病检测…；
        # 扩大耐药结核病筛查…；开展慢性病、地方病防控…。): the clauses of the run, in order.
        def run_on(k: int) -> bool:
            return same[k].text.rstrip().endswith(_SEMICOLONS) and same[k + 1].start - same[k].end <= 1

        while lo > 0 and run_on(lo - 1):
            lo -= 1
        while hi + 1 < len(same) and run_on(hi):
            hi += 1
    return same[lo : hi + 1][:_MAX_ITEMS] if hi > lo else []


def _item_style(text: str) -> str:
    """How an item is numbered, with the number itself left out: （一） → （一）, 二是 → 一是, 3. → 1."""
    m = _ITEM_RE.search(text)
    mark = m.group(0).strip(" ；;，,。：:") if m else ""
    return re.sub(r"\d{1,2}", "1", re.sub(r"[一二三四五六七八九十]+", "一", re.sub(r"[①-⑩]", "①", mark)))


def _asked_kinds(info: QueryInfo) -> frozenset[int]:
    """The kinds of report part the question asks for, in its own words or its everyday ones'
    report terms (没做好 → 不足)."""
    return kinds_named(" ".join((info.question, *info.bridge)))


def _section_items(info: QueryInfo, evidence: Sequence[Candidate], corpus: Sequence[Chunk]) -> list[Candidate]:
    """A list question that asks for the items of a kind of report part (哪些不足, 有哪些困难,
    下一步有哪些打算) is answered by the part whose heading names that kind in any of its words
    (三、存在的问题): its numbered lines and sentences (（一）…, 一是…, 1.), or else its
    subsections' first lines, or else its sentences, in order, read from the whole report
    (retrieval need not have brought every item). [] when no retrieved part's heading names the kind."""
    asked = _asked_kinds(info)
    if not asked:
        return []
    target: tuple[str, tuple[str, ...]] | None = None
    for c in sorted(evidence, key=lambda c: (c.ctx_rank, c.start)):
        path = c.sc.chunk.section_path
        depth = next((i + 1 for i, h in enumerate(path) if asked & kinds_named(h)), 0)
        if depth:
            target = (c.sc.chunk.doc_id, path[:depth])
            break
    if target is None:
        return []
    doc, path = target
    under: list[Candidate] = []
    done = -1  # chunks overlap: a sentence starting before the end of one taken is taken already
    for ch in sorted((c for c in corpus if c.doc_id == doc and c.section_path[: len(path)] == path),
                     key=lambda c: c.start):
        sc = ScoredChunk(ch, 0.0)
        for a, b in answer_sentences(ch.text):
            text = ch.text[a:b]
            if ch.start + a >= done and re.sub(r"\s+", "", text).rstrip("。：:") not in path:  # not a heading line
                under.append(Candidate(len(under), sc, ch.start + a, ch.start + b, text, (), False, False))
                done = ch.start + b
    numbered = [c for c in under if _ITEM_RE.search(c.text)]
    if len(numbered) > 1:
        # The items of the part's own level: its first numbering style ((一), not the 1. inside it).
        return [c for c in numbered if _item_style(c.text) == _item_style(numbered[0].text)][:_MAX_ITEMS]
    children: dict[str, Candidate] = {}  # unnumbered subsections: the first line of each
    for c in under:
        p = c.sc.chunk.section_path
        if len(p) > len(path):
            children.setdefault(p[len(path)], c)
    return (list(children.values()) if len(children) > 1 else under)[:_MAX_ITEMS]


def _opens_list(info: QueryInfo, evidence: Sequence[Candidate], threshold: float) -> bool:
    """Does a list question's best sentence open a list (从哪几个方面推进 → 从三个方面推进：一是…)?
    Then the list answers it, though the question reads as one about the outline too."""
    if not info.wants_list:
        return False
    pool = standing(evidence, info, threshold)
    return bool(pool) and len(_enumeration(pool[0], evidence)) > 1


def speaks_of_missing(c: Candidate, info: QueryInfo) -> bool:
    """A question naming a place or year no report covers is answered only by evidence
    that names it too (a Wikipedia-style passage about 上海 mentions 上海)."""
    ch = c.sc.chunk
    where = f"{c.text} {ch.title} {' '.join(ch.section_path)}"
    if info.unknown_places and not info.cities:
        names = {n for p in info.unknown_places for n in (p, re.sub(r"(市|县|区|州)$", "", p))}
        if not any(mentions_place(where, n) for n in names):
            return False
    return not (info.unknown_years and not info.years and not any(str(y) in where for y in info.unknown_years))


# Words that put a figure in the future: what a plan aims at, not what was done.
_TARGET_RE = re.compile(r"力争|确保|争取|预计|到20\d{2}年")


def states_target(c: Candidate) -> bool:
    """Does the sentence state an aim rather than a result? It does in a plan's section, or with words
    that put its figure in the future (力争, 到2025年). A sentence that itself says 实际 (实际报销比例达到
    90%) names the measure, so it may be what is asked."""
    if ACHIEVED_RE.search(c.text):
        return False
    return c.sc.chunk.role == "plan" or bool(_TARGET_RE.search(c.text))


def for_part_of_year(c: Candidate) -> bool:
    """Does the sentence (or the heading it stands under) count part of a year: 1—6月, 上半年, 一季度?"""
    return bool(PART_YEAR_RE.search(c.text) or PART_YEAR_RE.search(" ".join(c.sc.chunk.section_path)))


def eligible(c: Candidate, info: QueryInfo) -> bool:
    """Can this sentence answer at all, whatever its score? Not when the question names a
    place or year it does not speak of, and not when the question asks for a figure (多少,
    几个, 比例) and the sentence states none of that kind: "(二)开展家庭医生签约服务" does not
    answer 签约率的目标是多少. (A list asked with 哪几个 is not a figure question.) Nor when the
    rate asked is of one population group and the sentence speaks of another: 重点人群签约率
    does not answer 常住人口签约率是多少. A heading line answers only a question about headings, and
    a passage without the identifiers the question names (32M线, W184) answers none about them.
    A figure of the asked kind answers only about the asked topic: a sentence that, with the
    one before it, shares no word and no character pair with the question (接种率达到98.5% for
    家庭医生签约率是多少) states someone else's figure, however sure the gate is that the report
    was found. Nor does an aim answer what was actually achieved (:func:`states_target`), or a
    part of the year the whole year (:func:`for_part_of_year`)."""
    if info.answer_type in ("number", "count", "rate") and not info.wants_list:
        if c.feature("type_miss"):
            return False
        if not c.key_hit and not c.feature("char_cover_ctx") and not c.feature("q_bigram_ctx"):
            return False
    if info.answer_type == "rate" and other_group(info.question, c.text):
        return False
    if info.wants_figure and info.wants_achieved and states_target(c):
        return False  # asked what was actually done (实际建成了多少), the sentence states an aim
    if info.wants_figure and info.wants_full_year and for_part_of_year(c):
        return False  # asked for the whole year, the sentence counts 1—6月
    if c.feature("ids_missing"):
        return False  # a passage on route 95M does not answer for route 32M
    if c.feature("label_line") and not info.wants_heading:
        return False  # a heading names a topic; what the topic holds is in the sentences under it
    return speaks_of_missing(c, info)


def stands(c: Candidate, info: QueryInfo, threshold: float) -> bool:
    """Is ``c`` good enough to quote? Its answer probability reaches ``threshold``; a
    sentence stating a figure of the asked kind next to the asked-for metric stands when it
    is more likely than not to answer."""
    if info.wants_figure and c.key_hit:
        threshold = min(threshold, 0.5)
    return c.score >= threshold and eligible(c, info)


def standing(evidence: Sequence[Candidate], info: QueryInfo, threshold: float) -> list[Candidate]:
    """The sentences good enough to quote, best first. The gate judges a question by its best
    eligible sentence (that is how it is fitted): when that one does not stand, a lower-ranked
    sentence answers only by stating a figure of the asked kind next to the asked-for metric,
    never because the gate, asked about a sentence it was not fitted on, rates it higher."""
    pool = sorted((c for c in evidence if stands(c, info, threshold)), key=lambda c: -c.rank_score)
    top = max((c for c in evidence if eligible(c, info)), key=lambda c: c.rank_score, default=None)
    if top is None or not pool or pool[0] is top:
        return pool
    return [c for c in pool if info.wants_figure and c.key_hit]


def answer(info: QueryInfo, contexts: Sequence[ScoredChunk], evidence: Sequence[Candidate],
           weights: dict[str, float], tokenize: Callable[[str], list[str]], settings: AnswerSettings,
           model: SentenceModel, *, corpus: Sequence[Chunk] = ()) -> Draft:
    """Compose an extractive answer (or a refusal) from the scored ``evidence``.

    ``weights`` are the question terms' idf weights (for trimming and heading questions);
    ``corpus`` lets a question about which part a task belongs to quote that part's heading.
    """
    s = settings
    refusal = Draft(text="", mode="extractive", refusal=info.refusal(
        "no_figure" if info.wants_figure else "no_evidence", contexts))
    if not contexts:
        return refusal
    if info.wants_issuer and not info.comparison and corpus:
        signed = _issuer_answer(contexts, corpus)
        if signed is not None:
            return signed
    if info.wants_heading and not info.comparison and corpus and not _opens_list(info, evidence, model.threshold):
        located = _heading_answer(info, contexts, weights, tokenize, corpus)
        if located is not None:
            return located

    def duty(c: Candidate) -> bool:  # the (责任科室:…) note of a top section, asked for by 哪个科室
        return info.wants_department and "责任" in c.text and c.ctx_rank <= 1

    def ok(c: Candidate, threshold: float = model.threshold) -> bool:
        return duty(c) or stands(c, info, threshold)

    picked: list[Candidate] = []
    groups = info.groups if info.comparison else ()
    if groups:
        # Each side is searched in its own reports only, and the other sides fix the topic:
        # a side's best sentence stands when it is more likely than not to answer.
        side = min(model.threshold, 0.5)
        for g in groups:
            pool = sorted((c for c in evidence if matches(c.sc.chunk, g) and ok(c, side)), key=lambda c: -c.rank_score)
            if pool:
                picked.append(pool[0])
        if not picked:
            return refusal
    elif info.wants_list and (items := _section_items(info, evidence, corpus)):
        picked = items
    else:
        notes = [c for c in evidence if duty(c)]
        pool = sorted({id(c): c for c in (*notes, *standing(evidence, info, model.threshold))}.values(),
                      key=lambda c: -c.rank_score)
        if not pool:
            # No sentence says it, but a question for a kind of part (对下一年的安排放在哪一部分) is
            # answered by the heading of the best report that names the kind.
            part = _kind_part(info, contexts[0].chunk.doc_id, corpus) if info.wants_heading else None
            return part or refusal
        best = pool[0]
        items = _enumeration(best, evidence) if info.wants_list else []
        if info.wants_heading and corpus and len(items) < 2:
            # The outline did not say where it is: the model's sentence does (unless it opens a
            # list the question asks for: 从哪几个方面推进 wants the 一是…二是… of that sentence).
            # A kind of part asked for by another name is that part, when the sentence is not in it.
            located = _kind_part(info, best.sc.chunk.doc_id, corpus, unless=best.sc.chunk.section_path) \
                or _located_answer(best, corpus)
            if located is not None:
                return located
        picked.append(best)
        if info.wants_department:
            # The task (the chunk's heading sentence) and its (责任科室:…) note, together.
            dept = next((c for c in pool if "责任" in c.text), None)
            if dept is not None:
                head = next((c for c in evidence if c.sc is dept.sc and c.start == dept.sc.chunk.start), None)
                picked = [c for c in (head, dept) if c is not None]
                best = dept
                items = _enumeration(best, evidence) if info.wants_list else []
        if len(items) > 1:
            picked = items
        for c in pool[1:]:
            if len(picked) >= s.max_sentences or info.wants_list:
                break
            # A runner-up nearly as likely (softmax weight) as the best is quoted too.
            near = math.exp(c.rank_score - best.rank_score) >= model.second
            if near and all(c.start != p.start or c.sc.chunk.doc_id != p.sc.chunk.doc_id for p in picked):
                picked.append(c)
    return _compose(info, picked, groups, weights, tokenize, s)


def _compose(info: QueryInfo, picked: list[Candidate], groups: Sequence[Filters], weights: dict[str, float],
             tokenize: Callable[[str], list[str]], s: AnswerSettings) -> Draft:
    """One marker per quoted span; the same span is never quoted twice."""
    citations: list[Citation] = []
    marker_of: dict[tuple[str, int, int], int] = {}
    seen_text: set[str] = set()
    parts: list[str] = []
    for c in picked if groups else sorted(picked, key=lambda c: (c.sc.chunk.doc_id, c.start)):
        ch = c.sc.chunk
        # A list asked with 哪几个 wants the items, not a count.
        kind = "list" if info.wants_list else info.answer_type or ("number" if info.wants_figure else None)
        a, b = _trim(ch.text, c.start - ch.start, c.end - ch.start, weights, tokenize, kind,
                     s.max_chars if not info.wants_list else 2 * s.max_chars, info.units)
        key = (ch.doc_id, ch.start + a, ch.start + b)
        same = re.sub(r"\s+", "", ch.text[a:b])
        if (key in marker_of or same in seen_text) and not groups:
            continue  # a near-duplicate report says the same sentence: quote it once
        seen_text.add(same)
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
