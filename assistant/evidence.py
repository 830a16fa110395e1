"""Evidence: every sentence of the retrieved chunks, scored as an answer to the question.

Sentence selection must not hinge on the question repeating the report's words, so
each candidate is described by signals that carry meaning across wording:

* **term cover** – the idf-weighted share of the question's jieba terms in the sentence
  (and, discounted, in the sentence before it, which often holds the subject);
* **character cover** – the same with character bigrams of each question term, so
  near-synonyms that share characters but split into other words still meet
  (签约率 / 签约覆盖率, 巡诊 / 巡回诊疗);
* **local weight** – the same covers with each term also weighted by how rare it is
  *among the chunk's sentences*: the topic every sentence of a passage repeats says
  nothing about which sentence answers;
* **answer type** – whether the sentence holds what the question word asks for: a
  number (多少, 几), a rate (率, 比例), a time (何时, 哪一年), a person (谁), a place
  (哪里), a reason (为什么) or a title (哪部作品);
* **novelty** – an answer says something the question does not; a sentence made only of
  the question's own words (a title line) answers nothing;
* the heading path of the chunk, its retrieval rank, and (for figure questions) whether
  a number stands next to the asked-for metric.

:class:`SentenceModel` combines them with weights fitted on data (see
:mod:`assistant.evals.calibrate`), never on one report's wording.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .numbers import numbers_to_check
from .query import QueryInfo
from .retrieval import KeywordIndex
from .text import answer_sentences, function_char, is_name_like, normalize, word_spans, word_tag
from .types import Chunk, ScoredChunk

#: Feature names, in the order of :attr:`Candidate.features`.
FEATURES: tuple[str, ...] = (
    "term_cover", "term_cover_ctx", "local_cover", "char_cover", "char_cover_ctx", "local_char_cover",
    "heading_cover", "rank_inv", "fused", "type_match", "type_miss", "figure_key", "novelty",
    "restates_question", "log_chars", "department", "chunk_cover", "chunk_char_cover", "chunk_key", "dense",
    "unknown_mass", "rarest_in_chunk", "names_in_chunk", "names_in_sentence", "sectioned",
    "q_bigram", "q_bigram_ctx", "q_bigram_chunk", "align", "align_left", "align_right", "subject_lead",
    "subject_chunk", "piece_min", "label_line", "names_missing", "list_items", "ids_missing",
    "sent_sim_spread", "focus_char_cover", "sent_dense", "doc_lead",
)

_CLAUSE_RE = re.compile(r"[,，;；:：]")
_ITEMS_RE = re.compile(r"[、；;]|[一二三四五六七八九十]是|[①②③④⑤⑥⑦⑧⑨⑩]")  # what separates the items of a list
_GENERIC = frozenset([
    "工作", "情况", "相关", "内容", "报告", "哪些", "哪个", "什么", "多少", "怎样", "如何",
    "是否", "主要", "提到", "提出", "具体", "实际", "各自", "方面", "措施", "做法", "举措",
    "which", "what", "how", "many", "much", "does", "did", "the", "in", "of", "for", "is", "are", "was",
    "谁", "哪里", "哪儿", "何时", "为什么", "为何", "哪一年", "哪年", "几", "是", "叫", "称", "被",
    # what kind of statement is asked for (a target, a plan), not what it is about: a plan
    # states 签约率达到60% without the word 目标
    "目标", "目标值", "计划", "预计", "打算",
    # who issued the report (宜宾市卫健委2023年的…): it picks the report, as a place does
    "卫健委", "卫健局", "卫健", "健委", "卫生健康委", "卫生健康委员会", "卫生健康局", "卫计委", "卫生局",
])
_RANK_RE = re.compile(r"第\s*[\d一二三四五六七八九十]+")
_TIME_RE = re.compile(r"(?<!\d)(?:1[0-9]|20)\d{2}\s*年|\d{1,2}\s*月|\d{1,2}\s*日|世纪|年代|朝|时期"
                      r"|(?:明|清|唐|宋|元|汉)代|春|夏|秋|冬|上旬|中旬|下旬|(?<!\d)(?:1[0-9]|20)\d{2}(?!\d)")
_REASON_RE = re.compile(r"因为|由于|为了|因此|所以|原因|导致|以便|旨在")
_TITLE_RE = re.compile(r"《[^》]+》|「[^」]+」|“[^”]+”")
_PERSON_TAGS = ("nr", "nrt", "nrfg")
_PLACE_TAGS = ("ns", "nsf")
_PLACE_SUFFIX_RE = re.compile(r"[\u4e00-\u9fff](?:省|市|县|区|州|国|岛|洲|山|河|湖|镇|村|乡|港|湾)")


@dataclass(frozen=True)
class Candidate:
    """One sentence of one retrieved chunk, with its features and model score."""

    ctx_rank: int
    sc: ScoredChunk
    start: int  # absolute offsets in the document text
    end: int
    text: str
    features: tuple[float, ...]
    has_number: bool
    key_hit: bool  # figure questions: a number next to the asked-for metric
    score: float = 0.0  # the model's probability that this sentence answers the question
    rank_score: float = 0.0  # the ranker's score: orders a question's candidates

    def feature(self, name: str) -> float:
        return self.features[FEATURES.index(name)]


def _place_names(info: QueryInfo) -> set[str]:
    """The places a question filters on (or names though no report covers them, or names to say
    where another is), in full and without their suffix: they pick reports, they are not what a
    sentence must say."""
    return {n for c in (*info.cities, *info.unknown_places, *info.locating) for n in (c, re.sub(r"(市|县|区)$", "", c))}


def question_terms(info: QueryInfo, tokenize: Callable[[str], list[str]]) -> list[str]:
    """The question's content terms: place and year names, question words and single
    Chinese characters dropped (they still count through the words that contain them)."""
    drop = {str(y) for y in (*info.years, *info.unknown_years)}
    places = _place_names(info)
    # An English question's words cannot meet Chinese text; its glossary terms can. A Chinese
    # question keeps its words and adds the reports' terms for its everyday ones.
    text = " ".join(info.bridge) if info.foreign and info.bridge else f"{info.question} {' '.join(info.bridge)}"
    # A place's pieces go with it (宜宾市 → 宜宾, 宾市: the second is no word of any sentence).
    return [t for t in dict.fromkeys(tokenize(text))
            if t not in drop and not any(t in p for p in places) and t not in _GENERIC
            and not (len(t) == 1 and not t.isascii())]


def term_weights(qterms: Sequence[str], kw: KeywordIndex) -> dict[str, float]:
    return {t: kw.idf.get(t, kw.default_idf * 0.5) for t in qterms}


def cover(text_terms: set[str], weights: dict[str, float]) -> float:
    total = sum(weights.values()) or 1.0
    return sum(w for t, w in weights.items() if t in text_terms) / total


def key_terms(weights: dict[str, float]) -> set[str]:
    """The rarest question terms the corpus knows: the metric asked about (签约率, 托位)."""
    if not weights:
        return set()
    ranked = sorted(weights.items(), key=lambda kv: -kv[1])
    top = ranked[0][1]
    return {t for t, w in ranked[:3] if w >= 0.75 * top}


def _bigrams(term: str) -> list[str]:
    t = normalize(term)
    return [t] if len(t) <= 2 else [t[i : i + 2] for i in range(len(t) - 1)]


def _char_cover(text: str, grams: dict[str, list[str]], weights: dict[str, float],
                local: dict[str, float] | None = None) -> float:
    """Share of the question's (idf-weighted) term mass whose character bigrams occur in ``text``."""
    total = got = 0.0
    for t, w in weights.items():
        w *= local.get(t, 1.0) if local else 1.0
        gs = grams[t]
        total += w
        got += w * sum(g in text for g in gs) / len(gs)
    return got / total if total else 0.0


_QWORD_RE = re.compile(r"为什么|为何|什么|哪里|哪儿|哪些|哪一|哪个|哪位|哪|谁|多少|多久|多长|几|怎样|怎么|如何"
                       r"|何时|何处|何人|是否|吗|呢|what|which|who|where|when|why|how")
_NONWORD_RE = re.compile(r"[^\w]+")
# Function words that separate what a question names: 朱祐杬|的|母亲|是|谁.
_PARTICLE_RE = re.compile(r"[的是在有于被为和与及了把将对从由以之其]")


@dataclass(frozen=True)
class QuestionShape:
    """The question as characters, for alignment with a sentence that states its answer:
    its content split at the question word (``left`` before it, ``right`` after) and at
    punctuation, with the places and years it filters on removed."""

    segments: tuple[str, ...]
    left: tuple[str, ...]
    right: tuple[str, ...]
    bigrams: frozenset[str]
    pieces: tuple[str, ...] = ()  # the named things, split at function words too; the first is the subject
    names: tuple[str, ...] = ()  # proper names as written (朱祐杬, 高畠): a paraphrase cannot change them
    ids: tuple[str, ...] = ()  # identifiers (32m, w184, 16号线): another one names another thing

    @classmethod
    def of(cls, info: QueryInfo) -> QuestionShape:
        q = normalize(info.question)
        for name in sorted(_place_names(info), key=len, reverse=True):
            q = q.replace(normalize(name), " ")
        for y in (*info.years, *info.unknown_years):
            q = re.sub(rf"{y}年?", " ", q)
        m = _QWORD_RE.search(q)

        def segs(t: str) -> tuple[str, ...]:
            return tuple(x for x in _NONWORD_RE.split(_QWORD_RE.sub(" ", t)) if len(x) >= 2)

        whole = segs(q)
        grams = frozenset(x[i : i + 2] for x in whole for i in range(len(x) - 1))
        pieces = tuple(x for seg in whole for x in _PARTICLE_RE.split(seg) if len(x) >= 2)
        ids = () if info.foreign else tuple(dict.fromkeys(_ID_RE.findall(q)))
        return cls(whole, segs(q[: m.start()]) if m else whole, segs(q[m.end() :]) if m else (), grams, pieces,
                   _name_runs(q), ids)


# Letters and digits that identify one thing among its kind: a bus route (32m), a specimen
# (w184), a line (16号线); the question's years are filters and are taken out before.
_ID_RE = re.compile(r"\d+(?:号线|号|路|线|届|期|代)|[a-z0-9][a-z0-9\-.]*[a-z0-9]")


def _name_runs(q: str) -> tuple[str, ...]:
    """Runs of the question's words that spell a proper name: words jieba tags as names or
    does not know, and the single characters of an unknown name (朱|祐|杬), which jieba gives
    when it does not guess words; a character it knows as a function word, a verb or a
    measure word is none (王沈|是, 瑞尼尔山|又, 2014年|12月|胡天衡|在)."""
    runs, cur = [], ""
    for a, b in word_spans(q, hmm=False):
        w = q[a:b]
        cjk = all("\u4e00" <= ch <= "\u9fff" for ch in w)
        if cjk and ((len(w) == 1 and not _PARTICLE_RE.match(w) and not _QWORD_RE.match(w) and not function_char(w))
                    or is_name_like(w)):
            cur += w
        else:
            runs.append(cur)
            cur = ""
    runs.append(cur)
    return tuple(dict.fromkeys(r for r in runs if len(r) >= 2))


def longest_common(segments: Sequence[str], text: str) -> int:
    """Length of the longest piece of any segment that occurs in ``text`` (binary search on
    the length: a common piece of length k has common pieces of every shorter length)."""
    best = 0
    for seg in segments:
        lo, hi = best, len(seg)
        while lo < hi:
            k = (lo + hi + 1) // 2
            if any(seg[i : i + k] in text for i in range(len(seg) - k + 1)):
                lo = k
            else:
                hi = k - 1
        best = lo
    return best


def _align(segments: Sequence[str], text: str, cap: int) -> float:
    total = sum(len(x) for x in segments)
    return min(1.0, longest_common(segments, text) / min(cap, total)) if total else 0.0


def _gram_share(grams: frozenset[str], text: str) -> float:
    return sum(g in text for g in grams) / len(grams) if grams else 0.0


def states_figure(s_text: str, weights: dict[str, float], keys: set[str],
                  tokenize: Callable[[str], list[str]], ordinal: bool = False,
                  grams: dict[str, list[str]] | None = None) -> bool:
    """Does a clause (with the one before it, which often holds the subject) state a
    number next to the asked-for metric? "323攻坚行动" does not answer 健康素养水平.
    With ``grams`` (the question terms' character bigrams) the metric may be worded
    differently, as long as its characters are there."""
    wants_rate = any(t.endswith("率") or t in ("比例", "占比", "百分比") for t in weights)
    clauses = [c for c in _CLAUSE_RE.split(s_text) if c]
    for i, cl in enumerate(clauses):
        nums = numbers_to_check(cl)
        if not nums and not (ordinal and _RANK_RE.search(cl)):
            continue
        if wants_rate and not any(n.unit in ("%", "‰") or "成" in n.raw for n in nums):
            continue  # a rate is stated as a percentage, not as "三个全覆盖"
        text = (clauses[i - 1] if i else "") + cl
        window = set(_term_set(tokenize, text))
        c = cover(window, weights)
        if (keys & window and c >= 0.25) or c >= 0.45:
            return True
        if grams is not None:
            # The same by characters: 签约覆盖率 states 签约率 in other words.
            norm = normalize(text)
            key_chars = any(_char_cover(norm, grams, {k: 1.0}) >= 0.5 for k in keys)
            cc = _char_cover(norm, grams, weights)
            if (key_chars and cc >= 0.3) or cc >= 0.5:
                return True
    return False


def list_items(text: str) -> float:
    """How much ``text`` reads as a list: its item separators (、；一是 ①), four or more counting as 1."""
    return min(1.0, len(_ITEMS_RE.findall(text)) / 4.0)


_SHARE_UNITS = frozenset({"%", "‰", "百分点"})


def has_answer_type(kind: str | None, text: str, tokens: Sequence[str], units: Collection[str] = ()) -> bool:
    """Does ``text`` hold something of the kind the question word asks for? For a count whose
    ``units`` the question implies (:attr:`QueryInfo.units`: 出生人口 is counted in 人), a figure in
    one of them or in none (a bare number)."""
    if kind is None:
        return True
    if kind in ("number", "count"):
        nums = numbers_to_check(text)
        if units:
            return any(not n.unit or n.unit in units for n in nums)
        # A count (几家, 多少个) is never a share: 手术占比35% does not say how many hospitals.
        return any(n.unit not in _SHARE_UNITS for n in nums) if kind == "count" else bool(nums)
    if kind == "rate":
        return any(n.unit in _SHARE_UNITS or "成" in n.raw for n in numbers_to_check(text))
    if kind == "time":
        return bool(_TIME_RE.search(text))
    if kind == "reason":
        return bool(_REASON_RE.search(text))
    if kind == "title":
        return bool(_TITLE_RE.search(text))
    if kind == "person":
        return any((word_tag(t) or "").startswith(_PERSON_TAGS) for t in tokens) or "·" in text
    if kind == "place":
        return any((word_tag(t) or "") in _PLACE_TAGS for t in tokens) or bool(_PLACE_SUFFIX_RE.search(text))
    return True


@lru_cache(maxsize=16384)
def _term_set(tokenize: Callable[[str], list[str]], text: str) -> frozenset[str]:
    """The terms of a report's clause, heading or title, cached like :func:`_sentences`: they do
    not depend on the question (jieba was a quarter of the answerer's time re-cutting them)."""
    return frozenset(tokenize(text))


@lru_cache(maxsize=4096)
def _sentences(chunk_id: str, text: str, tokenize: Callable[[str], list[str]]
               ) -> tuple[list[tuple[int, int]], list[str], list[str], list[list[str]]]:
    """A chunk's sentences, normalised and tokenised: the same chunks answer many questions,
    so this is done once per chunk (bounded cache; chunks are immutable)."""
    spans = answer_sentences(text)
    texts = [text[a:b] for a, b in spans]
    return spans, texts, [normalize(t) for t in texts], [tokenize(t) for t in texts]


#: e5 cosines sit in a narrow band (0.75–0.90): for an English question, whose lexical covers
#: are its similarity, 0.1 below the best sentence counts as no match.
_SIM_SCALE = 10.0
#: ``sent_sim_spread`` is clipped here: far below the question's typical sentence is simply far.
_SPREAD_FLOOR = -5.0


def _spread(sims: Sequence[float]) -> Callable[[float], float]:
    """A sentence's cosine as its distance below the question's best sentence, in units of
    the best one's lead over the median one: unchanged by the embedder's scale and offset
    (e5 cosines sit in 0.75–0.90, OpenAI's lower and wider), so the fitted weight carries
    over to another embedding model. On 800 CMRC tuning questions (4-fold) it lifts the
    ranker's top-1 as much as the raw cosine and its e5-scaled gap did (0.829 vs 0.825,
    from 0.788)."""
    if len(sims) < 2:
        return lambda s: 0.0
    hi = max(sims)
    lead = hi - sorted(sims)[len(sims) // 2]
    if lead <= 1e-9:
        return lambda s: 0.0
    return lambda s: max(_SPREAD_FLOOR, (s - hi) / lead)


def _above_floor(cosine: float, floor: float) -> float:
    """A cosine above the embedder's similarity floor, as a share of the way from there to 1:
    comparable across embedders (the gate splits on fixed values of it)."""
    return max(0.0, (cosine - floor) / max(1.0 - floor, 1e-6))


def candidates(info: QueryInfo, contexts: Sequence[ScoredChunk], keyword: KeywordIndex,
               tokenize: Callable[[str], list[str]], *,
               similarity: Callable[[Chunk, list[str]], Sequence[float]] | None = None,
               floor: float = 0.0) -> list[Candidate]:
    """Every sentence of ``contexts`` with its features (unscored).

    ``similarity(chunk, sentences)`` gives the embedding model's question–sentence cosines
    (read from the vectors stored at ingest): a meaning signal that does not need the
    question to repeat the report's words (``sent_sim_spread``). For a question in another
    language than the reports (an English question shares no jieba terms with Chinese text)
    it also stands in for the lexical covers. ``floor`` is the embedder's similarity floor
    (:func:`assistant.embedding.similarity_floor`); ``dense`` is the retrieval cosine above it,
    ``sent_dense`` the sentence's own. The gate reads both: with each sentence embedded under
    its heading, how close the best sentence comes to the question says whether the report
    states what is asked (in passage-grouped CV on CMRC tuning questions and leave one report
    out, refusal accuracy rose at the same false refusals; see the README)."""
    weights = term_weights(question_terms(info, tokenize), keyword)
    keys = key_terms(weights)
    # Question terms no report uses at all (a name the index has never seen) say the
    # reports cannot be about what is asked; the rarest known term should be in the chunk.
    total = sum(weights.values()) or 1.0
    name_like = {t for t in weights if is_name_like(t)}
    unknown_mass = sum(w for t, w in weights.items() if t not in keyword.idf and t in name_like) / total
    known = [t for t in weights if t in keyword.idf and len(t) > 1]
    rarest = max(known, key=lambda t: keyword.idf[t]) if known else None
    # What the question is about, by name: its two rarest words (one the reports never use
    # ranks first), which an answering passage states verbatim.
    names = [normalize(t) for t in sorted((t for t in weights if len(t) > 1),
                                          key=lambda t: -keyword.idf.get(t, 1e9))[:2]]
    grams = {t: _bigrams(t) for t in weights}
    q_norm = normalize(info.question)
    q_terms = set(tokenize(info.question))
    shape = QuestionShape.of(info)
    # The question's subject: its first content words, which a sentence stating the answer
    # often opens with (罗店镇是…, 家庭医生签约率达到…).
    subject = [normalize(t) for t in list(weights)[:2] if len(t) > 1]
    out: list[Candidate] = []
    top_score = max((sc.score for sc in contexts), default=1.0) or 1.0
    # How far each document's best retrieval cosine leads the best of every other document
    # (a query-performance signal: the report that states the answer stands out; when it is
    # missing, siblings about neighbouring things tie). With no other document retrieved the
    # competitor is the embedder's floor.
    dense_of = [_above_floor(sc.dense_score, floor) if sc.dense_score is not None else 0.0 for sc in contexts]
    doc_best: dict[str, float] = {}
    for sc, d in zip(contexts, dense_of, strict=True):
        doc_best[sc.chunk.doc_id] = max(doc_best.get(sc.chunk.doc_id, 0.0), d)
    lead = {doc: v - max((w for o, w in doc_best.items() if o != doc), default=0.0) for doc, v in doc_best.items()}
    split = [_sentences(sc.chunk.chunk_id, sc.chunk.text, tokenize) for sc in contexts]
    sims = [list(similarity(sc.chunk, sp[1])) if similarity is not None else [0.0] * len(sp[1])
            for sc, sp in zip(contexts, split, strict=True)]
    flat = [x for row in sims for x in row]  # one per candidate, in the order they are made
    spread = _spread(flat)
    for rank, (sc, (spans, texts, norms, toks), ch_sims) in enumerate(zip(contexts, split, sims, strict=True)):
        ch = sc.chunk
        term_sets = [set(t) for t in toks]
        # How rare each question term is among this chunk's sentences (the passage's topic,
        # repeated everywhere, does not pick the answering sentence).
        n = len(texts)
        local = {t: math.log(1 + n / (1 + sum(any(g in s for g in grams[t]) for s in norms))) / math.log(1 + n)
                 if n > 1 else 1.0 for t in weights}
        heading_terms = set(_term_set(tokenize, " ".join(ch.section_path)))
        head_cover = cover(heading_terms, weights)
        # Does the chunk as a whole speak of what is asked (a passage about another topic
        # that happens to share a word does not)?
        whole = normalize(f"{ch.title} {' '.join(ch.section_path)} {ch.text}")
        chunk_cov = cover(set().union(*term_sets, heading_terms, _term_set(tokenize, ch.title)), weights)
        chunk_char = _char_cover(whole, grams, weights)
        chunk_key = sum(any(g in whole for g in grams[k]) for k in keys) / len(keys) if keys else 0.0
        dense = dense_of[rank]
        rarest_in = float(rarest is not None and normalize(rarest) in whole)
        names_in = sum(n in whole for n in names) / len(names) if names else 0.0
        lw = {t: weights[t] * local[t] for t in weights}
        qb_chunk = _gram_share(shape.bigrams, whole)
        labels = {normalize(x) for x in (ch.title, *ch.section_path) if x}
        # What the question is about comes first (朱祐杬的母亲…): does this passage name it,
        # and every other thing the question names?
        named = [longest_common((p,), whole) / len(p) for p in shape.pieces]
        subject_in, piece_min = (named[0], min(named)) if named else (0.0, 0.0)
        names_missing = sum(n not in whole for n in shape.names) / len(shape.names) if shape.names else 0.0
        ids_missing = sum(x not in whole for x in shape.ids) / len(shape.ids) if shape.ids else 0.0
        # The report's title names what it is about (黄鞍鹦嘴鱼): the question's proper names
        # it holds pick the report, not the sentence. What is left is what the question asks
        # about it (食用价值), which the answering sentence states though it may not repeat
        # the name (本鱼…). Ordinary title words stay (卫生健康 in a health report's title is
        # also what its questions ask about): leaving them out too lifted CMRC tuning top-1
        # to 0.866 instead of 0.844 but cost the seed reports (leave one out).
        title = normalize(ch.title)
        focus = {t: w for t, w in weights.items() if not (t in name_like and all(g in title for g in grams[t]))}
        prev_terms: set[str] = set()
        prev_norm = ""
        for (a, b), s_text, s_norm, s_toks, s_terms, sim in zip(spans, texts, norms, toks, term_sets, ch_sims,
                                                                strict=True):
            tc = cover(s_terms, weights)
            tc_ctx = 0.85 * cover(s_terms | prev_terms, weights)
            lc = cover(s_terms, lw)
            cc = _char_cover(s_norm, grams, weights)
            ctx_norm = prev_norm + s_norm
            cc_ctx = 0.85 * _char_cover(ctx_norm, grams, weights)
            lcc = _char_cover(s_norm, grams, weights, local)
            names_s = sum(n in ctx_norm for n in names) / len(names) if names else 0.0
            qb, qb_ctx = _gram_share(shape.bigrams, s_norm), 0.85 * _gram_share(shape.bigrams, ctx_norm)
            shape_feats = (qb, qb_ctx, qb_chunk, _align(shape.segments, s_norm, 12),
                           _align(shape.left, s_norm, 8), _align(shape.right, s_norm, 8),
                           float(any(t in s_norm[:12] for t in subject)), subject_in, piece_min,
                           # the report's title or a heading names a topic; it states nothing
                           float(s_norm in labels or (len(s_norm) <= 30 and s_norm[-1:] not in "。！？；!?;."
                                                      and any(s_norm in x or x in s_norm for x in labels))),
                           names_missing,
                           # a list question (哪些, 分别是什么) is answered by a sentence that enumerates
                           list_items(s_norm) if info.wants_list else 0.0, ids_missing)
            prev_terms, prev_norm = s_terms, s_norm
            has_num = bool(numbers_to_check(s_text)) or (info.wants_rank and bool(_RANK_RE.search(s_text)))
            key_hit = states_figure(s_text, weights, keys, tokenize, info.wants_rank, grams) \
                if info.wants_figure and has_num else bool(keys & s_terms)
            typed = info.answer_type is not None
            has_type = has_answer_type(info.answer_type, s_text, s_toks, info.units)
            content = [t for t in s_terms if len(t) > 1 or t.isdigit()]
            novelty = sum(t not in q_terms for t in content) / len(content) if content else 0.0
            restates = float(bool(s_norm) and len(s_norm) <= 40 and s_norm.rstrip("。.!！?？") in q_norm)
            feats = (
                tc, tc_ctx, lc, cc, cc_ctx, lcc, head_cover, 1.0 / (1 + rank), sc.score / top_score,
                float(typed and has_type), float(typed and not has_type),
                float(info.wants_figure and has_num and key_hit), novelty, restates,
                math.log(1 + len(s_text)) / 5.0,
                float(info.wants_department and "责任" in s_text and rank <= 1),
                chunk_cov, chunk_char, chunk_key, dense, unknown_mass, rarest_in, names_in, names_s,
                float(bool(ch.section_path)), *shape_feats, spread(sim),
                _char_cover(s_norm, grams, focus) if focus else 0.0,
                _above_floor(sim, floor) if similarity is not None else 0.0,  # sent_dense
                lead[ch.doc_id],
            )
            out.append(Candidate(rank, sc, ch.start + a, ch.start + b, s_text, feats, has_num, key_hit))
    if similarity is not None and info.foreign and not info.bridge and out:
        out = _with_similarity(out, flat)
    return out


_LEXICAL = ("term_cover", "term_cover_ctx", "local_cover", "char_cover", "char_cover_ctx", "local_char_cover",
            "chunk_cover", "chunk_char_cover", "chunk_key", "names_in_chunk", "names_in_sentence",
            "q_bigram", "q_bigram_ctx", "q_bigram_chunk", "align", "align_left", "align_right", "subject_chunk",
            "piece_min", "focus_char_cover")


def _with_similarity(cands: list[Candidate], sims: Sequence[float], n_chunks: int = 3) -> list[Candidate]:
    """Rescaled similarity (``sims``: each candidate's cosine) in place of the lexical covers
    (the best of the first ``n_chunks`` sections' sentences counts as a full match)."""
    from dataclasses import replace

    hi = max((s for c, s in zip(cands, sims, strict=True) if c.ctx_rank < n_chunks), default=0.0)
    idx = [FEATURES.index(f) for f in _LEXICAL]
    out = []
    for c, s in zip(cands, sims, strict=True):
        sim = max(0.0, 1.0 - (hi - s) * _SIM_SCALE) if c.ctx_rank < n_chunks else 0.0
        f = list(c.features)
        for i in idx:
            f[i] = max(f[i], sim)
        f[FEATURES.index("unknown_mass")] = 0.0  # English words are unknown to Chinese reports, not to the topic
        out.append(replace(c, features=tuple(f)))
    return out


#: What the gate sees of a candidate, besides its rank score: does the passage speak of
#: what is asked at all (names, cover), and is anything the question names unknown.
GATE_FEATURES: tuple[str, ...] = (
    "rank_logit", "margin", "term_cover_ctx", "chunk_cover", "chunk_char_cover", "chunk_key", "names_in_chunk",
    "names_in_sentence", "unknown_mass", "dense", "type_miss", "type_match", "figure_key", "heading_cover",
    "sectioned", "q_bigram", "q_bigram_chunk", "align", "subject_chunk", "piece_min", "names_missing", "list_items",
    "ids_missing", "sent_dense", "doc_lead",
)
#: Where the gate's signals (after the rank score and margin) sit in a feature row.
GATE_COLUMNS = tuple(FEATURES.index(g) for g in GATE_FEATURES[2:])


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(logits, -30.0, 30.0))))


@dataclass(frozen=True)
class Tree:
    """One regression tree of the boosted gate, as parallel node arrays: node ``k`` sends
    ``x`` left when ``x[feature[k]] <= threshold[k]``, else right; a node whose ``left`` is
    -1 is a leaf, and its ``value`` is added to the gate's log-odds."""

    feature: tuple[int, ...]
    threshold: tuple[float, ...]
    left: tuple[int, ...]
    right: tuple[int, ...]
    value: tuple[float, ...]

    def value_at(self, x: Sequence[float]) -> float:
        k = 0
        while self.left[k] >= 0:
            k = self.left[k] if x[self.feature[k]] <= self.threshold[k] else self.right[k]
        return self.value[k]

    def to_json(self) -> dict[str, list[float] | list[int]]:
        return {"feature": list(self.feature), "threshold": list(self.threshold), "left": list(self.left),
                "right": list(self.right), "value": list(self.value)}

    @classmethod
    def from_json(cls, data: dict[str, Any], n_inputs: int) -> Tree:
        t = cls(tuple(int(v) for v in data["feature"]), tuple(float(v) for v in data["threshold"]),
                tuple(int(v) for v in data["left"]), tuple(int(v) for v in data["right"]),
                tuple(float(v) for v in data["value"]))
        n = len(t.left)
        if not n or {len(t.feature), len(t.threshold), len(t.right), len(t.value)} != {n}:
            raise ValueError("node arrays of different lengths")
        for k in range(n):  # children lie after their parent, so walking a tree always ends
            if t.left[k] >= 0 and not (k < t.left[k] < n and k < t.right[k] < n and 0 <= t.feature[k] < n_inputs):
                raise ValueError(f"node {k} points outside the tree or the gate's inputs")
        return t


@dataclass(frozen=True)
class SentenceModel:
    """Two fitted parts (see :mod:`assistant.evals.calibrate`):

    * a **ranker**: a linear score over :data:`FEATURES`, fitted listwise (softmax over a
      question's candidates), which orders the sentences;
    * a **gate** over :data:`GATE_FEATURES` (the ranker's score, its margin over the
      runner-up, and question-level signals) giving the probability that the sentence
      answers at all; below ``threshold`` the answerer refuses. The gate is boosted
      regression ``trees`` (their leaves summed onto ``gate_bias`` in log-odds), or a linear
      ``gate`` when no trees are given: which signals matter depends on others (a missing
      name weighs little when the chunk's title already holds it), which one linear model
      cannot express.

    ``second``: a runner-up whose softmax weight is at least this share of the best one's is
    quoted too (an uncertain pick quotes both).
    """

    weights: tuple[float, ...]
    bias: float
    threshold: float
    second: float = 0.85
    gate: tuple[float, ...] = ()
    gate_bias: float = 0.0
    meta: tuple[tuple[str, Any], ...] = ()
    trees: tuple[Tree, ...] = ()

    def rank(self, features: Sequence[float]) -> float:
        return self.bias + sum(w * f for w, f in zip(self.weights, features, strict=True))

    @cached_property
    def _forest(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The trees' node arrays stacked (trees × nodes, padded with leaves) for evaluating
        every tree on every candidate at once."""
        n = max((len(t.left) for t in self.trees), default=1)

        def pad(attr: str, fill: float, dtype: Any) -> np.ndarray:
            return np.array([[*getattr(t, attr), *[fill] * (n - len(t.left))] for t in self.trees] or [[fill] * n],
                            dtype=dtype)

        return (pad("feature", 0, np.intp), pad("threshold", 0.0, np.float64), pad("left", -1, np.intp),
                pad("right", -1, np.intp), pad("value", 0.0, np.float64))

    def gate_logits(self, x: np.ndarray) -> np.ndarray:
        """The gate's log-odds for each row of inputs ``x`` (in :data:`GATE_FEATURES` order)."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, len(GATE_FEATURES))
        if not self.trees:
            return np.asarray(self.gate_bias + x @ np.asarray(self.gate, dtype=np.float64))
        feature, threshold, left, right, value = self._forest
        t, rows = np.arange(len(feature))[None, :], np.arange(len(x))[:, None]
        node = np.zeros((len(x), len(feature)), dtype=np.intp)
        for _ in range(feature.shape[1]):  # each step goes one level down; a tree is never deeper than its nodes
            nxt = left[t, node]
            inner = nxt >= 0
            if not inner.any():
                break
            go_left = x[rows, feature[t, node]] <= threshold[t, node]
            node = np.where(inner, np.where(go_left, nxt, right[t, node]), node)
        return np.asarray(self.gate_bias + value[t, node].sum(axis=1))

    def gate_probs(self, x: np.ndarray) -> np.ndarray:
        """The gate's probability that each row of inputs ``x`` should be answered."""
        return _sigmoid(self.gate_logits(x))

    def answers_all(self, zs: Sequence[float], margins: Sequence[float], features: np.ndarray) -> np.ndarray:
        """Probability that each candidate (rank score, margin, feature row) answers the question."""
        zs_ = np.asarray(zs, dtype=np.float64)
        if not (self.gate or self.trees):
            return _sigmoid(zs_)
        feats = np.asarray(features, dtype=np.float64).reshape(len(zs_), len(FEATURES))
        margins_ = np.asarray(margins, dtype=np.float64)
        return self.gate_probs(np.column_stack([zs_, margins_, feats[:, list(GATE_COLUMNS)]]))

    def answers(self, z: float, margin: float, features: Sequence[float]) -> float:
        """Probability that a candidate with rank score ``z`` answers the question."""
        return float(self.answers_all([z], [margin], np.asarray([features]))[0])

    def to_json(self) -> dict[str, Any]:
        return {"features": list(FEATURES), "weights": list(self.weights), "bias": self.bias,
                "gate_features": list(GATE_FEATURES), "gate": list(self.gate), "gate_bias": self.gate_bias,
                "gate_trees": [t.to_json() for t in self.trees],
                "threshold": self.threshold, "second": self.second, "meta": dict(self.meta)}

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "sentence model") -> SentenceModel:
        from .errors import ConfigError

        if list(data.get("features", [])) != list(FEATURES) or \
                ((data.get("gate") or data.get("gate_trees"))
                 and list(data.get("gate_features", [])) != list(GATE_FEATURES)):
            raise ConfigError(f"{where} was fitted on other features than this version computes.",
                              "Refit it: python -m assistant.evals.calibrate.")
        try:
            trees = tuple(Tree.from_json(t, len(GATE_FEATURES)) for t in data.get("gate_trees", []))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where} holds a malformed gate tree ({exc}).",
                              "Refit it: python -m assistant.evals.calibrate.") from None
        return cls(tuple(float(w) for w in data["weights"]), float(data["bias"]), float(data["threshold"]),
                   float(data.get("second", 0.85)), tuple(float(w) for w in data.get("gate", [])),
                   float(data.get("gate_bias", 0.0)), tuple(sorted(dict(data.get("meta", {})).items())), trees)


def load_model(path: str | Path) -> SentenceModel:
    """A sentence model file (``ANSWER__MODEL_PATH``); :class:`ConfigError` naming it if unreadable."""
    from .errors import ConfigError

    p = Path(path).expanduser()
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Cannot read the sentence model {p}: {type(exc).__name__}.",
                          "Point ANSWER__MODEL_PATH at a file written by `python -m assistant.evals.calibrate`, "
                          "or unset it to use the packaged model.") from None
    return SentenceModel.from_json(data, str(p))


@lru_cache(maxsize=1)
def default_model() -> SentenceModel:
    """The packaged model (``assistant/data/sentence_model.json``)."""
    from importlib.resources import files

    return load_model(Path(str(files("assistant").joinpath("data", "sentence_model.json"))))


def score(cands: Sequence[Candidate], model: SentenceModel,
          eligible: Callable[[Candidate], bool] | None = None) -> list[Candidate]:
    """Rank scores and answer probabilities, best first. The margin the gate reads is taken over
    the ``eligible`` candidates only (those that could answer at all), as in fitting
    (:mod:`assistant.evals.calibrate` fits the gate on each question's best eligible sentence)."""
    from dataclasses import replace

    if not cands:
        return []
    zs = [model.rank(c.features) for c in cands]
    order = sorted(range(len(cands)), key=lambda i: -zs[i])
    ranked = [i for i in order if eligible is None or eligible(cands[i])] or order
    place = {i: k for k, i in enumerate(ranked)}
    margins = []
    for i in order:
        pos = place.get(i, -1)
        other = zs[ranked[1]] if pos == 0 and len(ranked) > 1 else zs[ranked[0]] if pos else zs[i] - 5.0
        margins.append(zs[i] - other)
    probs = model.answers_all([zs[i] for i in order], margins, np.array([cands[i].features for i in order]))
    return [replace(cands[i], rank_score=zs[i], score=float(p)) for i, p in zip(order, probs, strict=True)]


__all__ = ["FEATURES", "GATE_COLUMNS", "GATE_FEATURES", "Candidate", "SentenceModel", "Tree", "candidates", "cover",
           "default_model", "has_answer_type", "key_terms", "list_items", "load_model", "question_terms", "score",
           "states_figure", "term_weights"]
