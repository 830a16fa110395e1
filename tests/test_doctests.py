"""The examples in the package's docstrings are run: a docstring that shows what a function does
must stay true when the function changes."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import assistant

# Importing these runs them: the command line, and the Streamlit page (which holds no examples).
SKIP = ("assistant.__main__", "assistant.ui.app")
MODULES = sorted(m.name for m in pkgutil.walk_packages(assistant.__path__, "assistant.") if m.name not in SKIP)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str) -> None:
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(importlib.import_module(name), optionflags=flags, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed (run it with -s to see them)"
