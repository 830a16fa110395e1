"""Loading: discovery, decoding, binary/empty rejection, HTML/Markdown/PDF/DOCX extraction."""

from __future__ import annotations

import codecs
import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from assistant.errors import LoadError
from assistant.loading import SUPPORTED, decode_bytes, discover, load_file, strip_markdown

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
SEED_GBK = SEEDS / "001_f9e5136daba399cd.txt"  # every character of it exists in GBK
SEED_NBSP = SEEDS / "000_02aee6cc86416636.txt"  # has U+00A0, which GBK lacks but GB18030 has


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def _load_error(path: Path) -> LoadError:
    with pytest.raises(LoadError) as info:
        load_file(path)
    assert path.name in str(info.value)
    assert info.value.hint, "every load error says what to do next"
    return info.value


# --- encodings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "legacy"),
    [(SEED_GBK, "gbk"), (SEED_GBK, "gb2312"), (SEED_NBSP, "gb18030")],
)
def test_utf8_bom_and_gb_encodings_load_to_identical_text(tmp_path: Path, seed: Path, legacy: str) -> None:
    text = seed.read_text(encoding="utf-8")
    try:
        legacy_bytes = text.encode(legacy)
    except UnicodeEncodeError:
        pytest.skip(f"{seed.name} has characters outside {legacy}")
    plain = load_file(_write(tmp_path, "u8.txt", text.encode("utf-8")))
    bom = load_file(_write(tmp_path, "bom.txt", codecs.BOM_UTF8 + text.encode("utf-8")))
    gb = load_file(_write(tmp_path, "gb.txt", legacy_bytes))
    assert plain.text == bom.text == gb.text == text
    assert (plain.encoding, bom.encoding, gb.encoding) == ("utf-8", "utf-8-sig", "gb18030")
    assert plain.fmt == "txt"
    assert gb.sha256 == hashlib.sha256(legacy_bytes).hexdigest()
    assert plain.sha256 != gb.sha256


def test_line_endings_normalised_and_nothing_else_changed(tmp_path: Path) -> None:
    raw = "一、总体要求\r\n　　全市卫生健康工作，签约率达３５％ 。\r二、重点任务\n\n  三、保障  \n"
    lf = load_file(_write(tmp_path, "r.txt", raw.encode("utf-8")))
    assert lf.text == raw.replace("\r\n", "\n").replace("\r", "\n")  # full-width kept, spaces kept


def test_utf8_cut_in_last_character_keeps_the_rest(tmp_path: Path) -> None:
    data = "卫生健康工作要点".encode()
    lf = load_file(_write(tmp_path, "cut.txt", data[:-1]))
    assert lf.text == "卫生健康工作要"
    assert lf.encoding == "utf-8"


def test_decode_bytes_plain_ascii_is_utf8() -> None:
    assert decode_bytes(b"2024 report\n") == ("2024 report\n", "utf-8")


# --- rejected files ----------------------------------------------------------------


def test_empty_file(tmp_path: Path) -> None:
    err = _load_error(_write(tmp_path, "empty.txt", b""))
    assert "empty" in str(err)


@pytest.mark.parametrize("data", [b"   \n\t\r\n", codecs.BOM_UTF8 + b"\n  ", "　　\n".encode()])
def test_whitespace_only_file(tmp_path: Path, data: bytes) -> None:
    err = _load_error(_write(tmp_path, "blank.md", data))
    assert "whitespace" in str(err)


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10",
        bytes(range(256)) * 8,
        b"report text\x00with a NUL byte in it",
        b"ctrl\x01\x02\x03\x04\x05\x06\x07\x08 chars \x0e\x0f\x10\x11\x12" * 10,
    ],
    ids=["png", "all-bytes", "nul", "controls"],
)
def test_binary_content(tmp_path: Path, data: bytes) -> None:
    err = _load_error(_write(tmp_path, "report.txt", data))
    assert "binary" in str(err)


def test_binary_html_is_rejected_too(tmp_path: Path) -> None:
    err = _load_error(_write(tmp_path, "page.html", b"\x00\x01\x02<html>"))
    assert "binary" in str(err)


@pytest.mark.parametrize(
    "data",
    [
        "café naïve résumé à la crème brûlée, déjà vu. ".encode("latin-1") * 20,
        "Отчёт о работе здравоохранения города за год".encode("cp1251") * 20,
        "健康づくりの推進について報告します".encode("shift_jis") * 20,
        "衛生健康工作報告與計劃".encode("big5") * 20,
        "déjàvu ".encode("latin-1") * 50,  # GB18030 "decodes" this into rare hanzi
        bytes([0xE9, 0x74]) * 200,
    ],
    ids=["latin1", "cp1251", "shift-jis", "big5", "latin1-as-gb18030", "rare-hanzi"],
)
def test_undecodable_bytes(tmp_path: Path, data: bytes) -> None:
    err = _load_error(_write(tmp_path, "notes.txt", data))
    assert "UTF-8" in str(err)


def test_almost_utf8_names_the_bad_byte(tmp_path: Path) -> None:
    text = SEED_GBK.read_text(encoding="utf-8").encode("utf-8")
    data = text[:300] + b"\xff" + text[300:]
    err = _load_error(_write(tmp_path, "almost.txt", data))
    assert "byte 300" in str(err)


def test_unsupported_suffix_and_missing_file(tmp_path: Path) -> None:
    err = _load_error(_write(tmp_path, "table.csv", b"a,b\n1,2\n"))
    assert ".csv" in str(err) and ".docx" in err.hint
    err = _load_error(tmp_path / "gone.txt")
    assert "does not exist" in str(err)


# --- markdown ----------------------------------------------------------------------


def test_markdown_markup_stripped(tmp_path: Path) -> None:
    md = (
        "# 2024年工作要点 #\n"
        "## 一、总体要求\n"
        "**坚持**人民至上，*推进*健康_余姚_建设，详见[通知](http://example.cn/a.html)。\n"
        "![示意图](img.png)\n"
        "---\n"
        "| 指标 | 目标 |\n"
        "|---|:--:|\n"
        "| 签约率 | 35% |\n"
        "* 列表项 snake_case_name\n"
    )
    lf = load_file(_write(tmp_path, "plan.md", md.encode()))
    assert lf.fmt == "md"
    assert lf.text.splitlines() == [
        "2024年工作要点",
        "一、总体要求",
        "坚持人民至上，推进健康_余姚_建设，详见通知。",
        "示意图",
        "| 指标 | 目标 |",
        "| 签约率 | 35% |",
        "* 列表项 snake_case_name",
    ]


def test_strip_markdown_leaves_plain_text_alone() -> None:
    text = "一、总体要求\n（一）全市签约率达到35%以上。"
    assert strip_markdown(text) == text


# --- HTML --------------------------------------------------------------------------

_PAGE = """<!DOCTYPE html>
<html><head><meta charset="{charset}"><title>丽水市卫生健康2019年工作总结 - 丽水市卫生健康委</title>
<style>.x {{ color: red }}</style><script>var nav = "首页";</script></head>
<body>
<div class="top-nav"><ul><li><a href="/">首页</a></li><li>政务公开</li></ul></div>
<div class="breadcrumb">当前位置：首页 &gt;&gt; 政务公开 &gt;&gt; 统计信息</div>
<nav>网站导航</nav>
<div id="content" class="article">
  <h1>丽水市卫生健康2019年工作总结和2020年工作要点</h1>
  <p>&nbsp;&nbsp;一、2019年卫生健康工作总结</p>
  <p>2019年，丽水市卫生健康系统<b>认真贯彻</b>落实各项决策部署，<br>成效明显。</p>
  <!-- a comment that must not appear -->
  <table><tr><th>指标</th><th>目标</th></tr><tr><td>签约率</td><td>35%</td></tr></table>
  <div class="share-bar">分享到：微信 微博</div>
</div>
<div class="sidebar">相关链接</div>
<footer>版权所有 丽水市卫生健康委员会</footer>
<noscript>请开启脚本</noscript>
</body></html>
"""


@pytest.mark.parametrize(("charset", "encoding"), [("utf-8", "utf-8"), ("gb2312", "gb18030")])
def test_html_drops_chrome_and_keeps_title(tmp_path: Path, charset: str, encoding: str) -> None:
    page = _PAGE.format(charset=charset)
    lf = load_file(_write(tmp_path, "page.htm", page.encode(encoding)))
    assert lf.fmt == "html"
    assert lf.encoding == encoding
    assert lf.html_title == "丽水市卫生健康2019年工作总结 - 丽水市卫生健康委"
    assert lf.text.splitlines() == [
        "丽水市卫生健康2019年工作总结和2020年工作要点",
        "一、2019年卫生健康工作总结",
        "2019年，丽水市卫生健康系统认真贯彻落实各项决策部署，",
        "成效明显。",
        "指标 | 目标",
        "签约率 | 35%",
    ]
    for chrome in ("当前位置", "首页", "导航", "分享", "相关链接", "版权", "脚本", "comment", "color"):
        assert chrome not in lf.text


def test_html_without_charset_is_detected(tmp_path: Path) -> None:
    page = "<html><body><p>长沙市2018年卫生计生工作要点</p></body></html>"
    lf = load_file(_write(tmp_path, "p.html", page.encode("gbk")))
    assert (lf.text, lf.encoding, lf.html_title) == ("长沙市2018年卫生计生工作要点", "gb18030", None)


def test_html_source_line_breaks_inside_chinese_are_joined(tmp_path: Path) -> None:
    page = "<html><body><p>全市卫生\n    健康系统 ABC\n  def</p></body></html>"
    lf = load_file(_write(tmp_path, "wrap.html", page.encode()))
    assert lf.text == "全市卫生健康系统 ABC def"


def test_html_layout_table_keeps_paragraph_lines(tmp_path: Path) -> None:
    page = (
        "<html><body class='has-sidebar'><table><tr><td><p>第一段。</p><p>第二段。</p></td></tr>"
        "</table></body></html>"
    )
    lf = load_file(_write(tmp_path, "layout.html", page.encode()))
    assert lf.text == "第一段。\n第二段。"


def test_html_with_only_chrome_is_empty(tmp_path: Path) -> None:
    page = "<html><head><title>t</title></head><body><nav>首页</nav><script>x()</script></body></html>"
    err = _load_error(_write(tmp_path, "chrome.html", page.encode()))
    assert "no text" in str(err)


# --- DOCX --------------------------------------------------------------------------


def test_docx_paragraphs_and_table_in_order(tmp_path: Path) -> None:
    import docx

    d = docx.Document()
    d.add_heading("十堰市2021年卫生健康工作要点", level=1)
    d.add_paragraph("一、强化党的建设")
    table = d.add_table(rows=2, cols=3)
    for r, row in enumerate([("指标", "2020年", "2021年"), ("签约率", "30%", "35%")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    merged = d.add_table(rows=1, cols=3)
    merged.cell(0, 0).merge(merged.cell(0, 1)).text = "合并单元格"
    merged.cell(0, 2).text = "尾"
    d.add_paragraph("二、深化医药卫生体制改革")
    path = tmp_path / "plan.docx"
    d.save(str(path))

    lf = load_file(path)
    assert (lf.fmt, lf.encoding) == ("docx", "binary")
    assert [line for line in lf.text.splitlines() if line] == [
        "十堰市2021年卫生健康工作要点",
        "一、强化党的建设",
        "指标 | 2020年 | 2021年",
        "签约率 | 30% | 35%",
        "合并单元格 | 尾",
        "二、深化医药卫生体制改革",
    ]


def test_corrupt_and_empty_docx(tmp_path: Path) -> None:
    err = _load_error(_write(tmp_path, "broken.docx", b"PK\x03\x04 this is not really a zip"))
    assert "DOCX" in str(err)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hello.txt", "not a word document")
    _load_error(_write(tmp_path, "zip.docx", buf.getvalue()))

    import docx

    path = tmp_path / "blank.docx"
    docx.Document().save(str(path))
    assert "no text" in str(_load_error(path))


# --- PDF ---------------------------------------------------------------------------


def test_pdf_text_layer(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = tmp_path / "report.pdf"
    with matplotlib.rc_context({"pdf.fonttype": 42}):
        fig = plt.figure(figsize=(4, 3))
        fig.text(0.1, 0.6, "Health work plan 2024")
        fig.text(0.1, 0.3, "Coverage 35 percent")
        fig.savefig(path, format="pdf")
        plt.close(fig)

    lf = load_file(path)
    assert (lf.fmt, lf.encoding) == ("pdf", "binary")
    assert "Health work plan 2024" in lf.text
    assert "Coverage 35 percent" in lf.text


def test_pdf_without_text_layer_asks_for_ocr(tmp_path: Path) -> None:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    path = tmp_path / "scan.pdf"
    with path.open("wb") as f:
        writer.write(f)
    err = _load_error(path)
    assert "OCR" in str(err)


def test_corrupt_pdf(tmp_path: Path) -> None:
    err = _load_error(_write(tmp_path, "bad.pdf", b"%PDF-1.7\nthis is not a pdf body at all\n"))
    assert "PDF" in str(err)


# --- discovery ---------------------------------------------------------------------


def test_discover_walks_sorted_and_skips_hidden_sidecars_unsupported(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    for rel in [
        "b.txt",
        "a.MD",
        "a.meta.yaml",
        "b.txt.meta.yml",
        "notes.csv",
        ".hidden.txt",
        ".git/x.txt",
        "2019/z.html",
        "2019/a.PDF",
        "2019/deep/c.docx",
        "2020/d.htm",
        "2020/e.markdown",
        "2020/image.png",
    ]:
        _write(root, rel, b"x")
    found = discover([root])
    assert [p.relative_to(root).as_posix() for p in found] == [  # sorted by path components
        "2019/a.PDF",
        "2019/deep/c.docx",
        "2019/z.html",
        "2020/d.htm",
        "2020/e.markdown",
        "a.MD",
        "b.txt",
    ]
    assert discover([root]) == found  # deterministic


def test_discover_files_duplicates_and_errors(tmp_path: Path) -> None:
    a = _write(tmp_path, "a.txt", b"x")
    side = _write(tmp_path, "a.meta.yaml", b"city: x")
    assert discover([a, str(a), side, tmp_path]) == [a]
    with pytest.raises(LoadError, match="does not exist") as info:
        discover([tmp_path / "missing"])
    assert "missing" in str(info.value)
    with pytest.raises(LoadError, match="unsupported"):
        discover([_write(tmp_path, "x.xlsx", b"x")])


def test_supported_suffixes() -> None:
    assert {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx"} == set(SUPPORTED)


def test_seeds_load_unchanged() -> None:
    for path in discover([SEEDS]):
        lf = load_file(path)
        assert lf.text == path.read_text(encoding="utf-8").replace("\r\n", "\n")
        assert lf.encoding == "utf-8"
