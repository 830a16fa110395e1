"""Prompt templates are files (``assistant/prompts/<name>.md``, shipped in the package),
loaded by name and checked at load time.  A user may override any of them with a file of
the same name in the ``PROMPTS_DIR`` setting's folder.

Templates use ``str.format`` syntax: ``{name}`` placeholders, literal braces doubled
(``{{`` / ``}}``).  Only bare identifiers are allowed as placeholders: no positional
``{}``, attribute access, indexing, conversions or format specs.

>>> lib = PromptLibrary()                      # packaged templates only
>>> "{question}" in lib.get("qa").text
True
"""

from __future__ import annotations

import string
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import PromptError
from ..resources import prompt_path

#: Placeholders each known template must use: exactly these, no more, no fewer.
EXPECTED_VARIABLES: dict[str, frozenset[str]] = {
    "system": frozenset(),
    "qa": frozenset({"question", "sources", "valid_markers", "filters"}),
    "comparison": frozenset({"question", "sources", "valid_markers", "filters"}),
    "condense": frozenset({"history", "question"}),
    # Questions the indicator table answers: the matched records as a compact table (assistant.table_answer).
    "figures": frozenset({"question", "sources", "valid_markers", "filters", "figures"}),
}

_FORMATTER = string.Formatter()


@dataclass(frozen=True)
class PromptTemplate:
    """A loaded template. ``variables`` are the placeholder names it uses."""

    name: str
    text: str
    variables: frozenset[str]
    source: str = ""  # the file it came from, for error messages

    def render(self, **values: object) -> str:
        """Fill every placeholder. Missing or unknown variables raise :class:`PromptError`.

        >>> PromptTemplate("t", "问：{question}", frozenset({"question"})).render(question="多少？")
        '问：多少？'
        """
        where = self.source or self.name
        missing = self.variables - values.keys()
        unknown = values.keys() - self.variables
        if missing:
            raise PromptError(f"Prompt {where!s} needs values for {_names(missing)}.",
                              "Pass every placeholder the template uses to render().")
        if unknown:
            raise PromptError(f"Prompt {where!s} has no placeholder for {_names(unknown)}.",
                              f"The template uses {_names(self.variables) or 'no placeholders'}.")
        # Substituted values are never re-parsed, so braces inside sources are safe.
        return self.text.format(**{k: str(v) for k, v in values.items()})


def _names(names: frozenset[str] | set[str]) -> str:
    return ", ".join(f"{{{n}}}" for n in sorted(names))


def parse_variables(text: str, source: str) -> frozenset[str]:
    """Placeholder names in ``text``; :class:`PromptError` naming ``source`` if malformed."""
    names: set[str] = set()
    try:
        parsed = list(_FORMATTER.parse(text))
    except ValueError as exc:  # a lone "{" or "}"
        raise PromptError(f"Prompt {source} is not a valid template: {exc}.",
                          "Double literal braces: write {{ and }}.") from None
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            suffix = (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            shown = "{" + field + suffix + "}"
            raise PromptError(f"Prompt {source} has an invalid placeholder {shown}.",
                              "Use plain {name} placeholders; double literal braces ({{ and }}).")
        names.add(field)
    return frozenset(names)


def load_prompt(name: str, prompts_dir: Path | str,
                expected: frozenset[str] | None = None) -> PromptTemplate:
    """Read ``<prompts_dir>/<name>.md`` and check its placeholders.

    For the known names (``system``, ``qa``, ``comparison``, ``condense``, ``figures``) the set of
    placeholders must match :data:`EXPECTED_VARIABLES` exactly; pass ``expected`` to
    check another template.  Raises :class:`PromptError` naming the file otherwise.
    """
    path = Path(prompts_dir) / f"{name}.md"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromptError(f"Prompt template {path} not found.",
                          "Check PROMPTS_DIR; it must contain system.md, qa.md, comparison.md, "
                          "condense.md and figures.md.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptError(f"Prompt template {path} could not be read: {type(exc).__name__}.",
                          "Save it as UTF-8 text.") from None
    text = text.strip()
    variables = parse_variables(text, str(path))
    want = expected if expected is not None else EXPECTED_VARIABLES.get(name)
    if want is not None:
        unknown, missing = variables - want, want - variables
        if unknown:
            raise PromptError(f"Prompt template {path} uses unknown placeholders {_names(unknown)}.",
                              f"Allowed: {_names(want) or 'none'}; double literal braces ({{{{ and }}}}).")
        if missing:
            raise PromptError(f"Prompt template {path} lacks placeholders {_names(missing)}.",
                              "Add them: the pipeline passes these values.")
    return PromptTemplate(name=name, text=text, variables=variables, source=str(path))


class PromptLibrary:
    """Loads templates on first use and keeps them: from ``override_dir`` when it holds a
    file of that name, else the one shipped in this package.

    Cheap to construct; :meth:`warm_up` loads (and so validates) every known prompt.
    Thread-safe.
    """

    def __init__(self, override_dir: Path | str | None = None) -> None:
        self.override_dir = Path(override_dir).expanduser() if override_dir else None
        if self.override_dir is not None and not self.override_dir.is_dir():
            raise PromptError(f"PROMPTS_DIR {self.override_dir} is not a folder.",
                              "Point PROMPTS_DIR at a folder of .md templates, or unset it to use the packaged ones.")
        self._cache: dict[str, PromptTemplate] = {}
        self._lock = threading.Lock()

    def path_of(self, name: str) -> Path:
        """The file a template is read from (an override, or the packaged one)."""
        if self.override_dir is not None and (self.override_dir / f"{name}.md").is_file():
            return self.override_dir
        return prompt_path(name).parent

    def get(self, name: str) -> PromptTemplate:
        with self._lock:
            tpl = self._cache.get(name)
            if tpl is None:
                tpl = load_prompt(name, self.path_of(name))
                self._cache[name] = tpl
            return tpl

    def render(self, name: str, **values: object) -> str:
        return self.get(name).render(**values)

    def warm_up(self) -> None:
        """Load every known template now, so a broken file fails at start-up."""
        for name in EXPECTED_VARIABLES:
            self.get(name)

    def __repr__(self) -> str:
        return f"PromptLibrary(override_dir={str(self.override_dir) if self.override_dir else None!r})"
