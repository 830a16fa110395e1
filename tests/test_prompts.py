"""Prompt templates: the shipped files load, render, and bad templates fail loudly."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.errors import PromptError
from assistant.prompts import EXPECTED_VARIABLES, PromptLibrary, PromptTemplate, load_prompt
from assistant.resources import prompt_path

PROMPTS = prompt_path("qa").parent
QA_VALUES = {"question": "东莞市2024年家庭医生签约率是多少？",
             "sources": '<source id="1">签约率达45.2%。{不是占位符}</source>',
             "valid_markers": "[1]", "filters": "城市=东莞市"}


@pytest.mark.parametrize("name", sorted(EXPECTED_VARIABLES))
def test_shipped_prompts_load_with_expected_placeholders(name: str) -> None:
    tpl = load_prompt(name, PROMPTS)
    assert tpl.name == name
    assert tpl.variables == EXPECTED_VARIABLES[name]
    assert tpl.text and tpl.text == tpl.text.strip()


def test_system_prompt_carries_the_contract() -> None:
    text = load_prompt("system", PROMPTS).text
    for must in ("所提供的报告中没有找到", "[1]", "[2][3]", "<source>", "语言"):
        assert must in text
    assert text.startswith("你是")  # Chinese first


def test_render_fills_placeholders() -> None:
    lib = PromptLibrary()
    out = lib.render("qa", **QA_VALUES)
    for value in QA_VALUES.values():
        assert value in out  # braces inside values are not re-parsed
    assert "{" + "question}" not in out
    assert lib.render("system") == load_prompt("system", PROMPTS).text
    condensed = lib.render("condense", history="用户：东莞市2024年签约率？\n助手：45.2%[1]。",
                           question="那丽水呢？")
    assert "那丽水呢？" in condensed and "东莞市2024年签约率" in condensed


def test_library_caches_and_warms_up(tmp_path: Path) -> None:
    for name in EXPECTED_VARIABLES:
        (tmp_path / f"{name}.md").write_text((PROMPTS / f"{name}.md").read_text("utf-8"), "utf-8")
    lib = PromptLibrary(tmp_path)
    lib.warm_up()
    first = lib.get("qa")
    (tmp_path / "qa.md").unlink()
    assert lib.get("qa") is first  # cached per library instance
    # Without an override file, the packaged template is used.
    assert PromptLibrary(tmp_path).get("qa").source == str(PROMPTS / "qa.md")


def test_an_override_file_wins_and_a_missing_folder_is_named(tmp_path: Path) -> None:
    (tmp_path / "system.md").write_text("只依据资料回答。", "utf-8")
    lib = PromptLibrary(tmp_path)
    assert lib.render("system") == "只依据资料回答。"
    assert lib.get("qa").source == str(PROMPTS / "qa.md")  # not overridden
    with pytest.raises(PromptError, match=r"PROMPTS_DIR .*nowhere"):
        PromptLibrary(tmp_path / "nowhere")


def test_a_broken_override_fails_at_warm_up_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "qa.md").write_text("问题：{question} {oops}", "utf-8")
    with pytest.raises(PromptError, match=r"qa\.md.*\{oops\}"):
        PromptLibrary(tmp_path).warm_up()


def test_missing_variable_at_render() -> None:
    tpl = load_prompt("condense", PROMPTS)
    with pytest.raises(PromptError, match=r"\{history\}"):
        tpl.render(question="那丽水呢？")


def test_unknown_variable_at_render() -> None:
    with pytest.raises(PromptError, match=r"\{city\}"):
        load_prompt("condense", PROMPTS).render(history="", question="?", city="东莞")


def test_unknown_placeholder_in_template_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "qa.md"
    path.write_text("{question} {sources} {valid_markers} {filters} {cityy}", "utf-8")
    with pytest.raises(PromptError) as info:
        load_prompt("qa", tmp_path)
    assert str(path) in str(info.value) and "{cityy}" in str(info.value)


def test_missing_placeholder_in_template_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "condense.md"
    path.write_text("改写：{question}", "utf-8")
    with pytest.raises(PromptError) as info:
        load_prompt("condense", tmp_path)
    assert str(path) in str(info.value) and "{history}" in str(info.value)


@pytest.mark.parametrize("text", ["单个 { 括号", "多余 } 括号", "{0}", "{}", "{q.attr}", "{q!r}", "{q:>10}"])
def test_malformed_templates_are_rejected(tmp_path: Path, text: str) -> None:
    (tmp_path / "custom.md").write_text(text, "utf-8")
    with pytest.raises(PromptError, match=r"custom\.md"):
        load_prompt("custom", tmp_path)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(PromptError) as info:
        load_prompt("system", tmp_path)
    assert str(tmp_path / "system.md") in str(info.value)


def test_doubled_braces_are_literal(tmp_path: Path) -> None:
    (tmp_path / "custom.md").write_text('输出 JSON：{{"q": "{question}"}}', "utf-8")
    tpl = load_prompt("custom", tmp_path, expected=frozenset({"question"}))
    assert tpl.variables == {"question"}
    assert tpl.render(question="几") == '输出 JSON：{"q": "几"}'
    assert PromptTemplate("x", "无", frozenset()).render() == "无"
