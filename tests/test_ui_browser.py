"""End to end in headless Chromium: ``streamlit run`` on a free port, ask, open a citation.

Needs Debian's ``chromium`` and ``chromium-driver`` (and ``fonts-noto-cjk`` for
readable screenshots); skips cleanly without them.  Screenshots go to a temp folder;
``make screenshots`` sets ``SCREENSHOT_DIR=docs`` to refresh the committed ones
(tests never change tracked files).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from test_ui_app import APP, QUOTE, ROOT, SEED_Q, offline_env, seed_index

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
REPORTS = ROOT / "evals" / "reports"  # the committed eval report the dashboard shows
CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1400,1200", "--lang=zh-CN")


def _driver_path() -> str | None:
    found = shutil.which("chromedriver")
    return found or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").is_file() else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"streamlit did not serve within {timeout}s:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def browser_data(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data dir the app serves: a fresh copy of the seeded index."""
    if not CHROMIUM.is_file() or _driver_path() is None:
        pytest.skip("needs /usr/bin/chromium and chromedriver: apt-get install -y chromium chromium-driver")
    pytest.importorskip("selenium")
    return seed_index(request.config, tmp_path_factory)


@pytest.fixture(scope="module")
def server(browser_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = browser_data
    env = offline_env(data)
    env["ASSISTANT_EVAL_REPORTS"] = os.environ.get("ASSISTANT_EVAL_REPORTS") or str(REPORTS)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
             "--browser.gatherUsageStats", "false", "--browser.serverAddress", "localhost",
             "--server.address", "127.0.0.1", "--server.port", str(port)],
            cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_healthy(url, proc, log)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: ``SCREENSHOT_DIR`` (``make screenshots``), else a temp folder."""
    out = Path(os.environ["SCREENSHOT_DIR"]) if os.environ.get("SCREENSHOT_DIR") else tmp_path / "shots"
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[WebDriver]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = str(CHROMIUM)
    for flag in (*CHROME_FLAGS, f"--user-data-dir={tmp_path / 'chrome-profile'}"):
        opts.add_argument(flag)
    d = webdriver.Chrome(service=Service(executable_path=_driver_path()), options=opts)
    d.set_page_load_timeout(60)
    try:
        yield d
    finally:
        d.quit()


def test_ask_open_a_citation_and_see_the_highlighted_quote(server: str, driver: WebDriver, shots: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 120)
    driver.get(server)
    box = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "[data-testid='stChatInput'] textarea")))
    box.send_keys(SEED_Q)
    box.send_keys(Keys.ENTER)
    answer = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "div.answer-text")))
    wait.until(lambda d: "3.15" in d.find_element(By.CSS_SELECTOR, "div.answer-text").text)
    assert "3.15" in answer.text

    chip = driver.find_element(By.CSS_SELECTOR, "a.cite-chip")
    assert chip.text == "1" and QUOTE in (chip.get_attribute("title") or "")
    handles = driver.window_handles
    chip.click()  # jumps to the sources panel, in the same tab
    assert driver.window_handles == handles

    summaries = driver.find_elements(By.CSS_SELECTOR, "[data-testid='stExpander'] summary")
    source = next(s for s in summaries if "[1] " in s.text)  # the text starts with the icon's name
    assert "丽水市" in source.text
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", source)
    source.click()
    wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "mark.cite-quote")))
    # The mark is found while the expander is still opening (its text reads '' until it has): a
    # fresh-clone CI run on a busy machine failed here. Wait for the text itself.
    wait.until(lambda d: QUOTE in d.find_element(By.CSS_SELECTOR, "mark.cite-quote").text)
    mark = driver.find_element(By.CSS_SELECTOR, "mark.cite-quote")
    assert QUOTE in mark.text
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", answer)
    time.sleep(0.5)  # let the expander animation settle before the screenshot
    assert driver.save_screenshot(str(shots / "screenshot-chat.png"))


def test_eval_dashboard_screenshot(server: str, driver: WebDriver, shots: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from assistant.ui.evals_view import latest_eval

    wait = WebDriverWait(driver, 60)
    driver.get(f"{server}/?page=eval")
    wait.until(lambda d: "评测" in d.find_element(By.TAG_NAME, "body").text)
    report = latest_eval(Path(os.environ.get("ASSISTANT_EVAL_REPORTS") or REPORTS))
    if report is None:
        wait.until(lambda d: "还没有评测报告" in d.find_element(By.TAG_NAME, "body").text)
        pytest.skip("no eval report under evals/reports: run `assistant eval` first for the screenshot")
    wait.until(lambda d: f"最新报告 {report.name}" in d.find_element(By.TAG_NAME, "body").text)
    if report.charts:
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "[data-testid='stImage'] img")) >= 1)
    driver.set_window_size(1400, 2300)  # the whole dashboard down to the charts
    time.sleep(1.5)  # images and data grids paint asynchronously
    assert driver.save_screenshot(str(shots / "screenshot-eval.png"))



def test_indicators_page_table_chart_and_source_sentence(server: str, browser_data: Path, driver: WebDriver,
                                                           shots: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from assistant.config import IndexSettings
    from assistant.indicator_store import IndicatorStore
    from assistant.ui.indicators_view import source_link

    wait = WebDriverWait(driver, 120)
    driver.get(f"{server}/?page=indicators&metric=居民健康素养水平")
    wait.until(lambda d: "条记录" in d.find_element(By.TAG_NAME, "body").text)
    wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "[data-testid='stDataFrame']")))
    wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "[data-testid='stVegaLiteChart']")))
    body = driver.find_element(By.TAG_NAME, "body").text
    assert "居民健康素养水平（单位：%）" in body and "⬇ CSV" in body and "⬇ Excel" in body
    # Each value's 查看原文 link (source_link) opens the viewer on its record's sentence.
    store = IndicatorStore.for_index(IndexSettings(data_dir=browser_data))
    record = next(r for r in store.records(city="东莞市") if r.indicator.metric == "市民健康素养水平")
    store.close()
    driver.get(f"{server}/{source_link(record.id)}&metric=居民健康素养水平")
    wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "mark.cite-quote")))
    wait.until(lambda d: "40.75%" in d.find_element(By.CSS_SELECTOR, "mark.cite-quote").text)  # opened
    mark = driver.find_element(By.CSS_SELECTOR, "mark.cite-quote")
    assert record.indicator.sentence in mark.text and "40.75%" in mark.text
    wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "[data-testid='stVegaLiteChart']")))
    driver.set_window_size(1400, 1500)
    time.sleep(1.5)  # the data grid and the chart paint asynchronously
    assert driver.save_screenshot(str(shots / "screenshot-indicators.png"))
