"""The explorer's Sweeps page: the store's sweeps and their progress, the table `probe sweep
--report` writes and its figure (the tiny 8-point sweep of conftest.py), path safety, bad files."""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import sys

import pytest

import probe
from app import logic
from app import store as app_store
from probe import _io, sweep


def _copy(store, tmp_path, ids=None):
    """A store holding the sweep index and the runs ``ids`` (default: all the sweep's runs)."""
    index = json.loads((store / "sweeps" / "tiny.json").read_text())
    root = tmp_path / "store"
    (root / "sweeps").mkdir(parents=True)
    shutil.copy(store / "sweeps" / "tiny.json", root / "sweeps" / "tiny.json")
    for p in index["points"]:
        if ids is None or p["id"] in ids:
            shutil.copytree(store / p["id"], root / p["id"])
    return root, [p["id"] for p in index["points"]]


def test_the_table_is_the_csv_that_probe_sweep_report_writes(store, tiny_sweep, tmp_path):
    view = logic.sweep_view(store, "tiny")
    csv_path, _ = sweep.report(tiny_sweep, store, out_dir=tmp_path)
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        header, written = reader.fieldnames, list(reader)
    assert view["columns"] == header and len(view["rows"]) == len(written) == 8
    shown = [{c: "" if r.get(c) is None else str(r[c]) for c in header} for r in view["rows"]]
    assert shown == written
    assert {r["status"] for r in view["rows"]} == {"done"} and view["counts"]["done"] == 8
    assert "train.accuracy" in view["metrics"] and "train.lr" not in view["metrics"]  # a [set] key is no metric


def test_the_figure_is_the_mean_over_seeds_one_line_per_other_axis(store):
    finals = {r["id"]: r for r in probe.list_runs(store)}
    index = json.loads((store / "sweeps" / "tiny.json").read_text())

    def mean(metric, **where):
        vals = [finals[p["id"]][metric] for p in index["points"] if all(p[k] == v for k, v in where.items())]
        assert len(vals) == 2  # the two seeds
        return sum(vals) / 2

    view = logic.sweep_view(store, "tiny")  # the report's defaults: train accuracy against hidden
    assert (view["metric"], view["x"], view["error"]) == ("train.accuracy", "hidden", "")
    fig = view["figure"]
    assert [t.name for t in fig.data] == ["arch=elman", "arch=gru"] and fig.layout.xaxis.title.text == "hidden"
    for trace, arch in zip(fig.data, ("elman", "gru")):
        assert list(trace.x) == [4, 6]
        assert list(trace.y) == pytest.approx([mean("train.accuracy", arch=arch, hidden=h) for h in (4, 6)])
    view = logic.sweep_view(store, "tiny", "train.loss", "arch")
    assert (view["metric"], view["x"]) == ("train.loss", "arch")
    assert [t.name for t in view["figure"].data] == ["hidden=4", "hidden=6"]
    assert list(view["figure"].data[1].x) == ["elman", "gru"]
    assert list(view["figure"].data[1].y) == pytest.approx([mean("train.loss", arch=a, hidden=6) for a in ("elman", "gru")])
    assert view["axes"] == ["arch", "hidden", "seed"]
    for metric, x in [("nope", "nope"), (5, []), ({}, None), ("train.lr", "id")]:  # not this sweep's: the defaults
        assert logic.sweep_view(store, "tiny", metric, x)["metric"] == "train.accuracy"


def test_the_listing_counts_done_running_failed_and_not_started_points(store, tmp_path):
    root, ids = _copy(store, tmp_path)
    shutil.rmtree(root / ids[0])  # not started
    for rid in ids[1:3]:  # killed mid-run: "running" in run.json; one still holds its lock
        info = json.loads((root / rid / "run.json").read_text())
        info["status"] = "running"
        (root / rid / "run.json").write_text(json.dumps(info))
    with _io.Lock(root / ids[1] / ".lock", "test"):
        rows, note = logic.list_sweeps(root)
        assert rows == [{"name": "tiny", "points": 8, "done": 5, "running": 1, "failed": 1, "not started": 1,
                         "varying": "arch, hidden, seed"}] and note == "1 sweep(s)"
        view = logic.sweep_view(root, "tiny")
        assert [r["status"] for r in view["rows"][:3]] == ["new", "running", "partial"]
        assert view["counts"] == {"done": 5, "running": 1, "failed": 1, "not started": 1}
    assert logic.list_sweeps(tmp_path)[0] == []  # no sweeps folder: no sweeps, no error


@pytest.mark.parametrize("bad", ["../sweeps/tiny", "/etc/passwd", "a/b", "..", ".", ".tiny", "", None, 5, ["tiny"],
                                 "x" * 300, "ti\x00ny", "ti\nny", "..\\tiny", "nope"])
def test_sweep_names_from_the_browser_are_checked(store, bad):
    with pytest.raises(ValueError, match="sweep"):
        app_store.resolve_sweep(store, bad)
    with pytest.raises(ValueError, match="sweep"):
        logic.sweep_view(store, bad)


def test_links_out_of_the_store_are_refused(store, tmp_path):
    root, ids = _copy(store, tmp_path, ids=set())
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(root / "sweeps" / "tiny.json", outside / "elsewhere.json")
    os.symlink(outside / "elsewhere.json", root / "sweeps" / "linked.json")
    assert logic.sweep_names(root) == ["tiny"]  # the link is not listed
    with pytest.raises(ValueError, match="symbolic link"):
        logic.sweep_view(root, "linked")
    # a point's run folder that is a link to a run elsewhere is unreadable, never followed
    os.symlink(store / ids[0], root / ids[0])
    view = logic.sweep_view(root, "tiny")
    assert view["rows"][0]["status"].startswith("unreadable") and "symbolic link" in view["rows"][0]["status"]
    assert {r["status"] for r in view["rows"][1:]} == {"new"} and view["figure"] is None
    assert "nothing to report" in view["error"]
    # a sweeps folder that is a link
    other = tmp_path / "other"
    other.mkdir()
    os.symlink(outside, other / "sweeps")
    with pytest.raises(ValueError, match="follows no links"):
        logic.list_sweeps(other)
    with pytest.raises(ValueError, match="symbolic link"):
        app_store.resolve_sweep(other, "elsewhere")


_POINT = ('{"points": [{"task": "parity", "arch": "gru", "hidden": 4, "layers": 1, "members": 1, "steps": 2, '
          '"seed": 0, "id": "x"}]}')


@pytest.mark.parametrize("text, why", [
    ("[1, 2", "cannot be read"), ("[1, 2]", "cannot be read"), ('{"points": 5}', "'points' is not"),
    ('{"points": []}', "'points' is not"), ('{"points": [5]}', "point 0 is not an object"),
    ('{"points": [{"task": "parity"}]}', "point 0 has no 'arch'"),
    (_POINT.replace('"id": "x"', '"id": "../../etc"'), "not a run id"),
    (_POINT.replace('{"points"', '{"varying": "hidden", "points"'), "'varying' is not"),
    (_POINT.replace('"hidden": 4', '"hidden": {"a": 1}'), "not a value"),
    (_POINT.replace('{"points"', '{"set_keys": ["train.lr"], "points"'), "'set_keys' does not"),
])
def test_a_malformed_sweep_file_is_a_message_not_a_traceback(tmp_path, text, why):
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "bad.json").write_text(text)
    with pytest.raises(ValueError, match=why):
        logic.sweep_view(tmp_path, "bad")
    (row,), _ = logic.list_sweeps(tmp_path)
    assert row["name"] == "bad" and re.search(why, row["error"]) and str(tmp_path) not in row["error"]


def test_axis_values_that_cannot_be_ordered_are_a_message(store, tmp_path):
    root, _ = _copy(store, tmp_path)
    index = json.loads((root / "sweeps" / "tiny.json").read_text())
    index["points"][0]["hidden"] = None  # None next to numbers: no order on the x axis
    (root / "sweeps" / "tiny.json").write_text(json.dumps(index))
    view = logic.sweep_view(root, "tiny", None, "hidden")
    assert view["figure"] is None and "not supported between" in view["error"] and len(view["rows"]) == 8


# --- the page, its callback called inside the app's request context ----------------------------


@pytest.fixture(scope="module")
def dash_app(store):
    import app

    return app.create_app(store)


def test_the_page_lists_sweeps_and_shows_one_with_links_to_its_runs(dash_app, store):
    page = sys.modules["app.pages.sweeps"]
    with dash_app.server.test_request_context():
        text = str(page.layout())
        assert "Sweeps (1)" in text and "/sweeps?sweep=tiny" in text and "'sweeps-name'" in text
        assert "page-error" in str(page.layout(sweep="../../etc/passwd"))
        assert "page-error" in str(page.layout(sweep="nope"))
        _, metric, x_opts, x, fig, data, columns, note, err = page.show("tiny", None, None)
        assert err == "" and metric == "train.accuracy" and x == "hidden" and x_opts == ["arch", "hidden", "seed"]
        assert note == "8 done, 0 running, 0 failed, 0 not started" and len(fig.data) == 2
        assert [c["id"] for c in columns] == logic.sweep_view(store, "tiny")["columns"]
        assert next(c for c in columns if c["id"] == "id")["presentation"] == "markdown"
        rid = json.loads((store / "sweeps" / "tiny.json").read_text())["points"][0]["id"]
        assert data[0]["id"] == f"[{rid}](/training?run={rid})"
        assert page.show("train.loss", None, None)[-1].startswith("unknown sweep")
        assert page.show("../x", "train.loss", "arch")[-1].startswith("invalid sweep name")
        assert page.show("tiny", "train.loss", "arch")[1:4:2] == ("train.loss", "arch")
