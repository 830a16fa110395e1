"""Cleaning and document metadata: strip web page chrome, keep what it holds.

Government portals wrap reports in breadcrumbs (当前位置:首页 >> ...), view
counters, font-size widgets and 索引号/组配分类 tables.  These lines are removed
from the text, and their fields (issuer, dates, index number) become metadata.
City, years and their role (review vs plan), title, issuer and date are detected
with generic rules plus a gazetteer; a sidecar ``NAME.meta.yaml`` overrides any
detected field.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from pathlib import Path

from .errors import LoadError
from .gazetteer import Gazetteer
from .types import DocMeta, Document, LoadedFile, YearInfo, YearRole

# Portal table fields whose values we keep as metadata.
FIELD_KEYS = (
    "索引号", "文号", "组配分类", "发布机构", "成文日期", "生成日期", "发布日期", "公开方式",
    "主题分类", "体裁分类", "公开范围", "信息来源", "发布时间", "来源", "发文机关", "有效性",
)
_FIELD_RE = re.compile(
    r"(" + "|".join(sorted(FIELD_KEYS, key=len, reverse=True)) + r")\s*[:：|]?\s*"
    r"([^|]*?)\s*(?=(?:" + "|".join(FIELD_KEYS) + r")\s*[:：|]?|\||$|浏览次数|字体)"
)
_CHROME_RES = [
    re.compile(r"^\s*(当前位置|您的位置|你的位置|所在位置)\s*[:：]"),
    re.compile(r"^\s*(>>|»|＞＞|>)"),
    re.compile(r"(浏览次数|访问次数|阅读次数|点击次数|阅读量)\s*[:：]?"),
    re.compile(r"字体\s*[:：]?\s*[\[【［]?\s*大\s*中\s*小"),
    re.compile(r"^\s*(打印本页|关闭窗口|【打印】|【关闭】|分享到|扫一扫|返回顶部|上一篇|下一篇)"),
    re.compile(r"^\s*(" + "|".join(FIELD_KEYS) + r")\s*[:：|]?\s*\S"),
]
_MAX_CHROME_LINE = 200  # chrome lines are short; a long line is report text
_NUMERIC_DATE_RE = re.compile(
    r"(?<![\d.])((?:19|20)\d{2})\s*[-/.]\s*(?:0?[1-9]|1[0-2])(?![\d])(?!\s*[万亿千百%‰个人次元家所张台项])")
_DATE_RE = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})")
_TITLE_KEYWORDS = "要点|总结|计划|安排|回顾|报告|意见|方案|思路"
_TITLE_RE = re.compile(rf"\d{{4}}\s*年.*?({_TITLE_KEYWORDS})")
_QUOTED_TITLE_RE = re.compile(r"《([^》]{4,60})》")
_REVIEW_WORDS = ("总结", "回顾", "完成情况", "工作情况", "成效", "进展")
_PLAN_WORDS = ("要点", "计划", "安排", "重点工作", "思路", "打算", "任务")
_HEADING_YEAR_RE = re.compile(r"(?:^|\n|\s)[一二三四五六七八九十]{1,3}[、.．]\s*([^\n。]{0,40})")
_ISSUER_RE = re.compile(
    r"^.{2,24}(委员会|卫生健康委|卫健委|卫生健康局|卫生局|卫生和计划生育委员会|人民政府|办公室|办公厅)$")


def clean_lines(text: str) -> tuple[str, dict[str, str]]:
    """Drop page-chrome lines; return the cleaned text and the fields they held.

    Report lines are stripped of surrounding whitespace and table pipes but
    otherwise kept byte for byte, so offsets into the result are stable.
    """
    fields: dict[str, str] = {}
    kept: list[str] = []
    for raw in text.split("\n"):
        line = raw.strip().strip("|").strip()
        line = re.sub(r"(\s*\|\s*)+$", "", line)
        if not line or set(line) <= set("|-—_=* "):
            continue
        if len(line) <= _MAX_CHROME_LINE and any(r.search(line) for r in _CHROME_RES):
            for key, value in _FIELD_RE.findall(line):
                value = value.strip(" :：|")
                if value and key not in fields:
                    fields[key] = value
            continue
        kept.append(line)
    return "\n".join(kept), fields


def _role_of(phrase: str) -> YearRole:
    if any(w in phrase for w in _REVIEW_WORDS):
        return "review"
    if any(w in phrase for w in _PLAN_WORDS):
        return "plan"
    return "unknown"


def years_in(phrase: str) -> list[YearInfo]:
    """Years named in a title or heading, each with the role of the words after it.

    >>> years_in("丽水市卫生健康2019年工作总结和2020年工作要点")
    [YearInfo(year=2019, role='review'), YearInfo(year=2020, role='plan')]
    """
    out: list[YearInfo] = []
    matches = list(re.finditer(r"(?<!\d)((?:19|20)\d{2})\s*年(?!\d{1,2}月)", phrase))
    for i, m in enumerate(matches):
        stop = matches[i + 1].start() if i + 1 < len(matches) else len(phrase)
        tail = phrase[m.end() : stop]
        role = _role_of(tail)
        if role == "unknown" and len(matches) == 1:
            role = _role_of(phrase)
        out.append(YearInfo(int(m.group(1)), role))
    return out


def detect_title(text: str, html_title: str | None = None) -> str | None:
    """The report title: a short early line naming a year and 要点/总结/..., else a
    《quoted》 title from a cover letter, else the HTML <title>."""
    head = text.split("\n")[:15]
    for line in head:
        if len(line) <= 60 and _TITLE_RE.search(line) and not _QUOTED_TITLE_RE.search(line) \
                and not re.match(r"^[一二三四五六七八九十]+[、.．]|^[（(]", line):
            return line.strip(" |")
    for line in head:
        m = _QUOTED_TITLE_RE.search(line)
        if m and _TITLE_RE.search(m.group(1)):
            return m.group(1)
    if html_title and html_title.strip():
        return re.split(r"[_|\-–—]{1,2}\s*(?=[^_|\-–—]*$)", html_title.strip())[0].strip()
    return None


def detect_years(title: str, text: str) -> tuple[YearInfo, ...]:
    """Years and roles from the title and from top-level headings (一、2024年主要工作回顾)."""
    found: dict[int, YearRole] = {}
    for y in years_in(title or ""):
        found.setdefault(y.year, y.role)
    for m in _HEADING_YEAR_RE.finditer(text[:200_000]):
        for y in years_in(m.group(1)):
            if found.get(y.year, "unknown") == "unknown":
                found[y.year] = y.role
    if not found:
        counts: dict[int, int] = {}
        for m in re.finditer(r"(?<!\d)((?:19|20)\d{2})\s*年", text[:3000]):
            counts[int(m.group(1))] = counts.get(int(m.group(1)), 0) + 1
        if not counts:
            # A news item or page that gives its year only in a date line (2023-08-02 14:35,
            # 2023/8/2, 2023.08): that year, never one the text does not mention.
            for m in _NUMERIC_DATE_RE.finditer(text[:3000]):
                counts[int(m.group(1))] = counts.get(int(m.group(1)), 0) + 1
        if counts:
            best = max(counts, key=lambda y: (counts[y], y))
            found[best] = "unknown"
    return tuple(YearInfo(y, r) for y, r in sorted(found.items()))


def _iso(date_text: str | None) -> str | None:
    if not date_text:
        return None
    m = _DATE_RE.search(date_text)
    if not m:
        return None
    y, mo, d = (int(g) for g in m.groups())
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return None
    return f"{y:04d}-{mo:02d}-{d:02d}"


def detect_issuer_and_date(text: str, fields: dict[str, str]) -> tuple[str | None, str | None]:
    issuer = fields.get("发布机构") or fields.get("发文机关")
    date = None
    for key in ("成文日期", "发布日期", "生成日期", "发布时间"):
        date = date or _iso(fields.get(key))
    lines = text.split("\n")[:20]
    for i, line in enumerate(lines):
        if not issuer and _ISSUER_RE.match(line):
            issuer = line
            if i + 1 < len(lines) and re.fullmatch(r"\d{4}年\d{1,2}月\d{1,2}日", lines[i + 1]):
                date = date or _iso(lines[i + 1])
        elif not date and re.fullmatch(r"\d{4}年\d{1,2}月\d{1,2}日", line):
            date = _iso(line)
    issuer = issuer or fields.get("信息来源") or fields.get("来源")
    return issuer, date


def sidecar_paths(path: Path) -> tuple[Path, ...]:
    """Where a report's metadata sidecar may live, in order of preference."""
    return (path.with_name(path.name + ".meta.yaml"), path.with_name(path.stem + ".meta.yaml"),
            path.with_name(path.name + ".meta.yml"), path.with_name(path.stem + ".meta.yml"))


def read_sidecar(path: Path) -> dict[str, object]:
    """``NAME.meta.yaml`` or ``STEM.meta.yaml`` beside the report, if present."""
    import yaml

    for cand in sidecar_paths(path):
        if cand.is_file():
            try:
                data = yaml.safe_load(cand.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as exc:
                raise LoadError(str(cand), f"invalid YAML ({exc.__class__.__name__})",
                                "Fix the sidecar or delete it.") from None
            if not isinstance(data, dict):
                raise LoadError(str(cand), "must be a mapping of field: value", "See README, 'Sidecar metadata'.")
            unknown = set(data) - {"title", "city", "province", "years", "issuer", "date"}
            if unknown:
                raise LoadError(str(cand), f"unknown fields {sorted(unknown)}",
                                "Allowed: title, city, province, years, issuer, date.")
            return data
    return {}


def _apply_sidecar(meta: DocMeta, side: dict[str, object], where: str) -> DocMeta:
    changes: dict[str, object] = {}
    for key in ("title", "city", "province", "issuer"):
        if key in side:
            changes[key] = None if side[key] is None else str(side[key])
    if "date" in side:
        changes["date"] = _iso(str(side["date"])) or str(side["date"])
    if "years" in side:
        years: list[YearInfo] = []
        raw = side["years"]
        items = raw if isinstance(raw, list) else [raw]
        for item in items:
            if isinstance(item, dict) and "year" in item:
                role = str(item.get("role", "unknown"))
                if role not in ("review", "plan", "unknown"):
                    raise LoadError(where, f"years role {role!r} must be review, plan or unknown")
                years.append(YearInfo(int(item["year"]), role))  # type: ignore[arg-type]
            elif isinstance(item, int | str) and str(item).isdigit():
                years.append(YearInfo(int(item), meta.role_of(int(item))))
            else:
                raise LoadError(where, f"cannot read years entry {item!r}", "Use a list of years or {year, role}.")
        changes["years"] = tuple(years)
    return replace(meta, **changes)  # type: ignore[arg-type]


def make_doc_id(text: str) -> str:
    """Content-hash id of the cleaned text: the same report in UTF-8 or GBK gets one id."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def build_document(loaded: LoadedFile, gazetteer: Gazetteer | None = None) -> Document:
    """Clean a loaded file and detect its metadata (sidecar overrides applied)."""
    text, fields = clean_lines(loaded.text)
    if not text.strip():
        raise LoadError(loaded.path, "nothing left after removing page chrome", "Is this a report page?")
    gaz = gazetteer or Gazetteer.default()
    title = detect_title(text, loaded.html_title)
    years = detect_years(title or "", text)
    issuer, date = detect_issuer_and_date(text, fields)
    if not years and date:  # the year only in a 发布时间 line the cleaning moved to the metadata
        years = (YearInfo(int(date[:4]), "unknown"),)
    place = gaz.best_city(title or "", text, issuer)
    city = place.name if place else None
    if issuer and city and issuer.startswith("市"):
        issuer = city + issuer[1:]
    if not title:
        # No report-style title (a news item, a page, an encyclopedia passage): its own first
        # line when that reads as a heading, else the file name. Never invented words.
        first = next((ln.strip() for ln in text.split("\n") if ln.strip()), "")
        numbered = re.match(r"^(?:[一二三四五六七八九十]+[、.．]|[（(][一二三四五六七八九十\d]+[)）]|\d+[.、．])",
                            first)
        if 0 < len(first) <= 40 and not numbered and not re.search(r"[。！？!?；;，,]", first):
            title = first
        elif city or years:  # a report that opens with its first section: name it by place and years
            parts = [city or ""] + [f"{y.year}年" + {"review": "回顾", "plan": "安排"}.get(y.role, "") for y in years]
            title = " ".join(p for p in parts if p)
        else:
            title = Path(loaded.path).stem
    meta = DocMeta(
        title=title, city=city, province=place.province if place else None, years=years,
        issuer=issuer, date=date,
        extra=tuple(sorted((k, v) for k, v in fields.items() if k not in ("发布机构",))),
    )
    side = read_sidecar(Path(loaded.path))
    if side:
        meta = _apply_sidecar(meta, side, loaded.path)
    return Document(
        doc_id=make_doc_id(text), source_path=loaded.path, text=text, meta=meta,
        content_hash=loaded.sha256, fmt=loaded.fmt,
    )
