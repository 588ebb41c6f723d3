"""The explorer in a real browser (headless Debian chromium through selenium).

Starts the app on a free port against the test store, opens every page, selects a run, brushes
and thresholds units on States, runs an ablation on Intervene and checks the counterfactual
through the page's data, runs an analysis in the background, and checks that traversal and
bad-run URLs get an error page while the server keeps answering. Screenshots go to
``$PROBE_ARTIFACTS`` (default: the test's tmp folder).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
selenium = pytest.importorskip("selenium")
pytestmark = pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)),
                                reason="needs chromium and chromedriver (apt-get install chromium chromium-driver)")

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

TIMEOUT = 60  # seconds per wait: the CI machine is shared and small


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def _raw_get(server: str, path: str) -> tuple[int, str]:
    # urllib would normalise the dots away; send the path exactly as an attacker would.
    import http.client

    host, port = server.rsplit("/", 1)[-1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", path)
    r = conn.getresponse()
    return r.status, r.read().decode(errors="replace")


@pytest.fixture(scope="module")
def server(store):
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("_serve.py")), str(store), str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if _get(url + "/")[0] == 200:
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("the explorer did not start: " + proc.stdout.read().decode()[-2000:])
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1400,1100"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=opts)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = Path(os.environ.get("PROBE_ARTIFACTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _wait(driver, fn, message):
    try:
        return WebDriverWait(driver, TIMEOUT, poll_frequency=0.2,
                             ignored_exceptions=(StaleElementReferenceException,)).until(lambda d: fn(d), message=message)
    except Exception:
        folder = Path(os.environ.get("PROBE_ARTIFACTS") or "/tmp")
        driver.save_screenshot(str(folder / "app_failure.png"))
        raise


def _text(driver, css) -> str:
    """The element's text, or "" while it is missing or being re-rendered by Dash."""
    try:
        els = driver.find_elements(By.CSS_SELECTOR, css)
        return els[0].get_attribute("textContent") if els else ""
    except StaleElementReferenceException:
        return ""


def _act(driver, fn, message):
    """Do ``fn(driver)``, again if Dash re-rendered an element it used while it ran."""
    _wait(driver, lambda d: fn(d) or True, message)


def _nav(driver, page):
    driver.find_element(By.ID, f"app-nav-{page}").click()


def _type(driver, css, text):
    el = driver.find_element(By.CSS_SELECTOR, css)
    el.send_keys(Keys.CONTROL, "a")
    el.send_keys(Keys.BACKSPACE)
    el.send_keys(text, Keys.ENTER)


def test_every_page_works_in_a_browser(server, browser, shots, parity_id):
    d = browser
    # Runs: select the parity run; its curve appears in the comparison.
    d.get(server + "/")
    _wait(d, lambda d: parity_id in _text(d, "#runs-table"), "runs table")
    _act(d, lambda d: next(r for r in d.find_elements(By.CSS_SELECTOR, "#runs-table tr") if parity_id in r.text)
         .find_element(By.CSS_SELECTOR, "input[type=checkbox]").click(), "a click on the run's row")
    _wait(d, lambda d: parity_id in _text(d, "#runs-links"), "selection links")
    _wait(d, lambda d: parity_id in _text(d, "#runs-compare"), "comparison curve")
    d.save_screenshot(str(shots / "runs.png"))

    # Training: opens on the selected run; a checkpoint picked here is used elsewhere.
    _nav(d, "training")
    _wait(d, lambda d: "checkpoints" in _text(d, "#training-graph"), "training figure")
    d.save_screenshot(str(shots / "training.png"))

    # States: a longer input, a brushed range, a threshold.
    _nav(d, "states")
    _wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#states-heatmap .heatmaplayer"), "heatmap")
    _type(d, "#states-length", "16")
    _wait(d, lambda d: "15" in _text(d, "#states-heatmap .xtick") or len(d.find_elements(
        By.CSS_SELECTOR, "#states-heatmap .xaxislayer-above")) and "brush" in _text(d, "#states-units"), "16 steps")
    time.sleep(1)

    def brush(d):
        drag = d.find_elements(By.CSS_SELECTOR, "#states-heatmap .nsewdrag")[0]
        w, h = drag.size["width"], drag.size["height"]
        ActionChains(d).move_to_element_with_offset(drag, -w // 2 + int(0.2 * w), -h // 2 + h // 3) \
            .click_and_hold().move_by_offset(int(0.35 * w), 5).pause(0.2).release().perform()
    _act(d, brush, "a brushed range on the heatmap")
    _wait(d, lambda d: d.find_element(By.ID, "states-t0").get_attribute("value") != "", "brushed range")
    _wait(d, lambda d: "unit(s) above" in _text(d, "#states-units"), "units on in the range")
    before = _text(d, "#states-units")

    def low_threshold(d):
        rail = d.find_element(By.CSS_SELECTOR, "#states-threshold")
        ActionChains(d).move_to_element_with_offset(rail, -rail.size["width"] // 2 + 4, 0).click().perform()
    _act(d, low_threshold, "a click on the threshold's rail")
    _wait(d, lambda d: _text(d, "#states-units") != before and "unit(s) above" in _text(d, "#states-units"),
          "the threshold changes the selection")
    assert _text(d, "#states-error") == ""
    d.save_screenshot(str(shots / "states.png"))
    # A typed input outside the alphabet is an error in the page.
    d.find_element(By.CSS_SELECTOR, "#states-mode input[value=typed]").click()
    _type(d, "#states-text", "01x1")
    d.find_element(By.ID, "states-text-go").click()
    _wait(d, lambda d: "not in the alphabet" in _text(d, "#states-error"), "typed input error")
    d.save_screenshot(str(shots / "states_error.png"))

    # Intervene: zero-ablate every unit at step 3; the trajectory changes from step 3 on only.
    _nav(d, "intervene")
    _wait(d, lambda d: "hook_h" in _text(d, "#intervene-hook"), "hooks")
    _type(d, "#intervene-length", "12")
    _type(d, "#intervene-step", "3")
    _type(d, "#intervene-units", "")
    d.find_element(By.CSS_SELECTOR, "#intervene-op input[value=zero]").click()
    d.find_element(By.ID, "intervene-go").click()
    _wait(d, lambda d: _text(d, "#intervene-data") or _text(d, "#intervene-error"), "counterfactual")
    assert _text(d, "#intervene-error") == ""
    data = json.loads(_text(d, "#intervene-data"))
    assert data["step"] == 3 and data["op"] == "zero"
    assert max(data["diff"][:3]) < 1e-5, data["diff"]
    assert data["diff"][3] > 1e-3, data["diff"]
    d.save_screenshot(str(shots / "intervene.png"))

    # Analyses: uncached runs in the background with progress, then shows; a raising one shows its error.
    d.get(server + "/analyses?analysis=app_test_slow")
    _wait(d, lambda d: d.find_elements(By.ID, "analyses-go"), "analyses page")
    time.sleep(1)
    d.find_element(By.ID, "analyses-go").click()
    _wait(d, lambda d: "42" in _text(d, "#analyses-summary"), "analysis result")
    d.save_screenshot(str(shots / "analyses.png"))
    d.get(server + "/analyses?analysis=app_test_raises")
    _wait(d, lambda d: d.find_elements(By.ID, "analyses-go"), "analyses page")
    time.sleep(1)
    d.find_element(By.ID, "analyses-go").click()
    _wait(d, lambda d: "ZeroDivisionError" in _text(d, "#analyses-error"), "analysis error")

    # Claims.
    _nav(d, "claims")
    _wait(d, lambda d: "PASS" in _text(d, "#claims-table") and "FAIL" in _text(d, "#claims-table"), "claims table")
    d.save_screenshot(str(shots / "claims.png"))

    # Sweeps: the store's sweep, its figure (one line per arch, hidden on x), another metric, a
    # link from the table to a point's run.
    _nav(d, "sweeps")
    _wait(d, lambda d: "tiny" in _text(d, "#sweeps-list") and "arch=gru" in _text(d, "#sweeps-graph")
          and "train.accuracy" in _text(d, "#sweeps-graph"), "the sweep's figure")
    _wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#sweeps-table a"), "links to the sweep's runs")
    d.find_element(By.ID, "sweeps-metric").click()  # the dropdown opens its options
    _wait(d, lambda d: [o for o in d.find_elements(By.CSS_SELECTOR, ".dash-dropdown-option") if o.text == "train.loss"],
          "the metric's options")[0].click()
    _wait(d, lambda d: "train.loss" in d.execute_script(  # read in one go: the figure is being redrawn
        "const t = document.querySelector('#sweeps-graph .ytitle'); return t ? t.textContent : ''"), "the other metric")
    d.save_screenshot(str(shots / "sweeps.png"))
    rid, href = _wait(d, lambda d: d.execute_script(  # read in one go: the table may be re-rendered
        "const a = document.querySelector('#sweeps-table a'); return a ? [a.textContent, a.href] : null"),
        "a link in the table after the redraw")
    assert rid.startswith("parity-") and href.endswith(f"/training?run={rid}")
    _wait(d, lambda d: d.find_element(By.CSS_SELECTOR, "#sweeps-table a").click() or True, "a click on the link")
    _wait(d, lambda d: "checkpoints" in _text(d, "#training-graph") and rid in _text(d, "#training-run"),
          "the point's run on the Training page")


def test_traversal_and_bad_runs_get_an_error_page_and_the_server_keeps_serving(server, browser, shots):
    d = browser
    for path in ("/states?run=../../etc/passwd", "/training?run=%2Fetc%2Fpasswd", "/intervene?run=no-such-run",
                 "/analyses?run=..%2F..", "/..%2F..%2Fetc%2Fpasswd", "/no/such/page", "/sweeps?sweep=../../etc/passwd",
                 "/sweeps?sweep=%2Fetc%2Fpasswd"):
        d.get(server + path)
        _wait(d, lambda d: d.find_elements(By.ID, "page-error"), f"error page for {path}")
    d.save_screenshot(str(shots / "error_page.png"))
    for path in ("/_dash-component-suites/../../../../etc/passwd", "/assets/../../etc/passwd",
                 "/%2e%2e/%2e%2e/etc/passwd", "/_dash-component-suites/dash/..%2F..%2F..%2Fetc%2Fpasswd"):
        status, body = _raw_get(server, path)
        assert status == 404 and "root:" not in body, (path, status)
    assert _get(server + "/")[0] == 200
    d.get(server + "/")
    _wait(d, lambda d: "Runs" in _text(d, "h3"), "the runs page after the bad requests")


def test_the_text_view_colours_typed_code_by_clicked_units(server, browser, shots, charlm_id):
    d = browser
    d.get(f"{server}/states?run={charlm_id}")
    _wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#states-heatmap .heatmaplayer"), "heatmap")
    _wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".states-text-row")) == 3, "the default text view")
    d.find_element(By.CSS_SELECTOR, "#states-mode input[value=typed]").click()
    box = d.find_element(By.ID, "states-text")
    box.send_keys("if x:", Keys.ENTER, "  y = 1")  # a newline and spaces, kept
    d.find_element(By.ID, "states-text-go").click()
    _wait(d, lambda d: "if␣x:⏎␣␣y␣=␣1" in _text(d, ".states-text-row"), "the typed text with visible whitespace")
    ticks = lambda d: [t.get_attribute("textContent") for t in d.find_elements(By.CSS_SELECTOR, "#states-heatmap .xtick")]  # noqa: E731
    _wait(d, lambda d: ticks(d) == list("if␣x:⏎␣␣y␣=␣1"), "every token labelled under the heatmap")
    # a click on a heatmap row shows that unit alone

    def click_a_row(d):
        drag = d.find_elements(By.CSS_SELECTOR, "#states-heatmap .nsewdrag")[0]
        w = drag.size["width"]
        ActionChains(d).move_to_element_with_offset(drag, -w // 2 + w // 4, 0).click().perform()  # a middle row
    _act(d, click_a_row, "a click on a heatmap row")
    _wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".states-text-row")) == 1, "the clicked unit's row")
    # read in one go, once the view has settled: one span per character, coloured by the unit
    view = _wait(d, lambda d: d.execute_script("""
        const rows = document.querySelectorAll('.states-text-row');
        if (rows.length !== 1) return null;
        const spans = Array.from(rows[0].querySelectorAll('span'));
        return {n: spans.length, colours: new Set(spans.map(s => getComputedStyle(s).backgroundColor)).size,
                text: document.getElementById('states-text-view').textContent};"""), "the unit's row, read")
    assert view["n"] == len("if x:\n  y = 1")
    assert view["colours"] > 1
    assert "unit layers.0.hook_h:" in view["text"]
    d.execute_script("document.getElementById('states-text-view').scrollIntoView()")
    d.save_screenshot(str(shots / "states_text_view.png"))
