"""Stage 1: find report files and read each one into plain text.

:func:`discover` expands the paths a user names into a sorted list of report
files; :func:`load_file` reads one file into a :class:`~assistant.types.LoadedFile`.
Plain text is decoded (UTF-8 with or without BOM, then GB18030) and otherwise
left exactly as written, because every later stage computes character offsets
into it. HTML, PDF and DOCX are converted to lines of text.

Every failure is a :class:`~assistant.errors.LoadError` naming the file and
saying what to do next.

>>> lf = load_file("seeds/000_02aee6cc86416636.txt")    # doctest: +SKIP
>>> lf.fmt, lf.encoding                                  # doctest: +SKIP
('txt', 'utf-8')
"""

from __future__ import annotations

import codecs
import hashlib
import io
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import LoadError
from .types import LoadedFile

if TYPE_CHECKING:
    from bs4 import BeautifulSoup
    from bs4.element import Tag
    from docx.table import Table

SUPPORTED = frozenset({".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx"})
SIDECAR_SUFFIXES = (".meta.yaml", ".meta.yml")

_FORMAT = {".txt": "txt", ".md": "md", ".markdown": "md", ".html": "html", ".htm": "html",
           ".pdf": "pdf", ".docx": "docx"}  # fmt: skip
_UTF8_HINT = "Re-save it as UTF-8 text (most editors: 'Save with encoding' → UTF-8)."
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or a DOCX/XLSX document)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office (.doc/.xls) document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
)
# Bytes that never occur in text: C0 controls except tab, LF, VT, FF, CR and ESC.
_CONTROL_BYTES = frozenset(range(0x01, 0x09)) | frozenset(range(0x0E, 0x1B)) | {0x1C, 0x1D, 0x1E, 0x1F, 0x7F}


# --- discovery ---------------------------------------------------------------------


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _is_sidecar(name: str) -> bool:
    return name.lower().endswith(SIDECAR_SUFFIXES)


def _is_supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED and not _is_sidecar(path.name)


def discover(paths: Sequence[str | Path]) -> list[Path]:
    """Expand files and directories into the report files to load.

    Directories are walked recursively; hidden files and folders (``.name``),
    metadata sidecars (``*.meta.yaml``/``*.meta.yml``) and unsupported suffixes are
    skipped. Files of one directory come back sorted by their relative path, so the
    result is the same on every machine. A file named explicitly is kept when its
    suffix is supported; naming an unsupported file is an error, not a silent skip.
    Duplicates are dropped, first occurrence wins.

    >>> discover(["seeds"])[0].name                         # doctest: +SKIP
    '000_02aee6cc86416636.txt'
    """
    out: list[Path] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)

    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise LoadError(
                str(p), "does not exist", "Check the path (it is relative to the current directory)."
            )
        if p.is_dir():
            found: list[Path] = []
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not _is_hidden(d))
                found.extend(Path(root, f) for f in files if not _is_hidden(f) and _is_supported(Path(f)))
            for f in sorted(found, key=lambda f: f.relative_to(p).parts):
                add(f)
        elif _is_sidecar(p.name):
            continue  # metadata, read next to its report by the metadata stage
        elif p.suffix.lower() in SUPPORTED:
            add(p)
        else:
            raise LoadError(str(p), f"unsupported file type {p.suffix or '(no suffix)'!r}", _supported_hint())
    return out


def _supported_hint() -> str:
    return "Supported: " + ", ".join(sorted(SUPPORTED)) + "; convert the file to one of these."


# --- loading -----------------------------------------------------------------------


def load_file(path: str | Path) -> LoadedFile:
    """Read one report file into text.

    Raises :class:`LoadError` when the file is missing, empty, binary, not in a
    known encoding, of an unsupported type, a PDF without a text layer, or a
    corrupt PDF/DOCX. Line endings become ``"\\n"``; plain text is otherwise kept
    byte-for-byte as decoded (no normalisation), markdown loses only its markup.
    """
    p = Path(path)
    name = str(p)
    fmt = _FORMAT.get(p.suffix.lower())
    if fmt is None:
        raise LoadError(name, f"unsupported file type {p.suffix or '(no suffix)'!r}", _supported_hint())
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise LoadError(name, "does not exist", "Check the path.") from None
    except OSError as e:
        raise LoadError(
            name, f"cannot be read ({e.strerror or e})", "Check that it is a readable file."
        ) from e
    if not raw:
        raise LoadError(name, "is empty (0 bytes)", "Replace it with the full report or remove it.")

    title: str | None = None
    if fmt == "pdf":
        text, encoding = _pdf_text(name, raw), "binary"
    elif fmt == "docx":
        text, encoding = _docx_text(name, raw), "binary"
    else:
        _reject_binary(name, raw)
        if fmt == "html":
            text, encoding, title = _html_text(name, raw)
        else:
            text, encoding = decode_bytes(raw, name)
            text = _newlines(text)
            if fmt == "md":
                text = strip_markdown(text)

    if not text.strip():
        if fmt == "pdf":
            raise LoadError(
                name, "has no text layer (scanned PDF?)", "Run OCR first (e.g. `ocrmypdf in.pdf out.pdf`)."
            )
        what = "contains no text" if fmt in ("docx", "html") else "contains only whitespace"
        raise LoadError(name, what, "Replace it with the full report or remove it.")
    return LoadedFile(
        path=name,
        text=text,
        fmt=fmt,
        encoding=encoding,
        sha256=hashlib.sha256(raw).hexdigest(),
        html_title=title,
    )


def _newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --- decoding ----------------------------------------------------------------------


def _reject_binary(name: str, raw: bytes) -> None:
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return  # UTF-16 text legitimately contains NUL bytes
    for magic, what in _MAGIC:
        if raw.startswith(magic):
            raise LoadError(name, f"is binary data ({what}), not text", "Give the file its real suffix.")
    head = raw[:65536]
    if b"\x00" in head:
        raise LoadError(name, "is binary data (contains NUL bytes), not text", _UTF8_HINT)
    controls = sum(1 for b in head if b in _CONTROL_BYTES)
    if controls > max(2, len(head) // 100):
        raise LoadError(name, f"is binary data ({controls} control bytes), not text", _UTF8_HINT)


def decode_bytes(raw: bytes, name: str = "<bytes>") -> tuple[str, str]:
    """Decode text bytes; returns ``(text, encoding)``.

    Tries UTF-8 with BOM (BOM stripped, encoding ``"utf-8-sig"``), UTF-8, then
    GB18030 (a superset of GBK and GB2312). GB18030 accepts almost any byte string,
    so its result must look like Chinese text (see :func:`_plausible_chinese`).
    A UTF-16 file with a BOM is accepted too. ``name`` is used in error messages.

    >>> decode_bytes("卫生健康".encode("gbk"))
    ('卫生健康', 'gb18030')
    """
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            raise LoadError(name, "starts with a UTF-16 mark but is not valid UTF-16", _UTF8_HINT) from None
    if raw.startswith(codecs.BOM_UTF8):
        try:
            return raw[len(codecs.BOM_UTF8) :].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as e:
            raise LoadError(
                name, f"starts with a UTF-8 mark but has invalid UTF-8 at byte {e.start + 3}", _UTF8_HINT
            ) from None
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as e:
        utf8_error = e
    # A download cut off in the middle of the last character: keep what is whole.
    if utf8_error.reason == "unexpected end of data" and utf8_error.start >= len(raw) - 3:
        try:
            return raw[: utf8_error.start].decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            pass
    try:
        text = raw.decode("gb18030")
    except UnicodeDecodeError:
        text = None
    if text is not None and _plausible_chinese(text):
        return text, "gb18030"
    bad = raw.decode("utf-8", errors="replace").count("\ufffd")
    if bad * 200 < len(raw):
        raise LoadError(
            name,
            f"is almost UTF-8 but has {bad} invalid byte sequence(s), the first at byte {utf8_error.start}",
            "Fix or re-save the file as UTF-8.",
        )
    raise LoadError(name, "is not UTF-8 or GB18030/GBK text (undecodable bytes)", _UTF8_HINT)


def _is_common(ch: str) -> bool:
    """True for characters Chinese report text is made of (beyond ASCII)."""
    o = ord(ch)
    if (
        0x2000 <= o <= 0x206F  # general punctuation: “”‘’…—
        or 0x3000 <= o <= 0x303F  # CJK symbols and punctuation: 、。《》「」
        or 0xFF00 <= o <= 0xFFEF  # full-width forms: ，：（）
        or 0x2460 <= o <= 0x24FF  # ①②③
        or 0x2160 <= o <= 0x217F  # Roman numerals
        or o in (0xB7, 0xD7, 0xF7, 0xB0, 0xA0, 0x2103, 0x203B, 0x2236)
    ):
        return True
    try:
        ch.encode("gb2312")  # the 6,763 everyday hanzi plus common symbols
    except UnicodeEncodeError:
        return False
    return True


def _plausible_chinese(text: str) -> bool:
    """Whether GB18030-decoded ``text`` reads as Chinese rather than mis-decoded bytes.

    Real reports use everyday (GB2312) characters almost exclusively; bytes from
    another encoding decoded as GB18030 land mostly in the rare extension areas,
    in the private-use area, or in C1 controls.
    """
    non_ascii = 0
    common = 0
    for ch in text:
        o = ord(ch)
        if o < 0x80:
            continue
        if ch == "\ufffd" or 0xE000 <= o <= 0xF8FF or 0x80 <= o <= 0x9F or o >= 0xF0000:
            return False
        non_ascii += 1
        if _is_common(ch):
            common += 1
    return non_ascii == 0 or common >= 0.9 * non_ascii


# --- markdown ----------------------------------------------------------------------

_MD_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)
_MD_IMAGE_OR_LINK = re.compile(r"!?\[([^\]\n]*)\]\([^)\n]*\)")
_MD_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_MD_STAR = re.compile(r"\*(?=[^\s*])([^*\n]+?)(?<=[^\s*])\*")
_MD_UNDERSCORE = re.compile(r"(?<![\w_])_(?=[^\s_])([^_\n]+?)(?<=[^\s_])_(?![\w_])")
_MD_RULE = re.compile(r"^[ \t]*(?:[-=*_][ \t]*){3,}$\n?", re.MULTILINE)
_MD_TABLE_RULE = re.compile(
    r"^[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$\n?", re.MULTILINE
)


def strip_markdown(text: str) -> str:
    """Remove markdown markup, keep the words.

    Heading marks, ``*``/``_`` emphasis, link and image syntax (``[t](u)`` → ``t``),
    horizontal rules and table alignment rows go; everything else stays as is.

    >>> strip_markdown("## 一、总体要求\\n**重点**工作见[通知](http://x.cn)")
    '一、总体要求\\n重点工作见通知'
    """
    text = _MD_HEADING.sub(r"\1", text)
    text = _MD_IMAGE_OR_LINK.sub(r"\1", text)
    text = _MD_TABLE_RULE.sub("", text)
    text = _MD_RULE.sub("", text)
    text = _MD_STRONG.sub(r"\2", text)
    text = _MD_STAR.sub(r"\1", text)
    return _MD_UNDERSCORE.sub(r"\1", text)


# --- HTML --------------------------------------------------------------------------

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_DROP_TAGS = ("script", "style", "noscript", "nav", "header", "footer", "aside", "form", "iframe",
              "template", "svg", "button", "select", "head")  # fmt: skip
_BLOCK_TAGS = frozenset(
    {"p", "div", "li", "ul", "ol", "table", "thead", "tbody", "tfoot", "tr", "td", "th",
     "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "main", "blockquote",
     "dl", "dt", "dd", "figure", "figcaption", "address", "center", "hr", "caption"}
)  # fmt: skip
# id/class words that mark page chrome. Parts of a hyphenated class ("main-nav") count;
# the ambiguous ones ("position-relative" is a CSS utility) only as the whole token.
_CHROME_PART = re.compile(
    r"breadcrumbs?|crumbs?|nav|navbar|navigation|menu|menus|menubar|submenu|footer|share|bdshare|"
    r"toolbar|sidebar|topbar",
    re.IGNORECASE,
)
_CHROME_TOKEN = re.compile(r"position|location|dqwz|weizhi|bread|foot|header|side|tools", re.IGNORECASE)
_KEEP_TAGS = frozenset({"html", "body", "main", "article"})
_WS = re.compile(r"[ \t\n\r\f\v]+")
# A source line break between two Chinese characters is layout, not a word gap.
_CJK_BREAK = re.compile(
    r"(?<=[\u3000-\u9fff\uff00-\uffef])[ \t]*[\r\n][ \t\r\n]*(?=[\u3000-\u9fff\uff00-\uffef])"
)


def _html_decode(name: str, raw: bytes) -> tuple[str, str]:
    m = _META_CHARSET.search(raw[:4096])
    if m:
        declared = m.group(1).decode("ascii", "ignore").lower()
        if declared in ("gb2312", "gbk", "gb_2312-80", "x-gbk", "gb18030", "cp936"):
            declared = "gb18030"  # the superset: pages labelled gb2312 often use GBK characters
        try:
            codecs.lookup(declared)
        except LookupError:
            declared = ""
        if declared:
            data = raw[len(codecs.BOM_UTF8) :] if raw.startswith(codecs.BOM_UTF8) else raw
            try:
                return data.decode(declared), codecs.lookup(declared).name
            except UnicodeDecodeError:
                pass  # the label lies; fall back to detection
    return decode_bytes(raw, name)


def _is_chrome(el: Tag) -> bool:
    attrs = el.attrs or {}
    words: list[str] = []
    ident = attrs.get("id")
    if isinstance(ident, str):
        words.append(ident)
    cls = attrs.get("class")
    if isinstance(cls, str):
        words.extend(cls.split())
    elif isinstance(cls, list):
        words.extend(str(c) for c in cls)
    for w in words:
        if _CHROME_TOKEN.fullmatch(w):
            return True
        if any(_CHROME_PART.fullmatch(part) for part in re.split(r"[-_]+", w) if part):
            return True
    return False


def _html_text(name: str, raw: bytes) -> tuple[str, str, str | None]:
    from bs4 import BeautifulSoup  # here, not at import: a process that only answers never parses HTML

    decoded, encoding = _html_decode(name, raw)
    soup = BeautifulSoup(decoded, "lxml")
    title_el = soup.title
    title = _WS.sub(" ", title_el.get_text()).strip() if title_el else ""
    for el in soup.find_all(_DROP_TAGS):
        el.decompose()
    root = soup.body or soup
    total = len(root.get_text())
    for el in root.find_all(_is_chrome):
        if el.decomposed or el.name in _KEEP_TAGS:
            continue
        if len(el.get_text()) > max(200, total // 2):
            continue  # a class like "has-sidebar" on the page wrapper: keep the content
        el.decompose()
    parts: list[str] = []
    _emit(root, parts)
    lines = (_WS.sub(" ", line).strip() for line in "".join(parts).split("\n"))
    text = "\n".join(line for line in lines if line)
    return text, encoding, title or None


def _emit(node: Tag | BeautifulSoup, out: list[str]) -> None:
    """Append the text of ``node``'s children to ``out``, with ``"\\n"`` around blocks."""
    from bs4.element import NavigableString, PreformattedString, Tag

    for child in node.children:
        if isinstance(child, PreformattedString):
            continue  # comments, doctype, CDATA
        if isinstance(child, NavigableString):
            out.append(_WS.sub(" ", _CJK_BREAK.sub("", str(child))))
        elif isinstance(child, Tag):
            tag = child.name
            if tag == "br":
                out.append("\n")
            elif tag == "pre":
                out.append("\n" + child.get_text() + "\n")
            elif tag == "tr":
                out.append("\n" + _row_text(child) + "\n")
            elif tag in _BLOCK_TAGS:  # td/th land here only outside a row (broken markup)
                out.append("\n")
                _emit(child, out)
                out.append("\n")
            else:
                _emit(child, out)


def _row_text(tr: Tag) -> str:
    """A table row as ``cell | cell``; rows of layout tables holding blocks stay as lines."""
    cells: list[str] = []
    multiline = False
    for cell in tr.find_all(["td", "th"], recursive=False):
        buf: list[str] = []
        _emit(cell, buf)
        lines = [s for s in (_WS.sub(" ", x).strip() for x in "".join(buf).split("\n")) if s]
        if len(lines) > 1:
            multiline = True
        if lines:
            cells.append("\n".join(lines))
    return ("\n" if multiline else " | ").join(cells)


# --- PDF and DOCX ------------------------------------------------------------------


def _pdf_text(name: str, raw: bytes) -> str:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError(name, "is a password-protected PDF", "Save an unprotected copy and load that.")
        pages = [page.extract_text() or "" for page in reader.pages]
    except LoadError:
        raise
    except Exception as e:  # pypdf raises many types on broken files
        raise LoadError(
            name, f"is not a readable PDF ({type(e).__name__}: {e})", "Re-download or re-export the PDF."
        ) from e
    return _newlines("\n".join(pages))


def _docx_text(name: str, raw: bytes) -> str:
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(raw))
        lines: list[str] = []
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                lines.extend(_docx_table_rows(block))
            else:
                lines.append(block.text)
    except Exception as e:  # python-docx raises zipfile/KeyError/lxml errors on broken files
        raise LoadError(
            name,
            f"is not a readable DOCX ({type(e).__name__}: {e})",
            "Open and re-save it in Word/WPS as .docx.",
        ) from e
    return _newlines("\n".join(lines))


def _docx_table_rows(table: Table) -> list[str]:
    rows: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        last = None
        for cell in row.cells:
            if cell._tc is last:  # a merged cell is returned once per grid column
                continue
            last = cell._tc
            value = " ".join(cell.text.split())
            if value:
                cells.append(value)
        if cells:
            rows.append(" | ".join(cells))
    return rows
