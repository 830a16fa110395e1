"""A synthetic corpus for the scale benchmark: the seed reports re-issued under other cities.

Report ``i`` of a corpus is copy ``i // 5`` of seed ``i % 5``, so the first ``n`` reports of
the largest corpus are the corpus of size ``n`` (5 = the seeds themselves, 50 = each seed and
nine copies, ...). Copy 0 is the seed, byte for byte. Every other copy is the seed with

* its city renamed to another prefecture-level city of the gazetteer (full name and short
  form: 丽水市 → 衢州市, 丽水 → 衢州), never a seed's city nor a place the seed mentions, and
  its districts named in the text to districts of the new city (莲都区 → 柯城区);
* every year shifted by the same -2..+2 (2019年 → 2020年, 2020-07-02 → 2021-07-02);
* every figure (count, amount, percentage) multiplied by a random factor in 0.8..1.25 with
  its format kept (integers stay integers, 3.15 keeps two decimals, a percentage up to 100
  stays up to 100); the same figure reads the same throughout one copy. List markers, ordinals,
  ages, dates, times, codes, hotlines and names (“323”, ``1+5``) are left alone.

The copy's (city, year shift) pairs are distinct per seed: all cities once, then each again
with another shift. Everything is derived from ``seed`` (the random seed) and the copy's
position, so a copy renders the same whatever the corpus size.

The question sample (:func:`questions`) takes gold questions of the seeds with a figure for
an answer and asks them of a given report: the city and years of the question replaced by
the report's, the expected figures read from the report's own version of the gold quote.

>>> from pathlib import Path                                            # doctest: +SKIP
>>> m = build_corpus(Path("/tmp/corpus"), 50)                            # doctest: +SKIP
>>> qs = questions(m, 50, 40)                                            # doctest: +SKIP
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from assistant.gazetteer import Gazetteer, Place

if TYPE_CHECKING:
    from assistant.evals.gold import GoldItem

SEED = 12
SHIFTS = (-2, -1, 0, 1, 2)
FACTOR = (0.8, 1.25)
_MUNICIPALITIES = frozenset({"北京市", "天津市", "上海市", "重庆市"})
# A four-digit number 1990..2040 is a year unless a unit follows (超2000场, 2000余人).
_UNITS = "万亿千百余多元人个家项例次张台份名户所床篇起件支块套条种批辆株剂场平米公吨座间%％‰"
# A number followed by these is a date, a time, an age, an anniversary or a document number.
_KEEP_AFTER = re.compile(r"\s*(?:岁|周|月|日|时|小时|号|点|届|[:：])")
_HOTLINES = frozenset({"110", "114", "119", "120", "12320", "12345", "12355", "12356"})
_NUMBER = r"(?<![\d.])\d+(?:\.\d+)?(?![\d])"
_NUMBER_RE = re.compile(_NUMBER)

Kind = Literal["city", "district", "year", "figure"]


@dataclass(frozen=True)
class Edit:
    """One replacement in a seed's text: ``text[start:end]`` → ``new``."""

    start: int
    end: int
    new: str
    kind: Kind


@dataclass(frozen=True)
class Seed:
    """A seed report and the names of its place the copies replace."""

    index: int
    name: str  # file name in the seeds folder
    text: str
    city: Place
    districts: tuple[str, ...]  # bare names of the city's districts the text mentions (莲都区)


@dataclass(frozen=True)
class Report:
    """One report of the synthetic corpus, as the manifest lists it."""

    file: str
    seed: str
    copy: int
    city: str
    short: str
    year_shift: int
    years: tuple[int, ...]  # the years the copy's text names (after the shift)
    districts: tuple[tuple[str, str], ...]  # (seed's district, copy's district)
    figures: tuple[tuple[str, str], ...]  # (seed's figure, copy's figure) in text order


@dataclass(frozen=True)
class Manifest:
    """What :func:`build_corpus` wrote: ``folder/<file>`` for each report, in corpus order."""

    folder: Path
    seed: int
    reports: tuple[Report, ...]

    def write(self, path: Path) -> None:
        data = {"folder": str(self.folder), "seed": self.seed, "reports": [asdict(r) for r in self.reports]}
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


@dataclass(frozen=True)
class Question:
    """A gold question asked of one report, with what a right answer states."""

    id: str  # gold id @ report index
    gold_id: str
    kind: Literal["seed", "copy"]
    question: str
    file: str  # the report that answers it
    figures: tuple[str, ...]  # the figures of the answer, as that report states them
    quote: str  # the gold quote as that report reads


# --- seeds and cities -------------------------------------------------------------------------


@cache
def load_seeds(folder: Path | None = None) -> tuple[Seed, ...]:
    """The seed reports (default: the package's), each with the city the ingest finds in it."""
    from assistant.cleaning import build_document
    from assistant.loading import load_file
    from assistant.resources import seeds_dir

    gaz = Gazetteer.default()
    out = []
    for i, path in enumerate(sorted((folder or seeds_dir()).glob("*.txt"))):
        text = path.read_text(encoding="utf-8")
        city = gaz.get(build_document(load_file(path), gaz).meta.city or "")
        if city is None:
            raise ValueError(f"{path.name}: the ingest finds no city in it; it cannot be a seed")
        found = [d for d in _districts_of(city.name) if d in text]
        out.append(Seed(i, path.name, text, city, tuple(sorted(found, key=text.index))))
    return tuple(out)


def _districts_of(city: str) -> list[str]:
    return sorted(p.name[len(city):] for p in Gazetteer.default().places if p.parent == city)


def _district_short(district: str) -> str | None:
    for suffix in ("新区", "区"):
        if district.endswith(suffix) and len(district) - len(suffix) >= 2:
            return district[: -len(suffix)]
    return None


def eligible_cities(seeds: Sequence[Seed]) -> list[Place]:
    """Prefecture-level cities (市, not a municipality) whose short form the gazetteer resolves
    back to them, none of them a seed's city, in gazetteer order."""
    gaz = Gazetteer.default()
    own = {s.city.name for s in seeds}
    return [p for p in gaz.places if p.level == "prefecture" and p.name.endswith("市")
            and p.name not in _MUNICIPALITIES and p.name not in own and p.short != p.name and gaz.get(p.short) == p]


def _targets(seed: Seed, cities: Sequence[Place], rng_seed: int) -> Iterator[tuple[Place, int]]:
    """(city, year shift) for copies 1, 2, ...: every city once (random shift), then again
    with a shift not used for it yet; a city the seed mentions is never used for it."""
    usable = [c for c in cities if c.name not in seed.text and c.short not in seed.text]
    rng = random.Random(f"{rng_seed}:targets:{seed.index}")
    used: dict[str, set[int]] = {c.name: set() for c in usable}
    while True:
        for c in rng.sample(usable, len(usable)):
            left = [s for s in SHIFTS if s not in used[c.name]] or list(SHIFTS)
            shift = rng.choice(left)
            used[c.name] = (used[c.name] | {shift}) if len(used[c.name]) < len(SHIFTS) else {shift}
            yield c, shift


# --- rendering ----------------------------------------------------------------------------------


def _names_pattern(names: Sequence[str]) -> str:
    return "|".join(re.escape(n) for n in sorted(set(names), key=len, reverse=True))


def _is_year(raw: str, after: str) -> bool:
    unit = after.lstrip()[:1]
    return len(raw) == 4 and raw.isdigit() and 1990 <= int(raw) <= 2040 and not (unit and unit in _UNITS)


def _keep_figure(text: str, start: int, end: int) -> bool:
    """Numbers that are not figures: list markers, ordinals, dates, times, ages, codes."""
    raw, before, after = text[start:end], text[max(0, start - 1):start], text[end:end + 3]
    if before in ("第", "+", "/", ":", "：", "-", "—") or after[:1] in ("+", "-", "—"):
        return True
    if re.match(r"[A-Za-z]", before + " ") or re.match(r"[A-Za-z]", after[:1] or " "):
        return True  # 5G, H7N9, an index code
    if (before, after[:1]) in (("(", ")"), ("（", "）"), ("“", "”")):
        return True  # (1), or a name: “323”
    if after[:1] in ("、", ".", "．") and (start == 0 or text[start - 1] in "\n\r \t\u3000\xa0"):
        return True  # 1、 / 1. at the start of a line
    if _KEEP_AFTER.match(after):
        return True
    return raw in _HOTLINES or (len(raw) > 1 and raw.startswith("0") and "." not in raw) or len(raw) >= 7


def _perturb(raw: str, percent: bool, rng: random.Random) -> str:
    places = len(raw.partition(".")[2])
    value = float(raw)
    if value == 0 or (percent and value == 100):
        return raw
    for _ in range(10):
        new = value * rng.uniform(*FACTOR)
        if percent and value <= 100:
            new = min(new, 100.0)
        out = f"{new:.{places}f}" if places else str(max(1, round(new)))
        if out != raw or (not places and value < 5):
            return out
    return f"{value + 10 ** -places:.{places}f}" if places else str(int(value) + 1)


def render(seed: Seed, city: Place, shift: int, rng: random.Random, *,
           figures: bool = True) -> tuple[str, list[Edit]]:
    """The copy of ``seed`` about ``city`` with years shifted by ``shift`` and (with
    ``figures``) every figure perturbed; returns the text and the edits made to the seed's."""
    text, edits = seed.text, []
    mine = _districts_of(city.name)
    mapping: dict[str, str] = {seed.city.name: city.name, seed.city.short: city.short}
    if mine:
        picked = rng.sample(mine, len(mine))
        for i, d in enumerate(seed.districts):
            new = picked[i % len(picked)]
            mapping[d] = new
            old_short, new_short = _district_short(d), _district_short(new)
            if old_short and old_short not in mapping:
                mapping[old_short] = new_short or new
    pattern = re.compile(f"(?P<name>{_names_pattern(list(mapping))})|(?P<num>{_NUMBER})")
    memo: dict[tuple[str, bool], str] = {}
    for m in pattern.finditer(text):
        raw = m.group(0)
        if m.group("name"):
            kind: Kind = "city" if raw in (seed.city.name, seed.city.short) else "district"
            edits.append(Edit(m.start(), m.end(), mapping[raw], kind))
        elif _is_year(raw, text[m.end():m.end() + 2]):
            if shift:
                edits.append(Edit(m.start(), m.end(), str(int(raw) + shift), "year"))
        elif figures and not _keep_figure(text, m.start(), m.end()):
            percent = text[m.end():m.end() + 1] in ("%", "％")
            new = memo.setdefault((raw, percent), _perturb(raw, percent, rng))
            if new != raw:
                edits.append(Edit(m.start(), m.end(), new, "figure"))
    return apply(text, edits), edits


def apply(text: str, edits: Sequence[Edit], start: int = 0, end: int | None = None) -> str:
    """``text[start:end]`` with the edits inside it made (an edit across a bound widens the span)."""
    end = len(text) if end is None else end
    inside = [e for e in edits if e.end > start and e.start < end]
    if inside:
        start, end = min(start, inside[0].start), max(end, inside[-1].end)
    out, pos = [], start
    for e in inside:
        out += [text[pos:e.start], e.new]
        pos = e.end
    out.append(text[pos:end])
    return "".join(out)


# --- the corpus ---------------------------------------------------------------------------------


def plan(n: int, *, seed: int = SEED, seeds: Sequence[Seed] | None = None) -> list[tuple[Seed, int, Place, int]]:
    """(seed, copy, city, year shift) of reports 0..n-1."""
    seeds = seeds or load_seeds()
    cities = eligible_cities(seeds)
    copies = [(n - s.index + len(seeds) - 1) // len(seeds) for s in seeds]
    targets = {s.index: [(s.city, 0)] + [t for _, t in zip(range(c - 1), _targets(s, cities, seed), strict=False)]
               for s, c in zip(seeds, copies, strict=True)}
    return [(seeds[i % len(seeds)], i // len(seeds), *targets[i % len(seeds)][i // len(seeds)]) for i in range(n)]


def _rng(seed: int, s: Seed, copy: int) -> random.Random:
    return random.Random(f"{seed}:copy:{s.index}:{copy}")


def render_report(s: Seed, copy: int, city: Place, shift: int, *, seed: int = SEED) -> tuple[str, list[Edit]]:
    """The text of a report of the corpus (copy 0: the seed itself) and its edits."""
    if copy == 0:
        return s.text, []
    return render(s, city, shift, _rng(seed, s, copy))


def file_name(i: int, s: Seed, copy: int, city: Place) -> str:
    return f"{i:05d}_s{s.index}c{copy:04d}_{city.name}.txt"


def build_corpus(out: Path, n: int, *, seed: int = SEED) -> Manifest:
    """Write reports 0..n-1 into ``out`` (UTF-8 ``.txt``) and return their manifest."""
    out.mkdir(parents=True, exist_ok=True)
    reports = []
    for i, (s, copy, city, shift) in enumerate(plan(n, seed=seed)):
        text, edits = render_report(s, copy, city, shift, seed=seed)
        name = file_name(i, s, copy, city)
        (out / name).write_text(text, encoding="utf-8")
        years = sorted({int(m) for m in re.findall(r"(?<!\d)(?:19|20)\d\d(?=年)", text)})
        districts = tuple(dict.fromkeys((s.text[e.start:e.end], e.new) for e in edits if e.kind == "district"))
        figs = tuple((s.text[e.start:e.end], e.new) for e in edits if e.kind == "figure")
        reports.append(Report(name, s.name, copy, city.name, city.short, shift, tuple(years), districts, figs))
    return Manifest(out, seed, tuple(reports))


# --- the question sample ------------------------------------------------------------------------


@cache
def _normalised(text: str) -> tuple[str, tuple[int, ...]]:
    """NFKC without whitespace, and the position in ``text`` of each character of it."""
    chars, where = [], []
    for i, ch in enumerate(text):
        for c in unicodedata.normalize("NFKC", ch):
            if not c.isspace():
                chars.append(c)
                where.append(i)
    return "".join(chars), tuple(where)


def _span(text: str, needle: str, within: tuple[int, int] | None = None) -> tuple[int, int] | None:
    """Where ``needle`` is in ``text`` (compared without whitespace, NFKC), not inside a number."""
    norm, where = _normalised(text)
    n = "".join(c for c in unicodedata.normalize("NFKC", needle) if not c.isspace())
    lo, hi = within or (0, len(text))
    i = norm.find(n) if n else -1
    while i >= 0:
        s, e = where[i], where[i + len(n) - 1] + 1
        inside_number = n[0].isdigit() and i > 0 and norm[i - 1].isdigit()
        if lo <= s and e <= hi and not inside_number:
            return s, e
        i = norm.find(n, i + 1)
    return None


def _perturbable(text: str, span: tuple[int, int]) -> bool:
    """Does the fact at ``span`` hold a figure the copies change (not a name such as “323”)?"""
    return any(not _is_year(m.group(), text[span[0] + m.end():span[0] + m.end() + 2])
               and not _keep_figure(text, span[0] + m.start(), span[0] + m.end())
               for m in _NUMBER_RE.finditer(text[span[0]:span[1]]))


def _figures(fact: str) -> list[str]:
    """The figures of a fact that identify it (3.15, 339; not the 1 of 3+2+1)."""
    return [x for x in _NUMBER_RE.findall(fact) if len(x) >= 2]


@dataclass(frozen=True)
class _Candidate:
    item: GoldItem
    seed: Seed
    quote: tuple[int, int]  # the gold quote's span in the seed's text
    facts: tuple[tuple[int, int], ...]  # each fact's span (first variant)


def _candidates(seeds: Sequence[Seed]) -> list[_Candidate]:
    """Gold items one seed answers with figures, whose question names the seed's city."""
    from assistant.evals.gold import load_gold
    from assistant.resources import gold_path

    by_name = {s.name: s for s in seeds}
    out = []
    for item in load_gold(gold_path()):
        docs = {e.doc for e in item.evidence}
        s = by_name.get(next(iter(docs))) if len(docs) == 1 else None
        if not item.answerable or s is None or not (s.city.name in item.question or s.city.short in item.question):
            continue
        facts = [group[0] for group in item.facts]
        if not facts or not all(_figures(f) for f in facts):
            continue
        quote = _span(s.text, item.evidence[0].quote)
        spans = [sp for f in facts if quote and (sp := _span(s.text, f, quote))]
        if quote is None or len(spans) != len(facts) or not all(_perturbable(s.text, sp) for sp in spans):
            continue
        out.append(_Candidate(item, s, quote, tuple(spans)))
    return out


def sample_items(n: int) -> list[str]:
    """The ids of the ``n`` gold items of the sample: taken in turn from each seed, in gold order."""
    cands = _candidates(load_seeds())
    by_seed: dict[int, list[str]] = {}
    for c in cands:
        by_seed.setdefault(c.seed.index, []).append(c.item.id)
    rows = list(by_seed.values())
    order = [r[i] for i in range(max(map(len, rows), default=0)) for r in rows if i < len(r)]
    chosen = set(order[:n])
    return [c.item.id for c in cands if c.item.id in chosen]


def questions(manifest: Manifest, size: int, n: int) -> list[Question]:
    """The question sample for the corpus of the first ``size`` reports: ``n`` gold items
    (:func:`sample_items`), each asked of its seed and, once the corpus has copies, of one copy
    of that seed (the same fraction of the way through the copies at every size)."""
    if size > len(manifest.reports):
        raise ValueError(f"the corpus has {len(manifest.reports)} reports, not {size}")
    wanted = set(sample_items(n))
    plans = plan(size, seed=manifest.seed)
    out = []
    for c in _candidates(load_seeds()):
        if c.item.id not in wanted:
            continue
        s = c.seed
        copies = [i for i, p in enumerate(plans) if p[0].index == s.index]
        frac = random.Random(f"{manifest.seed}:question:{c.item.id}").random()
        targets: list[tuple[Literal["seed", "copy"], int]] = [("seed", copies[0])]
        if len(copies) > 1:
            targets.append(("copy", copies[1 + int(frac * (len(copies) - 1))]))
        for kind, i in targets:
            _s, copy, city, shift = plans[i]
            _text, edits = render_report(s, copy, city, shift, seed=manifest.seed)
            question = c.item.question
            if copy:  # the same rng as the report's: the same districts
                as_seed = Seed(s.index, s.name, question, s.city, s.districts)
                question, _ = render(as_seed, city, shift, _rng(manifest.seed, s, copy), figures=False)
            figures = tuple(x for a, b in c.facts for x in _figures(apply(s.text, edits, a, b)))
            out.append(Question(f"{c.item.id}@{i}", c.item.id, kind, question, manifest.reports[i].file, figures,
                                apply(s.text, edits, *c.quote)))
    return out


__all__ = ["Edit", "Manifest", "Question", "Report", "Seed", "apply", "build_corpus", "eligible_cities",
           "load_seeds", "plan", "questions", "render", "render_report", "sample_items"]
