"""Fuzz of the explorer's callbacks through Dash's own dispatch (a Flask test client POSTing to
``/_dash-update-component``, as the browser does): a malformed request gets a 4xx, a junk value
in any input gets an error shown in the page (never a 500), the work a request can ask for is
bounded, and afterwards the server still answers and the store is as it was.
"""
from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
from dash._utils import split_callback_id

GOOD = {  # a value that works for every input the callbacks read, so junk in one reaches deep code
    "value": None, "n_clicks": 1, "n_intervals": 1, "id": "x", "pathname": "/", "search": "",
    "selectedData": None, "relayoutData": None, "clickData": None, "derived_virtual_data": [],
    "derived_virtual_selected_rows": [], "data": None,
}
GOOD_BY_ID = {
    "states-hook": "layers.0.hook_h", "intervene-hook": "layers.0.hook_h", "states-mode": "seed", "states-seed": 0,
    "intervene-seed": 0, "states-length": 8, "intervene-length": 8, "states-threshold": 0.3, "states-off": [],
    "intervene-step": 3, "intervene-units": "", "intervene-op": "zero", "intervene-value": 0, "intervene-source": 1,
    "analyses-name": "nope", "runs-metric": "loss", "runs-logx": [], "training-logx": [], "states-member": 0,
    "intervene-member": 0, "analyses-member": 0, "sweeps-name": "tiny", "sweeps-metric": "train.loss",
    "sweeps-x": "arch",
}
JUNK = [None, 0, -1, 1e308, True, "", "x" * 3000, "../../etc/passwd", [], {}, [{}], {"points": 5},
        {"range": {"x": "a"}}, [None, 5], "0-20000000", 10**30, "NaN", {"run": "../x", "step": {}}, [[[]]]]
FAST_JUNK = [[{}], {"points": 5}, "x" * 3000, 1e308]  # one of each kind that broke a callback once


def _snapshot(root: Path) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            out[str(p.relative_to(root))] = p.read_bytes() if stat.S_ISREG(st.st_mode) else stat.S_IFMT(st.st_mode)
    return out


@pytest.fixture(scope="module")
def client(store):
    import app

    dash_app = app.create_app(store)
    c = dash_app.server.test_client()
    assert c.get("/").status_code == 200
    return c


@pytest.fixture(scope="module")
def callbacks(client):
    """Every callback with a server side (clientside ones are the browser's)."""
    return [cb for cb in client.get("/_dash-dependencies").get_json() if not cb.get("clientside_function")]


def _good(prop: dict, run_id: str):
    if prop["property"] == "value" and prop["id"].endswith("-run"):
        return run_id
    if prop["id"] == "app-selected":
        return [run_id]
    return GOOD_BY_ID.get(prop["id"], GOOD.get(prop["property"]))


def _body(cb: dict, run_id: str, junk_at: int | None = None, junk=None) -> dict:
    props = cb["inputs"] + cb["state"]
    values = [_good(p, run_id) for p in props]
    if junk_at is not None:
        values[junk_at] = junk
    outputs = split_callback_id(cb["output"])
    n_in = len(cb["inputs"])
    as_dicts = [{"id": p["id"], "property": p["property"], "value": v} for p, v in zip(props, values)]
    return {"output": cb["output"], "outputs": outputs, "inputs": as_dicts[:n_in], "state": as_dicts[n_in:],
            "changedPropIds": [f"{cb['inputs'][0]['id']}.{cb['inputs'][0]['property']}"]}


def _post(client, body) -> int:
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post("/_dash-update-component", data=data, content_type="application/json").status_code


def _fuzz(client, callbacks, run_id, junk_values) -> tuple[int, list]:
    n, bad = 0, []
    for cb in callbacks:
        for at in range(len(cb["inputs"]) + len(cb["state"])):
            for junk in junk_values:
                code = _post(client, _body(cb, run_id, at, junk))
                n += 1
                if code >= 500:
                    bad.append((cb["output"][:60], (cb["inputs"] + cb["state"])[at], str(junk)[:40], code))
    return n, bad


def test_every_callback_answers_good_values(client, callbacks, parity_id):
    codes = {cb["output"][:60]: _post(client, _body(cb, parity_id)) for cb in callbacks}
    assert set(codes.values()) <= {200, 204}, codes


def test_junk_in_any_input_is_never_a_server_error(client, callbacks, parity_id, store):
    before = _snapshot(store)
    n, bad = _fuzz(client, callbacks, parity_id, FAST_JUNK)
    assert n >= 250 and not bad, (n, bad[:10])
    assert client.get("/").status_code == 200
    assert _post(client, _body(callbacks[0], parity_id)) in (200, 204)
    assert _snapshot(store) == before


@pytest.mark.slow
def test_more_junk_in_any_input_is_never_a_server_error(client, callbacks, parity_id, store):
    before = _snapshot(store)
    n, bad = _fuzz(client, callbacks, parity_id, JUNK)
    assert not bad, (n, bad[:10])
    assert client.get("/").status_code == 200 and _snapshot(store) == before


def test_malformed_requests_get_400(client, callbacks, parity_id):
    cb = next(c for c in callbacks if c["output"].startswith("..intervene-graph"))
    good = _body(cb, parity_id)
    bad = [
        "not json", "[1, 2]", "null", "5", json.dumps({}), {**good, "output": "_pages_dummy.children"},
        {**good, "output": "nope.children"}, {**good, "output": 5}, {k: v for k, v in good.items() if k != "output"},
        {**good, "inputs": "x"}, {**good, "inputs": []}, {**good, "inputs": [5]}, {**good, "inputs": good["inputs"] * 2},
        {**good, "inputs": [{"id": "intervene-go"}]}, {**good, "state": good["state"][:-1]},
        {**good, "state": [{"id": "x", "property": "y", "value": 1}] * len(good["state"])},
        {**good, "outputs": None}, {**good, "outputs": [5, 6, 7]}, {**good, "outputs": good["outputs"][:1]},
        {**good, "changedPropIds": "x"}, {**good, "changedPropIds": [5]},
        {**good, "inputs": [{**good["inputs"][0], "value": "x" * (9 << 20)}]},
    ]
    codes = [_post(client, b) for b in bad]
    assert all(400 <= c < 500 for c in codes), codes
    assert client.get("/").status_code == 200


def test_a_huge_unit_range_is_refused_before_it_is_expanded(client, callbacks, parity_id):
    cb = next(c for c in callbacks if c["output"].startswith("..intervene-graph"))
    body = _body(cb, parity_id)
    for p in body["state"]:
        if p["id"] == "intervene-units":
            p["value"] = "0-20000000"
    t0 = time.perf_counter()
    r = client.post("/_dash-update-component", data=json.dumps(body), content_type="application/json")
    took = time.perf_counter() - t0
    assert r.status_code == 200 and "out of range" in r.get_data(as_text=True) and took < 5, took


def test_a_corrupt_run_or_claims_report_is_one_bad_row_on_the_runs_page(tmp_path, store, parity_id):
    import shutil

    import app

    shutil.copytree(store / parity_id, tmp_path / parity_id)
    for name, text in [("model-a-string", '{"config": {"task": {"name": "parity", "params": {}}, "model": "gru", '
                                           '"train": {}}}'), ("deep", "[" * 100000)]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_text(text)
    (tmp_path / "fifo").mkdir()
    os.mkfifo(tmp_path / "fifo" / "run.json")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.json"
    outside.write_text(json.dumps({"claims": [{"id": "leak.marker", "passed": True}]}))
    os.symlink(outside, tmp_path / "claims.json")
    client = app.create_app(tmp_path).server.test_client()
    assert client.get("/").status_code == 200
    cb = next(c for c in client.get("/_dash-dependencies").get_json() if c["output"].startswith(".._pages_content"))
    body = _body(cb, parity_id)
    r = client.post("/_dash-update-component", data=json.dumps(body), content_type="application/json")
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "Runs (4)" in page and page.count("unreadable: ") == 3 and parity_id in page
    assert "symbolic link" in page and "leak.marker" not in page


def test_background_analyses_are_capped():
    import threading

    from app.jobs import Jobs

    release = threading.Event()
    table = Jobs(max_running=2)
    table.start(("a",), release.wait)
    table.start(("b",), release.wait)
    assert table.start(("a",), release.wait)["state"] == "running"  # the same job again: no new thread
    with pytest.raises(ValueError, match="running already"):
        table.start(("c",), release.wait)
    release.set()
    deadline = time.time() + 10
    while time.time() < deadline and "running" in (table.get(("a",))["state"], table.get(("b",))["state"]):
        time.sleep(0.01)
    assert table.start(("c",), lambda: 1)["state"] in ("running", "done")
