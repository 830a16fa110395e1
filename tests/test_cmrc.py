"""CMRC 2018 benchmark module, on a tiny invented SQuAD-style file: fast and offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.evals import cmrc
from assistant.evals.cmrc import Item, ItemResult, NaiveAnchor, Passage, Question

try:  # the model-free test embedder (its home moves to assistant.testing)
    from assistant.testing import HashEmbedder as FakeEmbedder
except ImportError:
    from assistant.embedding import FakeEmbedder  # type: ignore[no-redef]

PASSAGES = [
    ("TEST_0", "青石镇",
     "青石镇位于云岭山脉东麓，始建于明朝。镇上最著名的建筑是望江楼。望江楼高三十二米，共有七层。当地居民以种植茶叶为生。",
     [("望江楼共有几层？", ["七层", "七层"]), ("青石镇当地居民以什么为生？", ["种植茶叶"])]),
    ("TEST_1", "蓝鳍灯塔", "蓝鳍灯塔是北海岸最古老的灯塔，由工程师李慕白设计。它的光束可以照射到二十海里以外。",
     [("蓝鳍灯塔是由哪位工程师设计的？", ["李慕白"])]),
    ("TEST_2", "白鹭湖",
     "白鹭湖是一个淡水湖，面积约为四十平方公里。湖中生活着一种罕见的银鳞鱼。每年秋季，成千上万只白鹭在此停留。",
     [("白鹭湖的面积大约是多少？", ["四十平方公里"])]),
    ("TEST_3", "紫藤学院", "紫藤学院以天文学研究闻名，首任院长是陈守仁。学院拥有一座直径两米的望远镜。",
     [("紫藤学院的首任院长是谁？", ["陈守仁"])]),
    ("TEST_4", "铜锣古道", "铜锣古道全长八十七公里，连接山南与山北两个集市。商人多用骡马运送盐和布匹。",
     [("铜锣古道全长多少公里？", ["八十七公里"])]),
    ("TEST_5", "赤焰岛", "赤焰岛是一座活火山岛。岛上唯一的村庄叫做石屋村，村民以捕捞海胆为业。",
     [("赤焰岛上唯一的村庄叫什么名字？", ["石屋村"])]),
]


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    data = {"version": "v1.0", "data": [
        {"id": pid, "title": title, "paragraphs": [{"id": pid, "context": ctx, "qas": [
            {"id": f"{pid}_QUERY_{i}", "question": q,
             "answers": [{"text": a, "answer_start": ctx.index(a)} for a in golds]}
            for i, (q, golds) in enumerate(qs)]}]}
        for pid, title, ctx, qs in PASSAGES]}
    p = tmp_path / "cmrc_tiny.json"
    p.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return p


def _synthetic(n: int, per: int = 3) -> list[Passage]:
    return [Passage(f"P{i}", f"t{i}", f"c{i}", tuple(Question(f"P{i}_Q{j}", f"q{i}-{j}", ("a",))
                                                    for j in range(per))) for i in range(n)]


def test_load_reads_passages_questions_and_distinct_answers(data_file: Path) -> None:
    ps = cmrc.load_cmrc(data_file)
    assert [p.id for p in ps] == [p[0] for p in PASSAGES]
    assert ps[0].title == "青石镇" and ps[0].context.startswith("青石镇位于")
    assert [q.id for q in ps[0].questions] == ["TEST_0_QUERY_0", "TEST_0_QUERY_1"]
    assert ps[0].questions[0].answers == ("七层",)  # duplicates collapse, order kept
    assert sum(len(p.questions) for p in ps) == 7


def test_split_is_deterministic_and_withholds_the_share() -> None:
    ps = _synthetic(100)
    indexed, held = cmrc.split(ps, 0.10, seed=42)
    assert len(held) == 10 and len(indexed) == 90
    assert {p.id for p in indexed} | {p.id for p in held} == {p.id for p in ps}
    assert not {p.id for p in indexed} & {p.id for p in held}
    assert cmrc.split(ps, 0.10, seed=42) == (indexed, held)
    assert cmrc.split(ps, 0.10, seed=7)[1] != held


def test_sample_keeps_the_natural_proportion_and_is_fixed() -> None:
    ps = _synthetic(100)
    _indexed, held = cmrc.split(ps, 0.10, seed=42)
    held_ids = {p.id for p in held}
    sample = cmrc.sample_questions(ps, held_ids, n=200, seed=42)
    assert len(sample) == 200 and len({it.question.id for it in sample}) == 200
    assert sum(not it.answerable for it in sample) == 20  # 30 of 300 questions are withheld
    assert all(it.answerable == (it.passage_id not in held_ids) for it in sample)
    assert cmrc.sample_questions(ps, held_ids, n=200, seed=42) == sample
    assert cmrc.sample_questions(ps, held_ids, n=200, seed=1) != sample
    with pytest.raises(ValueError):
        cmrc.sample_questions(ps, held_ids, n=301)


def test_write_corpus_is_idempotent(data_file: Path, tmp_path: Path) -> None:
    ps = cmrc.load_cmrc(data_file)
    d = tmp_path / "corpus"
    paths = cmrc.write_corpus(ps, d)
    assert sorted(p.name for p in d.iterdir()) == sorted(f"{p[0]}.txt" for p in PASSAGES)
    assert (d / "TEST_1.txt").read_text(encoding="utf-8").splitlines()[:2] == ["蓝鳍灯塔", PASSAGES[1][2]]
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in paths}
    cmrc.write_corpus(ps, d)
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in d.iterdir()} == before
    (d / "TEST_1.txt").write_text("damaged", encoding="utf-8")
    cmrc.write_corpus(ps, d)
    assert (d / "TEST_1.txt").read_bytes() == before["TEST_1.txt"][1]


@pytest.mark.parametrize(("answer", "gold", "expected"), [
    ("由光荣[1]和 ω-force 开发[2]。", "光荣和ω-force", True),   # markers and spaces inside the span
    ("由光荣［１］和ω－ｆｏｒｃｅ开发", "光荣和ω-force", True),  # full-width marker and letters
    ("代号ＡＢＣ　１２３", "abc123", True),
    ("全长八十 七\n公里[3]", "八十七公里", True),
    ("全长八十公里", "八十七公里", False),
    ("[1][2,3]", "1", False),
])
def test_contains_gold_normalisation(answer: str, gold: str, expected: bool) -> None:
    assert cmrc.contains_gold(answer, [gold]) is expected
    assert cmrc.contains_gold(answer, ["不在答案里", gold]) is expected  # any gold answer counts


def test_answer_chars_ignores_markers() -> None:
    assert cmrc.answer_chars("望江楼共有七层。[1]") == 8


def test_naive_anchor_picks_the_answer_sentence(data_file: Path) -> None:
    ps = cmrc.load_cmrc(data_file)
    anchor = NaiveAnchor(ps)
    a = anchor.answer("望江楼共有几层？")
    assert a.passage_ids[0] == "TEST_0"
    assert a.sentence == "望江楼高三十二米，共有七层。"
    assert 0 < a.share <= 1
    b = NaiveAnchor(ps[1:]).answer("望江楼共有几层？")  # its passage is not indexed: unseen terms
    assert b.share < a.share


def _result(answerable: bool, *, hit: bool, refused: bool, rank: int | None, share: float,
            naive_hit: bool = False) -> ItemResult:
    item = Item(Question("q", "问题", ("答案",)), "P", answerable)
    return ItemResult(item, "答案" if hit else "别的", refused, hit, rank, 2, 0.1, "答案" if naive_hit else "别的",
                      naive_hit, rank, share)


def test_metrics_count_refusals_as_misses_and_choose_the_threshold() -> None:
    items = [
        _result(True, hit=True, refused=False, rank=1, share=0.9, naive_hit=True),
        _result(True, hit=True, refused=True, rank=3, share=0.5, naive_hit=True),  # a refusal is a miss
        _result(True, hit=False, refused=False, rank=None, share=0.3),
        _result(True, hit=True, refused=False, rank=2, share=0.6),
        _result(False, hit=False, refused=True, rank=None, share=0.2),
        _result(False, hit=False, refused=False, rank=None, share=0.4),
    ]
    ours, naive, grid = cmrc._metrics(items, (0.25, 0.45, 0.55))
    assert ours["contains_gold"] == 0.5 and ours["false_refusal_rate"] == 0.25
    assert ours["refusal_accuracy"] == 0.5
    assert ours["hit@1"] == 0.25 and ours["hit@5"] == 0.75 and ours["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 2) / 4)
    assert naive["contains_gold"] == 0.5
    by = {g["threshold"]: g for g in grid}
    assert by[0.25]["refusal_accuracy"] == 0.5 and by[0.25]["false_refusal_rate"] == 0.0
    assert by[0.45]["refusal_accuracy"] == 1.0 and by[0.45]["false_refusal_rate"] == 0.25
    assert by[0.55]["false_refusal_rate"] == 0.5 and by[0.55]["contains_gold"] == 0.25
    assert cmrc.choose_threshold(grid) == by[0.45]
    assert cmrc.choose_threshold([{**g, "refusal_accuracy": 0.5} for g in grid]) is None


def test_run_cmrc_end_to_end(data_file: Path, tmp_path: Path) -> None:
    ps = cmrc.load_cmrc(data_file)
    indexed, held = cmrc.split(ps, 0.2, seed=3)
    assert len(held) == 1
    items = cmrc.sample_questions(ps, {p.id for p in held}, n=7, seed=0)
    a = cmrc.cmrc_assistant(indexed, embedder=FakeEmbedder(), cache_root=tmp_path / "cache")
    data_dir = a.settings.index.data_dir
    assert data_dir.parent == tmp_path / "cache" and data_dir.name.startswith("cmrc2018-")
    assert a.settings.llm.provider == "extractive" and len(a.documents()) == len(indexed)
    seen: list[tuple[int, int, str]] = []
    run = cmrc.run_cmrc(a, items, indexed=indexed, progress=lambda d, t, label: seen.append((d, t, label)))
    assert len(run.items) == 7 and run.config["n_answerable"] == 7 - len(held[0].questions)
    assert {label for _d, _t, label in seen} == {"ours", "naive"} and (7, 7, "ours") in seen
    for key in ("contains_gold", "false_refusal_rate", "refusal_accuracy", "answer_chars_p50", "hit@1", "hit@5",
                "mrr", "latency_p50", "latency_p95"):
        assert 0 <= run.metrics[key] <= (1 if "latency" not in key and "chars" not in key else 1e6), key
    assert run.metrics["hit@5"] > 0.5  # distinctive names: BM25 finds their passages
    for r in run.items:  # hit ranks point at the question's own passage, never another one
        stems = [Path(sc.chunk.source_path).stem for sc in a.ask(r.item.question.question).contexts]
        assert r.hit_rank == (stems.index(r.item.passage_id) + 1 if r.item.passage_id in stems else None)
        assert r.item.answerable or r.hit_rank is None
    assert run.naive["hit@1"] == 1.0 and run.naive["contains_gold"] >= 0.8
    assert len(run.grid) == len(cmrc.THRESHOLDS)

    again = FakeEmbedder()  # the same passages and model reuse the cached index: nothing is embedded
    b = cmrc.cmrc_assistant(indexed, embedder=again, cache_root=tmp_path / "cache")
    assert b.settings.index.data_dir == data_dir and again.calls == 0

    out = cmrc.write_cmrc_report(run, tmp_path / "reports")
    assert out.parent == tmp_path / "reports" and out.name.startswith("cmrc2018-")
    lines = (out / "items.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 7 and json.loads(lines[0])["id"] == items[0].question.id
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["ours"]["hit@5"] == run.metrics["hit@5"] and len(metrics["naive_threshold_grid"]) == len(run.grid)
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "| contains_gold |" in summary and "naive anchor" in summary
    lo, hi = metrics["ours_95ci"]["contains_gold"]
    assert lo <= run.metrics["contains_gold"] <= hi and "95% intervals (bootstrap over passages" in summary


def test_main_writes_a_report(data_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    build = cmrc.cmrc_assistant
    monkeypatch.setattr(cmrc, "cmrc_assistant", lambda indexed, **kw: build(indexed, embedder=FakeEmbedder(), **kw))
    rc = cmrc.main(["--data", str(data_file), "--n", "5", "--withheld", "0.2", "--out", str(tmp_path / "r"),
                    "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0
    (report,) = (tmp_path / "r").iterdir()
    assert len((report / "items.jsonl").read_text(encoding="utf-8").splitlines()) == 5
    assert "contains_gold" in capsys.readouterr().out


def _on(passage: str, answerable: bool, ok: bool) -> ItemResult:
    item = Item(Question(f"{passage}-{ok}", "问题", ("答案",)), passage, answerable)
    right = ok if answerable else False
    return ItemResult(item, "答案" if right else "别的", not ok if answerable else ok, right, 1, 2, 0.1, "", False,
                      None, 0.0)


def test_intervals_resample_passages_not_questions() -> None:
    # Ten passages of four questions each: the same 20 right answers out of 40, either all of a
    # passage's questions right or wrong together (5 passages fully right) or spread evenly
    # (two of four right on every passage). Resampling passages sees the first as 5 of 10
    # coin flips and the second as no variation at all; resampling questions could not tell.
    together = [_on(f"P{i}", True, i < 5) for i in range(10) for _ in range(4)]
    spread = [_on(f"P{i}", True, j < 2) for i in range(10) for j in range(4)]
    lo, hi = cmrc.intervals(together)["contains_gold"]
    assert lo < 0.5 < hi and hi - lo > 0.3
    assert cmrc.intervals(spread)["contains_gold"] == (0.5, 0.5)
    assert cmrc.intervals(together) == cmrc.intervals(together)  # a fixed seed: the report reproduces
    # Withheld passages' questions give refusal accuracy (refused = right); answerable ones the rest.
    mixed = [*together, *[_on(f"W{i}", False, i < 9) for i in range(10)]]
    ci = cmrc.intervals(mixed)
    assert ci["refusal_accuracy"][0] <= 0.9 <= ci["refusal_accuracy"][1] <= 1.0
    assert ci["false_refusal_rate"][0] < 0.5 < ci["false_refusal_rate"][1]
    assert cmrc.intervals([]) == {}
