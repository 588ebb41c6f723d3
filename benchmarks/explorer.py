"""Explorer latency on a run store, in a real browser (headless chromium through selenium).

For every page: the time from ``driver.get`` until the page is interactive (its main graph or
table drawn, no callback in flight), **cold** (the first load after a fresh server start, one
server per page) and **warm** (the median of reloads after that). Then, on one warm server: an
intervention (click to counterfactual drawn), a cached analysis shown (click to summary and
first figure drawn) and the states page's text view after clicking a heatmap row. The targets
(issue 30): warm <= 3 s, cold <= 10 s, intervention <= 1 s, cached analysis <= 2 s.

    python benchmarks/explorer.py --store /tmp/demo30 [--repeats 3] [--only runs states]

The store should be a demo store (``probe demo --store DIR --no-app``); the analysis timed is
two cached ``automaton`` results found in it (``probe verify`` leaves four). Runs are
picked by task: training and intervene on parity, states on charlm; the sweeps page shows the
store's first sweep (``probe sweep examples/sweep_parity.toml --store DIR`` adds one). Nothing
is written into the store. Results are printed as a table; record them in ``benchmarks/NOTES.md``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"cold": 10.0, "warm": 3.0, "intervention": 1.0, "cached analysis": 2.0, "text view": 3.0}
# "first analysis" (no target): the first one shown after a start, which may wait for the
# server's background imports of the studies


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(store: str) -> tuple[subprocess.Popen, str, float]:
    """The explorer on a free loopback port; returns the process, its URL and the seconds until
    it answered its first request."""
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    code = "import sys, app; app.run(sys.argv[1], host='127.0.0.1', port=int(sys.argv[2]))"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, store, str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    while time.perf_counter() - t0 < 180:
        try:
            with urllib.request.urlopen(url + "/_dash-layout", timeout=5):
                return proc, url, time.perf_counter() - t0
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the explorer did not start within 180 s")


def browser():
    from selenium import webdriver

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--no-first-run", "--window-size=1400,1100"):
        opts.add_argument(flag)
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(service=service, options=opts)


_IDLE = "return !document.querySelector('[data-dash-is-loading=true]') && !!document.querySelector('#_dash-app-content, #react-entry-point')"


def wait(driver, ready_js: str, timeout: float = 180.0) -> float:
    """Seconds until ``ready_js`` (a JS expression) is true and no Dash callback is loading."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        try:
            ready = driver.execute_script(f"return !!({ready_js})") and driver.execute_script(_IDLE)
        except Exception:  # noqa: BLE001 - the page may be between two renders
            ready = False
        if ready:
            return time.perf_counter() - t0
        time.sleep(0.05)
    raise TimeoutError(f"not ready after {timeout:.0f} s: {ready_js}")


def _q(css: str, text: str = "") -> str:
    check = f" && document.querySelector({css!r}).textContent.includes({text!r})" if text else ""
    return f"document.querySelector({css!r}){check}"


def pages(store: str) -> dict[str, tuple[str, str]]:
    """Page -> (path, readiness test) on this store."""
    sys.path.insert(0, str(ROOT))
    from probe.runs import list_runs

    runs = list_runs(store)
    by_task = lambda task: next((r["id"] for r in runs if r["task"] == task), runs[0]["id"])
    parity, charlm = by_task("parity"), by_task("charlm")
    return {
        "runs": ("/", _q("#runs-table", parity)),
        "training": (f"/training?run={parity}", _q("#training-graph .main-svg") + " && "
                     + _q("#training-graph", "checkpoints")),
        "states": (f"/states?run={charlm}", _q("#states-heatmap .heatmaplayer image, #states-heatmap .heatmaplayer path")
                   + " && " + _q("#states-text-view", "unit")),
        "intervene": (f"/intervene?run={parity}", _q("#intervene-hook", "hook_h")),
        "analyses": (f"/analyses?run={parity}", _q("#analyses-go")),
        "claims": ("/claims", _q("#claims-table", "PASS")),
        # its first sweep's figure drawn, or the note that the store has none
        "sweeps": ("/sweeps", (f"({_q('#sweeps-graph .scatterlayer .trace')} && {_q('#sweeps-table', 'done')})"
                               f" || {_q('#sweeps-head', 'No sweeps')}")),
    }


def cached_analyses(store: str) -> list[str]:
    """Runs with a cached automaton result for member 0."""
    return [p.name for p in sorted(Path(store).iterdir()) if (p / "analyses" / "automaton.json").is_file()]


def measure(store: str, repeats: int, only: list[str] | None) -> list[tuple[str, str, float]]:
    rows = []
    todo = {k: v for k, v in pages(store).items() if not only or k in only}
    driver = browser()
    try:
        for name, (path, ready) in todo.items():
            proc, url, started = start_server(store)
            rows.append((name, "server start", started))
            report(rows[-1])
            try:
                t0 = time.perf_counter()
                driver.get(url + path)
                rows.append((name, "cold", time.perf_counter() - t0 + wait(driver, ready)))
                report(rows[-1])
                warm = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    driver.get(url + path)
                    warm.append(time.perf_counter() - t0 + wait(driver, ready))
                rows.append((name, "warm", statistics.median(warm)))
                report(rows[-1])
                if name == "intervene":
                    rows.append(("intervene", "intervention", _intervention(driver)))
                if name == "states":
                    rows.append(("states", "text view", _text_view(driver)))
                if name == "analyses" and len(runs := cached_analyses(store)) >= 2:
                    # the first may wait for the server's background imports; the second is a result
                    # read and drawn for the first time with everything imported
                    rows.append(("analyses", "first analysis", _analysis(driver, url, runs[0])))
                    report(rows[-1])
                    rows.append(("analyses", "cached analysis", _analysis(driver, url, runs[1])))
                if rows[-1][1] not in ("cold", "warm"):
                    report(rows[-1])
            finally:
                proc.terminate()
                proc.wait(10)
    finally:
        driver.quit()
    return rows


def _click(driver, element_id: str) -> None:
    driver.execute_script(f"document.getElementById({element_id!r}).click()")


def _intervention(driver) -> float:
    times = []
    for step in (3, 4, 5):  # a new step each time, so the page's data changes
        driver.execute_script("""const s = document.getElementById('intervene-step');
            const set = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;
            set.call(s, arguments[0]); s.dispatchEvent(new Event('input', {bubbles: true}));""", str(step))
        time.sleep(0.3)
        t0 = time.perf_counter()
        _click(driver, "intervene-go")
        times.append(time.perf_counter() - t0 + wait(
            driver, f"(document.querySelector('#intervene-data').textContent.includes('\"step\": {step},')"
                    " || document.querySelector('#intervene-error').textContent)"))
        error = driver.execute_script("return document.querySelector('#intervene-error').textContent")
        if error:
            raise RuntimeError(f"the intervention failed: {error}")
    return statistics.median(times)


def _text_view(driver) -> float:
    # Pick the third unit from the dropdown's data as a click on the heatmap row would.
    before = driver.execute_script("return document.getElementById('states-text-view').textContent.length")
    t0 = time.perf_counter()
    driver.execute_script("""
        const g = document.getElementById('states-heatmap').querySelector('.js-plotly-plot');
        g.emit('plotly_click', {points: [{curveNumber: 0, x: 3, y: 2}]});""")
    return time.perf_counter() - t0 + wait(
        driver, f"document.getElementById('states-text-view').textContent.length != {before}")


def _analysis(driver, url: str, run: str) -> float:
    """Seconds from opening the Analyses page on a cached result (as the Claims page links it) to
    its summary and first figure drawn."""
    t0 = time.perf_counter()
    driver.get(f"{url}/analyses?run={run}&analysis=automaton")
    return time.perf_counter() - t0 + wait(driver, _q("#analyses-summary") + " && " + _q("#analyses-result .main-svg"))


def report(row: tuple[str, str, float]) -> None:
    """One line of the table, printed as soon as it is measured."""
    page, what, secs = row
    target = TARGETS.get(what)
    mark = "" if target is None else ("  ok" if secs <= target else "  SLOW")
    print(f"{page:<10} {what:<16} {secs:8.2f} {target if target else '':>7}{mark}", flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--store", required=True, help="a run store (e.g. one made by probe demo)")
    p.add_argument("--repeats", type=int, default=3, help="warm reloads per page (median kept)")
    p.add_argument("--only", nargs="*", help="pages to time (default: all)")
    a = p.parse_args(argv)
    print(f"{'page':<10} {'what':<16} {'seconds':>8} {'target':>7}", flush=True)
    measure(a.store, a.repeats, a.only)


if __name__ == "__main__":
    main()
