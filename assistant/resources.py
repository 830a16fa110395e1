"""Files shipped inside the package, located with :mod:`importlib.resources`.

They work the same from a source checkout and from an installed wheel:

* the prompt templates (``assistant/prompts/*.md``),
* the demo corpus: the five seed reports (``assistant/data/seeds/``),
* the eval gold set, the indicator gold set and the floors (``assistant/evals/data/``).

Nothing here depends on the current directory or on where the package was installed from.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def _path(package: str, *parts: str) -> Path:
    # Installed as files (wheel or checkout): a real path. A zipped install is not supported.
    return Path(str(files(package).joinpath(*parts)))


def seeds_dir() -> Path:
    """The bundled demo corpus (five municipal reports): ``assistant ingest --demo``."""
    return _path("assistant", "data", "seeds")


def gold_path() -> Path:
    """The bundled eval gold set over :func:`seeds_dir`."""
    return _path("assistant.evals", "data", "gold.jsonl")


def indicator_gold_path() -> Path:
    """The hand-checked indicator records of :func:`seeds_dir` (``docs/indicators.md``)."""
    return _path("assistant.evals", "data", "indicators_gold.jsonl")


def baseline_path() -> Path:
    """The eval floors that ``assistant eval --check`` gates on, for :func:`gold_path`."""
    return _path("assistant.evals", "data", "baseline.json")


def prompt_path(name: str) -> Path:
    """A packaged prompt template (``system``, ``qa``, ``comparison``, ``condense``)."""
    return _path("assistant.prompts", f"{name}.md")


__all__ = ["baseline_path", "gold_path", "indicator_gold_path", "prompt_path", "seeds_dir"]
