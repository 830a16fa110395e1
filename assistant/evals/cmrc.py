"""CMRC 2018 (dev) as an out-of-genre benchmark: paraphrased questions over Wikipedia passages.

A fixed 10% of the passages is left out of the index; their questions must be refused.
Ours is asked through :meth:`Assistant.ask` over its own cached index (never the user's);
a naive anchor (BM25 over whole passages, then the sentence with the largest idf-weighted
question-term overlap) runs on the same questions.  The data is read from a path, never copied
into the project (CC BY-SA 4.0; see the README beside it).

    python -m assistant.evals.cmrc --data /path/cmrc2018_dev.json --n 1200 --out /tmp/cmrc
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import statistics
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import AssistantError
from assistant.ingest import NullProgress

if TYPE_CHECKING:
    from assistant.config import Settings
    from assistant.embedding import Embedder
    from assistant.facade import Assistant
    from assistant.types import Answer

Progress = Callable[[int, int, str], None]  # progress(done, total, label), as in the harness
THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)
TARGET_REFUSAL_ACCURACY = 0.85
_MARKER_RE = re.compile(r"\[\d+(?:\s*[,，、\-–]\s*\d+)*\]")
_SENT_RE = re.compile(r"[^。！？；]+[。！？；]*")


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answers: tuple[str, ...]


@dataclass(frozen=True)
class Passage:
    id: str
    title: str
    context: str
    questions: tuple[Question, ...]


@dataclass(frozen=True)
class Item:
    """A sampled question with its passage; ``answerable`` is False when that passage is withheld."""

    question: Question
    passage_id: str
    answerable: bool


@dataclass(frozen=True)
class ItemResult:
    """Ours and the anchor on one question (hit ranks are 1-based; None: not in the contexts)."""

    item: Item
    answer: str
    refused: bool
    contains_gold: bool
    hit_rank: int | None
    chars: int
    seconds: float
    naive_answer: str
    naive_contains_gold: bool
    naive_hit_rank: int | None
    naive_share: float
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        q = self.item.question
        return {"id": q.id, "passage_id": self.item.passage_id, "question": q.question,
                "answerable": self.item.answerable, "gold": list(q.answers),
                **{k: v for k, v in vars(self).items() if k != "item"}}


@dataclass(frozen=True)
class CmrcRun:
    """Everything one CMRC run produced: per-item results, our metrics, the anchor's and its grid."""

    items: tuple[ItemResult, ...]
    metrics: dict[str, float]
    naive: dict[str, float]
    grid: tuple[dict[str, float], ...]
    chosen: dict[str, float] | None
    config: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @cached_property
    def ci(self) -> dict[str, tuple[float, float]]:
        """Our figures' 95% intervals (:func:`intervals`), computed once for every view of the run."""
        return intervals(self.items)



def load_cmrc(path: str | Path) -> list[Passage]:
    """Read a SQuAD-style CMRC file: one :class:`Passage` per paragraph, in file order."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    out: list[Passage] = []
    for article in data["data"]:
        paragraphs = article["paragraphs"]
        for i, para in enumerate(paragraphs):
            pid = para.get("id") or (article["id"] if len(paragraphs) == 1 else f"{article['id']}_{i}")
            qs = tuple(Question(qa["id"], qa["question"], tuple(dict.fromkeys(a["text"] for a in qa["answers"])))
                       for qa in para["qas"])
            out.append(Passage(str(pid), article.get("title", ""), para["context"], qs))
    return out


def split(passages: Sequence[Passage], withheld: float = 0.10,
          seed: int = 42) -> tuple[list[Passage], list[Passage]]:
    """``(indexed, withheld)``: a fixed ``withheld`` share of passages (``random.Random(seed)``)
    is left out of the index; both lists keep the input order."""
    if not 0 <= withheld < 1:
        raise ValueError(f"withheld must be in [0, 1), got {withheld}")
    n = round(len(passages) * withheld)
    out = set(random.Random(seed).sample(range(len(passages)), n))
    return ([p for i, p in enumerate(passages) if i not in out], [p for i, p in enumerate(passages) if i in out])


def sample_questions(passages: Sequence[Passage], withheld_ids: set[str] | Sequence[str], n: int = 1200,
                     seed: int = 42) -> list[Item]:
    """A fixed sample of ``n`` questions, stratified so answerable and withheld ones keep their
    natural proportion, in a seeded shuffled order."""
    held = set(withheld_ids)
    pool = [Item(q, p.id, p.id not in held) for p in passages for q in p.questions]
    if not 0 < n <= len(pool):
        raise ValueError(f"n must be in 1..{len(pool)}, got {n}")
    rng = random.Random(seed)
    no = [it for it in pool if not it.answerable]
    n_no = round(n * len(no) / len(pool))
    picked = rng.sample(no, n_no) + rng.sample([it for it in pool if it.answerable], n - n_no)
    rng.shuffle(picked)
    return picked


def file_stem(passage_id: str) -> str:
    """The corpus file name (without .txt) of a passage id."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", passage_id)


def write_corpus(passages: Sequence[Passage], dir: str | Path) -> list[Path]:
    """One UTF-8 ``<id>.txt`` per passage (title, newline, context); files already holding the
    same text are left untouched, so re-runs change nothing."""
    Path(dir).mkdir(parents=True, exist_ok=True)
    paths = {Path(dir) / f"{file_stem(p.id)}.txt": f"{p.title}\n{p.context}\n" for p in passages}
    if len(paths) < len(passages):
        raise ValueError("two passage ids map to the same file name")
    for path, text in paths.items():
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    return list(paths)


class _IngestBar(NullProgress):
    """Ingest progress as ``progress(files_done, files_total, "index")``."""

    def __init__(self, progress: Progress) -> None:
        self.progress, self.total, self.done = progress, 0, 0

    def files(self, total: int) -> None:
        self.total = total
        self.progress(0, total, "index")

    def file_done(self, path: str, status: Any) -> None:
        self.done += 1
        self.progress(self.done, self.total, "index")


def cmrc_assistant(indexed: Sequence[Passage], *, settings: Settings | None = None,
                   embedder: Embedder | None = None, cache_root: str | Path | None = None,
                   progress: Progress | None = None) -> Assistant:
    """An Assistant over the benchmark's own index in ``<cache>/cmrc2018-<hash>`` (hash of the
    passage ids and embedding model), ingested incrementally so re-runs do not re-embed.
    Without ``settings``: defaults (no ``.env``) with the offline extractive answerer."""
    import platformdirs

    from assistant.config import Settings
    from assistant.facade import Assistant

    base = settings or Settings(_env_file=None)  # type: ignore[call-arg]
    model_id = embedder.model_id if embedder is not None else base.embedding.model_id
    key = hashlib.sha256(("\n".join(sorted(p.id for p in indexed)) + "|" + model_id).encode()).hexdigest()[:12]
    root = Path(cache_root or platformdirs.user_cache_dir("assistant")) / f"cmrc2018-{key}"
    data = base.model_dump()
    data["index"] = {**data["index"], "data_dir": root, "chroma_host": None, "collection": "cmrc2018"}
    if settings is None:
        data["llm"] = {**data["llm"], "provider": "extractive"}
    assistant = Assistant(Settings.model_validate(data), embedder=embedder)
    write_corpus(indexed, root / "corpus")
    report = assistant.ingest([root / "corpus"], prune=True, progress=_IngestBar(progress) if progress else None)
    failed = [r for r in report.results if r.status == "failed"]
    if failed:
        raise AssistantError(f"{len(failed)} CMRC passages failed to index, e.g. {failed[0].error}",
                             f"Delete {root} and run again.")
    return assistant



def normalize_answer(text: str) -> str:
    """NFKC, citation markers like ``[1]`` removed, whitespace removed, case folded."""
    t = _MARKER_RE.sub("", unicodedata.normalize("NFKC", text))
    return re.sub(r"\s+", "", t).casefold()


def contains_gold(answer: str, golds: Sequence[str]) -> bool:
    """Whether the normalised answer contains any normalised gold span."""
    a = normalize_answer(answer)
    return any(g and g in a for g in (normalize_answer(x) for x in golds))


def answer_chars(text: str) -> int:
    return len(_MARKER_RE.sub("", text).strip())


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def _retrieval(ranks: Sequence[int | None]) -> dict[str, float]:
    n = max(len(ranks), 1)
    return {"hit@1": sum(r == 1 for r in ranks if r) / n, "hit@5": sum(r <= 5 for r in ranks if r) / n,
            "mrr": sum(1 / r for r in ranks if r) / n}


def _refusals(answerable: Sequence[bool], refused: Sequence[bool]) -> dict[str, float]:
    yes = [r for a, r in zip(answerable, refused, strict=True) if a]
    no = [r for a, r in zip(answerable, refused, strict=True) if not a]
    return {"false_refusal_rate": sum(yes) / max(len(yes), 1), "refusal_accuracy": sum(no) / max(len(no), 1)}



def naive_terms(text: str) -> list[str]:
    """jieba search-mode terms, NFKC and lower-cased, punctuation and whitespace dropped."""
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    words = jieba.lcut_for_search(unicodedata.normalize("NFKC", text).lower())
    return [w.strip() for w in words if any(ch.isalnum() for ch in w)]


@dataclass(frozen=True)
class NaiveAnswer:
    passage_ids: tuple[str, ...]  # BM25 ranking, best first (top 5)
    sentence: str
    share: float  # idf mass of question terms in the sentence / idf mass of all question terms


class NaiveAnchor:
    """BM25 (bm25s) over jieba terms of whole passages; answer = the top passage's sentence
    (split on 。！？；) with the largest idf-weighted overlap of question terms."""

    def __init__(self, passages: Sequence[Passage]) -> None:
        import logging
        import math

        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)
        self.passages = list(passages)
        toks = [naive_terms(f"{p.title}\n{p.context}") or ["\u2205"] for p in self.passages]
        self._bm25 = bm25s.BM25()
        self._bm25.index(toks, show_progress=False)
        df = Counter(w for t in toks for w in set(t))
        n = len(toks)
        self.idf = {w: math.log(1 + (n - d + 0.5) / (d + 0.5)) for w, d in df.items()}
        self.unseen_idf = math.log(1 + (n + 0.5) / 0.5)

    def answer(self, question: str) -> NaiveAnswer:
        import numpy as np

        q = list(dict.fromkeys(naive_terms(question)))
        known = [w for w in q if w in self.idf]
        scores = np.asarray(self._bm25.get_scores(known) if known else np.zeros(len(self.passages)))
        order = [int(i) for i in np.argsort(-scores, kind="stable")[:5] if scores[i] > 0]
        if not order:
            return NaiveAnswer((), "", 0.0)
        weight = {w: self.idf.get(w, self.unseen_idf) for w in q}
        total = sum(weight.values())
        best, best_mass = "", -1.0
        for s in (m.group(0).strip() for m in _SENT_RE.finditer(self.passages[order[0]].context)):
            if s:
                present = set(naive_terms(s))
                mass = sum(v for w, v in weight.items() if w in present)
                if mass > best_mass:
                    best, best_mass = s, mass
        return NaiveAnswer(tuple(self.passages[i].id for i in order), best, max(best_mass, 0.0) / total)



def _hit_rank(answer: Answer, passage_id: str, stems: dict[str, str], docs: dict[str, str]) -> int | None:
    for i, sc in enumerate(answer.contexts, start=1):
        c = sc.chunk
        pid = stems.get(Path(c.source_path).stem) if c.source_path else docs.get(c.doc_id)
        if pid == passage_id:
            return i
    return None


def run_cmrc(assistant: Assistant, questions: Sequence[Item], *, indexed: Sequence[Passage] | None = None,
             thresholds: Sequence[float] = THRESHOLDS, progress: Progress | None = None) -> CmrcRun:
    """Ask every question through ``assistant.ask`` and score it; with ``indexed`` (the passages
    in the index) also run the naive anchor and its refusal-threshold grid."""
    if not questions:
        raise ValueError("no questions to evaluate")
    t0 = time.perf_counter()
    indexed = list(indexed or [])
    stems = {file_stem(p.id): p.id for p in indexed}
    docs = {d.doc_id: stems.get(Path(d.path).stem, "") for d in assistant.documents()}
    assistant.warm_up()
    ours: list[tuple[str, bool, bool, int | None, float, str | None]] = []
    for i, it in enumerate(questions, start=1):
        t, error = time.perf_counter(), None
        try:
            ans = assistant.ask(it.question.question)
            row = (ans.text, ans.refused, contains_gold(ans.text, it.question.answers),
                   _hit_rank(ans, it.passage_id, stems, docs))
        except AssistantError as exc:  # one failure must not sink the run; it counts as a miss
            row, error = ("", False, False, None), str(exc)
        ours.append((*row, time.perf_counter() - t, error))
        if progress:
            progress(i, len(questions), "ours")
    anchor = NaiveAnchor(indexed) if indexed else None
    items: list[ItemResult] = []
    for i, (it, (text, refused, hit, rank, secs, err)) in enumerate(zip(questions, ours, strict=True), start=1):
        nv = anchor.answer(it.question.question) if anchor else NaiveAnswer((), "", 0.0)
        ids = nv.passage_ids
        items.append(ItemResult(it, text, refused, hit, rank, answer_chars(text), secs, nv.sentence,
                                bool(nv.sentence) and contains_gold(nv.sentence, it.question.answers),
                                ids.index(it.passage_id) + 1 if it.passage_id in ids else None, nv.share, err))
        if progress:
            progress(i, len(questions), "naive")
    metrics, naive_m, grid = _metrics(items, thresholds)
    s = assistant.settings
    config = {"mode": assistant.mode, "embedding_model": s.embedding.model_id, "index": str(s.index.chroma_path),
              "n_items": len(items), "n_answerable": sum(it.answerable for it in questions),
              "n_indexed_passages": len(indexed), "top_k": s.retrieval.top_k, "naive": anchor is not None}
    if anchor is None:
        naive_m, grid = {}, []
    return CmrcRun(tuple(items), metrics, naive_m, tuple(grid), choose_threshold(grid), config,
                   time.perf_counter() - t0)


def choose_threshold(grid: Sequence[dict[str, float]]) -> dict[str, float] | None:
    """The grid row with refusal accuracy >= 0.85 and the fewest false refusals (None if none)."""
    ok = [g for g in grid if g["refusal_accuracy"] >= TARGET_REFUSAL_ACCURACY]
    return min(ok, key=lambda g: (g["false_refusal_rate"], -g["refusal_accuracy"])) if ok else None


#: The figures given with a 95% interval (:func:`intervals`).
INTERVAL_KEYS = ("contains_gold", "false_refusal_rate", "refusal_accuracy")


N_BOOT = 2000  # bootstrap draws


def intervals(items: Sequence[ItemResult], *, n_boot: int = N_BOOT, seed: int = 0,
              level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals for :data:`INTERVAL_KEYS`, resampling *passages*: the
    questions on one passage share its wording and mostly its fate (a withheld passage's
    siblings mislead all its questions alike), so they are drawn together. Resampling single
    questions would give too narrow an interval. Deterministic for a ``seed``."""
    import numpy as np

    groups: dict[str, list[int]] = {}
    for r in items:  # per passage: answerable, answered with gold, answerable refused, withheld, withheld refused
        g = groups.setdefault(r.item.passage_id, [0, 0, 0, 0, 0])
        if r.item.answerable:
            g[0] += 1
            g[1] += int(r.contains_gold and not r.refused)
            g[2] += int(r.refused)
        else:
            g[3] += 1
            g[4] += int(r.refused)
    if not groups:
        return {}
    counts = np.array(list(groups.values()), dtype=np.float64)
    draws = np.random.default_rng(seed).integers(0, len(counts), size=(n_boot, len(counts)))
    totals = counts[draws].sum(axis=1)  # (n_boot, 5)
    with np.errstate(invalid="ignore", divide="ignore"):
        stats = {"contains_gold": totals[:, 1] / totals[:, 0], "false_refusal_rate": totals[:, 2] / totals[:, 0],
                 "refusal_accuracy": totals[:, 4] / totals[:, 3]}
    tail = (1.0 - level) / 2 * 100
    out = {}
    for k in INTERVAL_KEYS:
        v = stats[k][np.isfinite(stats[k])]
        if len(v):
            out[k] = (float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail)))
    return out


def _metrics(items: Sequence[ItemResult],
             thresholds: Sequence[float]) -> tuple[dict[str, float], dict[str, float], list[dict[str, float]]]:
    ans = [r for r in items if r.item.answerable]
    flags = [r.item.answerable for r in items]
    secs = [r.seconds for r in items]
    ours = {"n_items": float(len(items)), "n_answerable": float(len(ans)),
            "contains_gold": sum(r.contains_gold and not r.refused for r in ans) / max(len(ans), 1),
            **_refusals(flags, [r.refused for r in items]),
            "answer_chars_p50": float(statistics.median([r.chars for r in ans if not r.refused] or [0])),
            **_retrieval([r.hit_rank for r in ans]),
            "latency_p50": _pct(secs, 0.5), "latency_p95": _pct(secs, 0.95),
            "error_rate": sum(r.error is not None for r in items) / len(items)}
    naive = {"contains_gold": sum(r.naive_contains_gold for r in ans) / max(len(ans), 1),
             "answer_chars_p50": float(statistics.median([len(r.naive_answer) for r in ans] or [0])),
             **_retrieval([r.naive_hit_rank for r in ans])}
    grid = []
    for th in thresholds:
        refused = [r.naive_share < th for r in items]
        gold = sum(r.naive_contains_gold and not rf for r, rf in zip(items, refused, strict=True)
                   if r.item.answerable)
        grid.append({"threshold": th, **_refusals(flags, refused), "contains_gold": gold / max(len(ans), 1)})
    return ours, naive, grid


_ROWS = ("contains_gold", "false_refusal_rate", "refusal_accuracy", "answer_chars_p50", "hit@1", "hit@5", "mrr",
         "latency_p50", "latency_p95")


def _f(v: float | None, key: str = "") -> str:
    if v is None:
        return "–"
    if key.startswith("latency"):
        return f"{v * 1000:.0f} ms"
    return f"{v:.0f}" if key.startswith(("answer_chars", "n_")) else f"{v:.3f}"


def summary_rows(run: CmrcRun) -> list[tuple[str, str, str]]:
    """(metric, ours, naive anchor) as display strings; the anchor's refusal figures are at the
    chosen threshold."""
    naive = {**run.naive, **{k: v for k, v in (run.chosen or {}).items() if k.startswith(("false", "refusal"))}}
    return [(k, _f(run.metrics.get(k), k), _f(naive.get(k), k)) for k in _ROWS]


def interval_line(run: CmrcRun) -> str:
    """Our figures with their 95% intervals (bootstrap over passages), as one line of text."""
    ci = run.ci
    parts = [f"{k} {run.metrics[k]:.3f} [{ci[k][0]:.3f}, {ci[k][1]:.3f}]" for k in INTERVAL_KEYS if k in ci]
    return f"95% intervals (bootstrap over passages, {N_BOOT:,} draws): " + "; ".join(parts) + "."


def write_cmrc_report(run: CmrcRun, out_dir: str | Path) -> Path:
    """Write ``metrics.json``, ``summary.md`` and ``items.jsonl`` to ``out_dir/cmrc2018-<timestamp>/``."""
    d = Path(out_dir) / time.strftime("cmrc2018-%Y%m%d-%H%M%S")
    while d.exists():
        d = d.with_name(d.name + "x")
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps(
        {"ours": run.metrics, "ours_95ci": {k: list(v) for k, v in run.ci.items()},
         "naive": run.naive, "naive_threshold_grid": list(run.grid),
         "naive_chosen": run.chosen, "config": run.config, "seconds": round(run.seconds, 1)},
        ensure_ascii=False, indent=2), encoding="utf-8")
    with (d / "items.jsonl").open("w", encoding="utf-8") as fh:
        for r in run.items:
            fh.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
    cfg = run.config
    lines = ["# CMRC 2018 dev (out-of-genre benchmark)", "",
             f"{cfg.get('n_items')} questions ({cfg.get('n_answerable')} answerable; the rest belong to withheld "
             f"passages and should be refused), {cfg.get('n_indexed_passages')} passages indexed; mode "
             f"{cfg.get('mode')}, embedding {cfg.get('embedding_model')}; {run.seconds:.0f} s.", "",
             "contains_gold: answerable questions whose answer contains a gold span (refusals are misses). "
             "Naive anchor: BM25 over whole passages, best idf-overlap sentence of the top passage; its refusal "
             "figures are at the chosen threshold.", "",
             "| metric | ours | naive anchor |", "|---|---:|---:|",
             *[f"| {k} | {a} | {b} |" for k, a, b in summary_rows(run)], "",
             interval_line(run), ""]
    if run.grid:
        ch = run.chosen["threshold"] if run.chosen else None
        lines += ["## Naive anchor: refuse when the best overlap share is below a threshold", "",
                  "| threshold | false refusals | refusal accuracy | contains_gold |", "|---:|---:|---:|---:|",
                  *[f"| {g['threshold']:.2f}{' (chosen)' if g['threshold'] == ch else ''} | "
                    f"{g['false_refusal_rate']:.3f} | {g['refusal_accuracy']:.3f} | {g['contains_gold']:.3f} |"
                    for g in run.grid], ""]
    misses = [r for r in run.items if r.item.answerable and (r.refused or not r.contains_gold)][:20]
    lines += [f"## Failing examples (first {len(misses)} misses)", ""]
    for r in misses:
        where = f"passage at context {r.hit_rank}" if r.hit_rank else "passage not retrieved"
        lines += [f"- **{r.item.question.id}** {r.item.question.question}",
                  f"  - gold: {' / '.join(r.item.question.answers)}",
                  f"  - ours ({where}{', refused' if r.refused else ''}): {' '.join(r.answer.split())[:300]}",
                  f"  - naive: {r.naive_answer[:300]}"]
    (d / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return d


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: index the non-withheld passages (cached), run ours and the anchor, report."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar
    from rich.table import Table

    ap = argparse.ArgumentParser(prog="python -m assistant.evals.cmrc", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="cmrc2018_dev.json (SQuAD style)")
    ap.add_argument("--n", type=int, default=1200, help="questions to sample")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--withheld", type=float, default=0.10, help="share of passages left out of the index")
    ap.add_argument("--out", type=Path, default=Path("evals/reports"), help="folder for the report folder")
    ap.add_argument("--cache-dir", type=Path, default=None, help="root of the benchmark's own index")
    args = ap.parse_args(argv)
    err = Console(stderr=True)
    passages = load_cmrc(args.data)
    indexed, held = split(passages, args.withheld, args.seed)
    items = sample_questions(passages, {p.id for p in held}, args.n, args.seed)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    tasks: dict[str, Any] = {}
    with Bar(*columns, console=err) as bar:
        def progress(done: int, total: int, label: str) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(f"cmrc {label}", total=total)
            bar.update(tasks[label], completed=done)

        try:
            assistant = cmrc_assistant(indexed, cache_root=args.cache_dir, progress=progress)
            run = run_cmrc(assistant, items, indexed=indexed, progress=progress)
        except AssistantError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            return 2
    out = write_cmrc_report(run, args.out)
    table = Table("metric", "ours", "naive anchor", title=f"CMRC 2018 dev, {len(items)} questions")
    for row in summary_rows(run):
        table.add_row(*row)
    th = f"naive refusal threshold {run.chosen['threshold']:.2f}; " if run.chosen else ""
    Console().print(table, interval_line(run), f"{th}{run.seconds:.0f} s; report: {out}", highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
