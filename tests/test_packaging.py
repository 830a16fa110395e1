"""The product installed as a user gets it: a wheel, installed non-editable into a fresh
virtualenv, run from an empty folder with no source checkout on ``sys.path``.

The wheel is built from a copy of the tracked files. The fresh venv gets the wheel with
``--no-deps`` and reaches the (already installed) dependencies through a ``.pth`` line
pointing at this venv's site-packages: the editable install of the checkout is not
visible from there (nested ``.pth`` files are not processed), so ``import assistant``
can only find the wheel's copy, which the first test checks.

Run with ``pytest -m packaging``; it takes about a minute.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.packaging, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
LISHUI = "000_02aee6cc86416636.txt"


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    base = tmp_path_factory.mktemp("packaging")
    src = base / "src"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for rel in filter(None, tracked.decode().split("\0")):
        p = ROOT / rel
        if p.is_symlink() or p.is_file():
            dst = src / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if p.is_symlink():
                os.symlink(os.readlink(p), dst)
            else:
                shutil.copy2(p, dst)
    for new in ("assistant",):  # files not committed yet still belong to the package under test
        for p in (ROOT / new).rglob("*"):
            if p.is_file() and "__pycache__" not in p.parts and not (src / p.relative_to(ROOT)).exists():
                (src / p.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(p, src / p.relative_to(ROOT))
    wheels = base / "wheels"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(wheels),
          str(src)], cwd=base, env=env)
    (wheel,) = wheels.glob("assistant-*.whl")
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=base, env=env)
    py = venv / "bin" / "python"
    purelib = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        cwd=base, env=env).stdout.strip())
    (purelib / "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    _run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile", "--target", str(purelib),
          str(wheel)], cwd=base, env=env)
    # --target puts the console script under purelib/bin; put it where a venv keeps it.
    script = venv / "bin" / "assistant"
    script.write_text(f"#!{py}\nimport sys\nfrom assistant.cli import app\nsys.exit(app())\n", encoding="utf-8")
    script.chmod(0o755)
    work = base / "empty"
    work.mkdir()
    reports = base / "my_reports"
    reports.mkdir()
    shutil.copy2(ROOT / "seeds" / LISHUI, reports / LISHUI)
    yield {"py": py, "cli": script, "work": work, "reports": reports, "base": base, "wheel": wheel,
           "purelib": purelib}


def _env(paths: dict[str, Path]) -> dict[str, str]:
    drop = ("PYTHON", "VIRTUAL_ENV", "OPENAI_", "CHROMA_", "ASSISTANT_", "LLM_", "EMBEDDING_", "PROMPTS_DIR")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(XDG_DATA_HOME=str(paths["base"] / "xdg-data"), HOME=str(paths["base"] / "home"),
               OMP_WAIT_POLICY="PASSIVE", COLUMNS="120")
    return env


def test_the_wheel_holds_prompts_seeds_and_gold_and_imports_from_site_packages(installed: dict[str, Path]) -> None:
    import zipfile

    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    for need in ("assistant/prompts/system.md", "assistant/prompts/qa.md", f"assistant/data/seeds/{LISHUI}",
                 "assistant/data/gazetteer.tsv", "assistant/data/districts.tsv", "assistant/data/sentence_model.json",
                 "assistant/evals/data/gold.jsonl", "assistant/evals/data/baseline.json", "assistant/py.typed",
                 "assistant/prompts/figures.md", "assistant/evals/data/indicators_gold.jsonl",
                 "assistant/data/background.txt"):
        assert need in names, need
    # Another embedder than the one the sentence model was fitted with measures its similarity
    # floor from the wheel's background sentences.
    floor = ("from assistant.embedding import similarity_floor; from assistant.testing import HashEmbedder; "
             "print(similarity_floor(HashEmbedder()))")
    assert 0.0 < float(_run([str(installed["py"]), "-c", floor], cwd=installed["work"],
                            env=_env(installed)).stdout.strip()) < 1.0
    code = ("import sys, assistant, assistant.resources as r; print(assistant.__file__); "
            "print(r.seeds_dir()); print(any('/work/main' == p or p.endswith('/main') for p in sys.path))")
    out = _run([str(installed["py"]), "-c", code], cwd=installed["work"], env=_env(installed)).stdout.split("\n")
    assert out[0].startswith(str(installed["purelib"])), out  # the wheel's copy, not the checkout
    assert Path(out[1]).is_dir() and out[1].startswith(str(installed["purelib"]))
    assert out[2] == "False"


def test_ingest_ask_and_eval_from_an_empty_folder(installed: dict[str, Path]) -> None:
    env, work, cli = _env(installed), installed["work"], str(installed["cli"])
    bare = subprocess.run([cli, "ingest"], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert bare.returncode == 2 and "--demo" in bare.stderr  # says what to do, indexes nothing
    out = _run([cli, "ingest", str(installed["reports"])], cwd=work, env=env).stdout
    assert "added" in out
    data = installed["base"] / "xdg-data" / "health-report-assistant"
    assert (data / "chroma").is_dir()  # the user's data folder, not site-packages
    assert not list(installed["purelib"].glob("**/chroma.sqlite3"))
    ans = json.loads(_run([cli, "ask", "丽水市2019年市级医院排队平均时间缩短到多少?", "--json"],
                          cwd=work, env=env).stdout)
    assert "3.15分钟" in ans["text"] and ans["citations"] and not ans["refused"]

    gold = work / "small_gold.jsonl"
    lines = [line for line in (ROOT / "evals" / "gold.jsonl").read_text(encoding="utf-8").splitlines()
             if f'"doc": "{LISHUI}"' in line][:3]
    gold.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _run([cli, "eval", "--gold", str(gold), "--corpus", str(installed["reports"]), "--no-baselines"],
         cwd=work, env=env)
    (report,) = (work / "evals" / "reports").glob("2*")  # under the current directory
    metrics = json.loads((report / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["config"]["n_items"] == 3 and metrics["config"]["versions"]["chromadb"]
    assert metrics["overall"]["fact_recall"] > 0
    docs = json.loads(_run([cli, "docs", "--json"], cwd=work, env=env).stdout)
    assert [Path(d["path"]).name for d in docs] == [LISHUI]  # the eval used its own index


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_ui_serves_and_answers(installed: dict[str, Path]) -> None:
    env, work = _env(installed), installed["work"]
    _run([str(installed["cli"]), "ingest", str(installed["reports"])], cwd=work, env=env)
    port = _free_port()
    proc = subprocess.Popen([str(installed["cli"]), "ui", "--port", str(port)], cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                assert time.monotonic() < deadline, "the UI did not serve within 90 s"
                time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            assert r.status == 200 and b"<div id=\"root\">" in r.read()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    # The installed app script answers a question (Streamlit's own test runner, in the fresh venv).
    code = ("from streamlit.testing.v1 import AppTest; from importlib.util import find_spec; "
            "at = AppTest.from_file(find_spec('assistant.ui.app').origin, default_timeout=180); at.run(); "
            "at.chat_input[0].set_value('丽水市2019年市级医院排队平均时间缩短到多少?').run(); "
            "print('EXC', at.exception); print('\\n'.join(x.value for x in at.markdown))")
    shown = _run([str(installed["py"]), "-c", code], cwd=work, env=env, timeout=300).stdout
    assert "EXC ElementList()" in shown or "EXC []" in shown, shown[-2000:]
    assert "3.15分钟" in shown
