"""The explorer's logic, figures and callbacks, without a server or a browser."""
from __future__ import annotations

import json
import os
import sys
import time

import dash
import numpy as np
import pytest

import tasks
from app import figures, jobs, logic, textview
from app import store as app_store


# --- path safety ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["..", "../x", "../../etc/passwd", "/etc", "a/b", "x\\..\\y", "", None, 3,
                                 "%2e%2e", "nope"])
def test_resolve_run_rejects_traversal_absolute_and_unknown_ids(store, bad):
    with pytest.raises(ValueError):
        app_store.resolve_run(store, bad)


def test_resolve_run_accepts_a_run_of_the_store(store, parity_id):
    assert app_store.resolve_run(store, parity_id) == (store / parity_id).resolve()


def test_a_symlink_leading_out_of_the_store_is_refused(tmp_path, store, parity_id):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "run.json").write_text((store / parity_id / "run.json").read_text())
    inner = tmp_path / "store"
    inner.mkdir()
    os.symlink(outside, inner / "evil")
    with pytest.raises(ValueError, match="outside the store"):
        app_store.resolve_run(inner, "evil")


def test_a_corrupt_run_is_a_clear_error(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "run.json").write_text("{not json")
    with pytest.raises(ValueError):
        app_store.open_run(tmp_path, "broken")


def test_models_are_cached_per_run_member_and_step(store, parity_id):
    cache = app_store.ModelCache(size=2)
    a = cache.get(store, parity_id, 0)
    assert cache.get(store, parity_id, 0)[1] is a[1]
    b = cache.get(store, parity_id, 1)
    assert b[1] is not a[1]
    first = a[0].checkpoint_steps[0]
    cache.get(store, parity_id, 0, first)  # evicts the oldest
    assert len(cache._items) == 2
    with pytest.raises(ValueError, match="member"):
        cache.get(store, parity_id, 5)
    with pytest.raises(ValueError, match="checkpoint"):
        cache.get(store, parity_id, 0, 123456)


# --- inputs --------------------------------------------------------------------------------------


def test_typed_input_in_the_tasks_alphabet_is_parsed_and_anything_else_refused():
    task = tasks.make("parity")
    assert logic.parse_tokens(task, "0110") == [0, 1, 1, 0]
    assert logic.parse_tokens(task, "0 1 <pad>") == [0, 1, 2]
    with pytest.raises(ValueError, match="'x' is not in the alphabet"):
        logic.parse_tokens(task, "01x")
    with pytest.raises(ValueError, match="type an input"):
        logic.parse_tokens(task, "   ")
    with pytest.raises(ValueError, match="at most"):
        logic.parse_tokens(task, "0" * (logic.MAX_TYPED + 1))
    with pytest.raises(ValueError, match="vectors"):
        logic.parse_tokens(tasks.make("integration"), "1 2")


def test_typed_code_keeps_its_spaces_and_newlines_in_a_char_lm():
    task = tasks.make("charlm")
    text = "def f(x):\n    return x"
    ids = logic.parse_tokens(task, text)
    assert len(ids) == len(text)
    assert "".join("\n" if c == "\\n" else c for c in task.decode(ids)) == text
    assert textview.render(task.decode(ids)) == "def␣f(x):⏎␣␣␣␣return␣x"
    assert logic.parse_tokens(task, "a\r\nb") == logic.parse_tokens(task, "a\nb")
    with pytest.raises(ValueError, match="not in the alphabet"):
        logic.parse_tokens(task, "a\tb")
    # alphabets without whitespace: spaces separate labels, as before
    assert logic.parse_tokens(tasks.make("parity"), "0 1\n1") == [0, 1, 1]
    recall = tasks.make("recall")
    assert logic.parse_tokens(recall, "k1 v250 _") == [1, recall.decode(list(range(recall.vocab_size))).index("v250"), 0]


def test_a_sampled_input_carries_labels_and_feature_tracks():
    x = logic.make_input(tasks.make("parity"), "seed", 3, length=12)
    assert x["inputs"].shape == (1, 12)
    assert len(x["labels"]) == 12
    assert set(x["features"]) >= {"parity", "position"}
    with pytest.raises(ValueError, match="seed"):
        logic.make_input(tasks.make("parity"), "seed", "abc")
    with pytest.raises(ValueError, match="length"):
        logic.make_input(tasks.make("parity"), "seed", 0, length=0)


# --- states ---------------------------------------------------------------------------------------


def test_brush_range_reads_box_selections_and_zooms():
    assert logic.brush_range(None, {"range": {"x": [1.6, 4.2]}}, 10) == (2, 4)
    assert logic.brush_range({"xaxis.range[0]": -3, "xaxis.range[1]": 99}, None, 10) == (0, 9)
    assert logic.brush_range({"autosize": True}, None, 10) is None
    assert logic.brush_range(None, {"points": [{"x": 5}, {"x": 2}]}, 10) == (2, 5)


def test_units_on_in_the_range_and_off_elsewhere_are_selected():
    traj = np.zeros((6, 3))
    traj[2:4, 0] = 1.0  # on exactly in the range
    traj[:, 1] = 1.0  # always on
    traj[2, 2] = 1.0  # on only part of the range
    assert logic.select_units(traj, 2, 3, 0.5) == [0, 1]
    assert logic.select_units(traj, 2, 3, 0.5, off_elsewhere=True) == [0]
    with pytest.raises(ValueError, match="outside"):
        logic.select_units(traj, 4, 9, 0.5)


def test_pca_projects_a_trajectory_on_its_leading_components():
    rng = np.random.default_rng(0)
    traj = np.outer(np.arange(10.0), rng.normal(size=5))
    proj, ratios = logic.pca(traj)
    assert proj.shape == (10, 3)
    assert ratios[0] > 0.99


def test_match_scores_are_the_jaccard_index_of_on_sets_then_the_distance():
    ref = np.array([[1.0, -1.0], [1.0, -1.0]])  # (L=2, U=2): unit 0 on at both steps, unit 1 off
    acts = np.full((3, 6, 2), -1.0)  # (n, T, U), everything off
    acts[0, 3:5] = ref  # an exact copy at t=3
    acts[1, 1, 0] = acts[1, 2, 1] = 1.0  # window t=1: on-set {(0, u0), (1, u1)} vs {(0, u0), (1, u0)}
    jaccard, distance = logic.match_scores(acts, ref, threshold=0.0)
    assert jaccard.shape == distance.shape == (3, 5)
    assert jaccard[0, 3] == 1.0 and distance[0, 3] == 0.0
    assert jaccard[1, 1] == pytest.approx(1 / 3)  # 1 shared of 3 in the union
    assert jaccard[2].max() == 0.0  # never on: nothing shared
    assert logic.match_scores(np.full((1, 4, 2), -1.0), np.full((2, 2), -1.0), 0.0)[0].min() == 1.0  # both empty
    with pytest.raises(ValueError, match="does not fit"):
        logic.match_scores(acts, np.zeros((2, 3)), 0.0)


def test_matching_inputs_are_ranked_by_score_and_shown_in_context(store, charlm_id):
    _, model, task = app_store.MODELS.get(store, charlm_id)
    x = logic.make_input(task, "seed", 0, length=30)
    traj = logic.trajectories(model, x["inputs"])[0]["layers.0.hook_h"]
    ref = traj[10:14][:, [0, 3]]
    rows = logic.match_inputs(model, task, "layers.0.hook_h", [0, 3], ref, 0.0, n=8)
    assert 0 < len(rows) <= 8
    keys = [(-r["score"], r["distance"]) for r in rows]
    assert keys == sorted(keys)
    batch = task.sample(8, seed=1)
    with __import__("torch").no_grad():
        acts = model.run_with_cache(batch.inputs)[1]["layers.0.hook_h"][..., [0, 3]].numpy()
    jaccard, distance = logic.match_scores(acts, ref, 0.0)
    for r in rows:
        i, t = r["sample"], r["start"]
        assert r["score"] == round(float(jaccard[i].max()), 3) == round(float(jaccard[i, t]), 3)
        assert r["distance"] == round(float(distance[i, t]), 4)
        text = textview.render(task.decode(batch.inputs[i]))
        assert r["text"] == text[t:t + 4] and (r["before"] + r["text"] + r["after"]).strip("…") in text
    with pytest.raises(ValueError, match="select units"):
        logic.match_inputs(model, task, "layers.0.hook_h", [], ref, 0.0)


def test_units_text_is_parsed_and_checked():
    assert logic.parse_units("3, 1, 5-6", 8) == [1, 3, 5, 6]
    assert logic.parse_units("", 8) is None
    with pytest.raises(ValueError, match="out of range"):
        logic.parse_units("9", 8)
    with pytest.raises(ValueError, match="not a unit"):
        logic.parse_units("a", 8)


# --- interventions --------------------------------------------------------------------------------


def test_an_ablation_changes_the_trajectory_from_its_step_on_and_not_before(store, parity_id):
    _, model, task = app_store.MODELS.get(store, parity_id)
    x = logic.make_input(task, "seed", 0, length=12)
    d = logic.counterfactual(model, task, x["inputs"], "layers.0.hook_h", 4, None, "zero")
    diff = np.asarray(d["diff"])
    assert diff[:4].max() < 1e-5
    assert diff[4] > 1e-3
    assert len(d["changed"]) == 12
    fig = figures.counterfactual(d, x["labels"])
    assert len(fig.data) == 5


def test_every_edit_runs_and_bad_edits_are_refused(store, parity_id):
    _, model, task = app_store.MODELS.get(store, parity_id)
    x = logic.make_input(task, "seed", 0, length=8)
    src = logic.make_input(task, "seed", 1, length=8)["inputs"]
    for op in ("zero", "clamp", "scale", "set", "patch"):
        d = logic.counterfactual(model, task, x["inputs"], "layers.0.hook_h", 2, [0, 1], op, 0.5, src)
        assert np.asarray(d["diff"])[:2].max() < 1e-5
    with pytest.raises(ValueError, match="outside"):
        logic.counterfactual(model, task, x["inputs"], "layers.0.hook_h", 99, None, "zero")
    with pytest.raises(ValueError, match="unknown operation"):
        logic.counterfactual(model, task, x["inputs"], "layers.0.hook_h", 1, None, "explode")
    with pytest.raises(ValueError, match="unknown hook"):
        logic.counterfactual(model, task, x["inputs"], "nope", 1, None, "zero")
    with pytest.raises(ValueError, match="second input"):
        logic.counterfactual(model, task, x["inputs"], "layers.0.hook_h", 1, None, "patch")


# --- figures ---------------------------------------------------------------------------------------


def test_the_heatmap_has_tokens_on_time_and_one_track_per_feature():
    traj = np.random.default_rng(0).normal(size=(7, 4))
    fig = figures.states_heatmap(traj, list("0110101"), {"parity": [0] * 7, "position": list(range(7))},
                                 "layers.0.hook_h", units=[1], brush=(2, 4))
    heat, tracks = [t for t in fig.data if t.type == "heatmap"]
    assert np.asarray(heat.z).shape == (4, 7)
    assert fig.layout.xaxis2.ticktext[:3] == ("0", "1", "1")
    assert list(tracks.y) == ["parity (= 0)", "position"]
    assert np.allclose(tracks.z[0], 0) and np.allclose(tracks.z[1], np.arange(7) / 6)  # a constant 0 is drawn as 0
    assert (tracks.zmin, tracks.zmax) == (0, 1) and list(tracks.customdata[1]) == list(range(7))


def test_every_token_under_the_heatmap_is_labelled_and_whitespace_is_visible():
    labels = list("ab c") * 50 + ["\\n"]  # 201 tokens, as charlm decodes them
    fig = figures.states_heatmap(np.zeros((201, 4)), labels, {}, "layers.0.hook_h")
    assert list(fig.layout.xaxis.tickvals) == list(range(201))  # not thinned
    assert fig.layout.xaxis.ticktext[:4] == ("a", "b", "␣", "c") and fig.layout.xaxis.ticktext[-1] == "⏎"
    assert fig.layout.width >= 14 * 201  # the figure grows; its container scrolls
    assert fig.layout.xaxis.title.text == "step (token)" and fig.layout.yaxis.title.text == "layers.0.hook_h unit"


def test_selected_units_are_drawn_as_lines_over_the_text():
    traj = np.random.default_rng(0).normal(size=(9, 5))
    fig = figures.unit_lines(traj, list("abcdefghi"), [1, 4], "layers.0.hook_h", threshold=0.3, brush=(2, 3))
    assert [t.name for t in fig.data] == ["unit 1", "unit 4"]
    assert np.allclose(fig.data[1].y, traj[:, 4])
    assert fig.layout.shapes[0].y0 == 0.3 and fig.layout.yaxis.title.text == "layers.0.hook_h activation"
    assert figures.unit_lines(traj, list("abcdefghi"), [], "h").layout.annotations  # says what to do instead


def test_the_text_view_colours_each_token_by_the_unit_around_zero():
    from plotly.colors import sample_colorscale

    bg, fg, lim = textview.diverging([-2.0, 0.0, 1.0])
    assert lim == 2.0
    assert bg == sample_colorscale("RdBu", [0.0, 0.5, 0.75])  # fitted to max |a|, centred on 0
    assert fg == ["white", "black", "black"]
    assert textview.diverging([0.0, 0.0])[0] == ["rgb(255,255,255)"] * 2
    rows = textview.rows(["a", " ", "\\n", "b"], {"layers.0.hook_h:1": [0.5, -0.5, 0.0, 1.0]})
    assert [c["text"] for c in rows[0]["cells"]] == ["a", "␣", "⏎", "b"]
    assert [c["newline"] for c in rows[0]["cells"]] == [False, False, True, False]
    with pytest.raises(ValueError, match="steps"):
        textview.rows(["a"], {"u": [1.0, 2.0]})
    hooks = {"layers.0.hook_h": 8}
    assert textview.parse_unit("layers.0.hook_h:7", hooks) == ("layers.0.hook_h", 7)
    for bad, why in [("layers.0.hook_h:8", "out of range"), ("nope:1", "unknown hook"), ("x", "hook:index"),
                     ("layers.0.hook_h:a", "not an integer"), (3, "hook:index")]:
        with pytest.raises(ValueError, match=why):
            textview.parse_unit(bad, hooks)
    traj = np.zeros((5, 4))
    traj[:, 2] = [0, 1, 0, 1, 0]
    traj[:, 0] = [0, 0.1, 0, 0.1, 0]
    assert textview.default_units({"h": traj}, "h", k=2) == ["h:2", "h:0"]


def test_a_click_on_a_heatmap_row_names_its_unit():
    assert logic.clicked_unit({"points": [{"curveNumber": 0, "x": 3, "y": 5}]}) == 5
    for junk in [None, {}, {"points": []}, {"points": [{"curveNumber": 2, "y": 1}]}, {"points": [{"y": "a"}]},
                 {"points": [{"y": 1.5}]}, {"points": [{"y": True}]}, {"points": [{"y": -1}]}, [1]]:
        assert logic.clicked_unit(junk) is None


def test_the_states_selection_carries_its_step_units_and_input_to_intervene():
    picked = {"run": "r", "hook": "layers.0.hook_c", "units": [1, 4], "t0": 6, "t1": 9, "mode": "typed",
              "seed": 3, "text": "ab c", "length": None}
    got = logic.carried_over(picked, "r", ["layers.0.hook_h", "layers.0.hook_c"])
    assert got == {"hook": "layers.0.hook_c", "units": "1,4", "step": 6, "seed": 3, "length": None, "text": "ab c"}
    assert logic.carried_over(picked, "other", ["layers.0.hook_h"]) is None
    assert logic.carried_over({**picked, "mode": "seed", "t0": None}, "r", ["layers.0.hook_h"])["step"] is None
    assert logic.carried_over({**picked, "units": "junk", "t0": True}, "r", ["h"]) == {
        "hook": "h", "units": "", "step": None, "seed": 3, "length": None, "text": "ab c"}


def test_the_cells_ranking_is_read_from_its_cached_result(store, charlm_id, tmp_path):
    import shutil

    from probe import _io

    shutil.copytree(store / charlm_id, tmp_path / charlm_id)
    run = app_store.open_run(tmp_path, charlm_id)
    assert logic.cells_ranking(run) == []  # not cached: nothing computed here
    top = {"in_string": [{"unit": "layers.0.hook_h:3", "score": 0.8}, {"unit": "layers.0.hook_h:1", "score": 0.7}],
           "indent": [{"unit": "layers.0.hook_h:5", "score": 0.9}]}
    (run.path / "analyses").mkdir()
    _io.write_json(run.path / "analyses" / "cells.json", {
        "analysis": "cells", "member": 0, "params": {}, "step": run.checkpoint_steps[-1],
        "class": "analyses.cells.analysis.CellsResult", "result": {"summary": {}, "top": top}})
    assert logic.cells_ranking(run, per_feature=1) == [("layers.0.hook_h:5", "indent", 0.9),
                                                       ("layers.0.hook_h:3", "in_string", 0.8)]


def test_the_training_figure_marks_checkpoints_and_per_member_lines(store, parity_id):
    run = app_store.open_run(store, parity_id)
    curves = {k: logic.member_curves(run, k) for k in logic.metric_keys(run)}
    assert set(curves["loss"]) == {0, 1}
    fig = figures.training(curves, run.checkpoint_steps, log_x=True, selected=run.checkpoint_steps[-1])
    marks = [t for t in fig.data if t.name == "checkpoints"][0]
    assert list(marks.x) == run.checkpoint_steps
    assert fig.layout.xaxis.type == "log"
    assert logic.pick_checkpoint(run, {"points": [{"x": run.checkpoint_steps[-1] - 1}]}) == run.checkpoint_steps[-1]


def test_checkpoint_lines_are_one_shape_each_through_every_panel_and_panels_have_y_labels():
    curves = {k: {0: ([0, 10, 20], [1.0, 0.5, 0.2])} for k in ("loss", "train.accuracy", "valid.accuracy")}
    fig = figures.training(curves, [0, 10, 20], selected=10)
    assert [s.x0 for s in fig.layout.shapes] == [0, 10, 20]  # not one per checkpoint and panel
    assert all(s.yref == "paper" and (s.y0, s.y1) == (0, 1) for s in fig.layout.shapes)
    assert [s.line.dash for s in fig.layout.shapes] == ["dot", "solid", "dot"]
    assert [fig.layout[f"yaxis{i}"].title.text for i in (1, 2, 3)] == ["loss", "accuracy", "accuracy"]
    assert fig.layout.legend.yref == "container" and fig.layout.legend.y == 1  # at the top, not below 3 panels


def test_runs_table_and_claims_report(store, tmp_path):
    rows = logic.runs_table(store)
    assert {r["task"] for r in rows} == {"parity", "integration", "charlm"}
    claims, head = logic.load_claims(store)
    assert [c["result"] for c in claims] == ["PASS", "FAIL"]
    assert head.startswith("1/2 claims pass")
    assert claims[1]["measured_rows"] == [("a", "1"), ("b.c", "0.5, 2")]
    assert logic.measured_rows({"m": [{"x": 1.0}], "s": "3/4", "f": 0.123456}) == [
        ("m[0].x", "1"), ("s", "3/4"), ("f", "0.1235")]
    assert logic.load_claims(tmp_path)[0] == []
    (tmp_path / "claims.json").write_text("[1, 2")
    with pytest.raises(ValueError, match="cannot be read"):
        logic.load_claims(tmp_path)


def test_background_jobs_finish_or_report_their_error():
    table = jobs.Jobs()
    table.start(("ok",), lambda: 42)
    table.start(("bad",), lambda: 1 / 0)
    deadline = time.time() + 10
    while time.time() < deadline and any(table.get((k,))["state"] == "running" for k in ("ok", "bad")):
        time.sleep(0.02)
    assert table.get(("ok",))["result"] == 42
    assert "ZeroDivisionError" in table.get(("bad",))["error"]


# --- callbacks, called directly inside the app's request context --------------------------------


@pytest.fixture(scope="module")
def dash_app(store):
    import app

    return app.create_app(store)


def _page(name):
    return sys.modules[f"app.pages.{name}"]


def test_page_callbacks_show_errors_in_the_page(dash_app, parity_id):
    states, intervene, training = _page("states"), _page("intervene"), _page("training")
    with dash_app.server.test_request_context():
        # draw(run, member, hook, mode, seed, go, length, t0, t1, threshold, off, text, checkpoint)
        _, lines, _, note, shared, err, options = states.draw(parity_id, 0, "layers.0.hook_h", "seed", 0, None, 10,
                                                              2, 5, 0.0, [], "", None)
        assert err == "" and "unit(s) above" in note and shared["t0"] == 2
        assert [t.name for t in lines.data] == [f"unit {u}" for u in shared["units"]]
        assert [o["value"] for o in options] == [f"layers.0.hook_h:{u}" for u in range(8)]
        assert states.draw("../../etc", 0, "layers.0.hook_h", "seed", 0, None, None, None, None, 0.0, [], "",
                           None)[5].startswith("invalid run id")
        table = states.match(1, shared, 0.0, None).children[1]
        assert table.id == "states-match-table" and len(table.children) > 1
        scores = [float(row.children[2].children) for row in table.children[1:]]
        assert scores == sorted(scores, reverse=True)
        assert "select units first" in str(states.match(1, None, 0.0, None))
        assert "not in the alphabet" in states.draw(parity_id, 0, "layers.0.hook_h", "typed", 0, 1, None, None,
                                                    None, 0.0, [], "01x", None)[5]
        assert "page-error" in str(states.layout(run="../../etc/passwd"))
        assert "page-error" in str(training.layout(run="no-such-run"))
        _, data, err = intervene.intervene(1, parity_id, 0, "layers.0.hook_h", 0, 10, "", 3, "", "zero", 0, 1, None)
        diff = json.loads(data)["diff"]
        assert err == "" and max(diff[:3]) < 1e-5 and diff[3] > 1e-3
        assert "value must be a number" in intervene.intervene(1, parity_id, 0, "layers.0.hook_h", 0, 10, "", 3, "",
                                                               "scale", "x", 1, None)[2]
        # the brushed step, units and input carry over to Intervene
        hooks, hook, units, step, seed, length, text, note = intervene.setup(parity_id, 0, shared, None)
        assert (hook, units, step, seed, length, text) == ("layers.0.hook_h", ",".join(map(str, shared["units"])),
                                                           2, 0, 10, "")
        assert "from the States page" in note


def test_the_text_view_shows_clicked_units_over_typed_text_with_whitespace(dash_app, charlm_id):
    states = _page("states")
    with dash_app.server.test_request_context():
        # view(run, member, hook, mode, seed, go, length, picked, text, checkpoint)
        rows = states.view(charlm_id, 0, "layers.0.hook_h", "typed", 0, 1, None, [], "if x:\n  y", None)
        assert len(rows) == 3  # the three units that vary most, before any pick
        picked = states.pick({"points": [{"curveNumber": 0, "x": 2, "y": 5}]}, [], "layers.0.hook_h")
        assert picked == ["layers.0.hook_h:5"]
        assert states.pick({"points": [{"curveNumber": 0, "x": 2, "y": 5}]}, picked, "layers.0.hook_h") == []
        rows = states.view(charlm_id, 0, "layers.0.hook_h", "typed", 0, 1, None, picked + ["layers.0.hook_c:1"],
                           "if x:\n  y", None)
        assert len(rows) == 1 and "unknown hook" in str(rows)  # a GRU has no cell state: said in the page
        rows = states.view(charlm_id, 0, "layers.0.hook_h", "typed", 0, 1, None, picked + ["layers.0.hook_z:1"],
                           "if x:\n  y", None)
        assert [r.children[0].children.split()[1] for r in rows] == ["layers.0.hook_h:5", "layers.0.hook_z:1"]
        spans = [c for c in rows[0].children[1].children if type(c).__name__ == "Span"]
        assert "".join(c.children for c in spans) == "if␣x:⏎␣␣y"
        assert sum(type(c).__name__ == "Br" for c in rows[0].children[1].children) == 1  # the newline breaks the line


def test_the_analyses_page_runs_uncached_analyses_in_the_background(dash_app, parity_id):
    import analyses
    from analyses.base import Result

    analyses.register("app_unit_slow", lambda run, member=0: (time.sleep(0.5), Result(summary={"x": 1.5}))[1])
    analyses.register("app_unit_raises", lambda run, member=0: 1 / 0)
    page = _page("analyses")
    with dash_app.server.test_request_context():
        out, status, err, polling_off = page.show(1, None, parity_id, 0, "app_unit_slow")
        assert "running in the background" in status and polling_off is False
        deadline = time.time() + 20
        while "running" in status and time.time() < deadline:
            time.sleep(0.1)
            out, status, err, polling_off = page.show(None, 1, parity_id, 0, "app_unit_slow")
        assert "computed" in status and polling_off and "1.5" in str(out)
        jobs.JOBS.forget((str(app_store.resolve_run(dash_app.server.config["PROBE_STORE"], parity_id)), "app_unit_slow", 0))
        t0 = time.time()
        out, status, _, _ = page.show(2, None, parity_id, 0, "app_unit_slow")
        assert status.endswith("cached result") and time.time() - t0 < 5  # no job: read from the cache
        labels = {o["value"]: o["label"] for o in page.names(parity_id, 0)}
        assert labels["app_unit_slow"].endswith("(cached)")
        page.show(1, None, parity_id, 0, "app_unit_raises")
        deadline = time.time() + 60  # generous: CI machines may be busy; the loop ends at the first error
        while time.time() < deadline:
            _, _, err, _ = page.show(None, 1, parity_id, 0, "app_unit_raises")
            if err:
                break
            time.sleep(0.1)
        assert "ZeroDivisionError" in err
        assert "unknown run" in page.show(1, None, "gone", 0, "app_unit_slow")[2]


def test_a_corrupt_checkpoint_is_an_error_in_the_page_not_a_crash(dash_app, store, parity_id, tmp_path, monkeypatch):
    import shutil

    from app.common import message

    shutil.copytree(store / parity_id, tmp_path / parity_id)
    run = app_store.open_run(tmp_path, parity_id)
    (run.path / "ckpt" / f"step_{run.checkpoint_steps[-1]}.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception) as info:
        app_store.ModelCache().get(tmp_path, parity_id)
    assert message(info.value)
    states = _page("states")
    monkeypatch.setitem(dash_app.server.config, "PROBE_STORE", str(tmp_path))
    with dash_app.server.test_request_context():
        fig, _, _, _, _, err, _ = states.draw(parity_id, 0, "layers.0.hook_h", "seed", 0, None, 8, None, None, 0.0, [],
                                              "", None)
    assert err and fig.layout.annotations[0].text == err


@pytest.mark.parametrize("path", ["/..%2F..%2Fetc%2Fpasswd", "/%2e%2e/%2e%2e/etc/passwd", "/%252e%252e/etc/passwd",
                                  "/_dash-component-suites/dash/..%2F..%2Fsetup.py"])
def test_paths_that_climb_out_get_a_404_error_page(dash_app, path):
    r = dash_app.server.test_client().get(path)
    assert r.status_code == 404 and b"page-error" in r.data


def test_pages_are_served_and_a_bad_run_query_reaches_the_page(dash_app):
    client = dash_app.server.test_client()
    assert client.get("/states?run=../../etc/passwd").status_code == 200  # the page itself shows the error
    assert client.get("/").status_code == 200


def test_claims_are_tables_with_their_measured_values_and_links_to_figures(dash_app):
    page = _page("claims")
    with dash_app.server.test_request_context():
        table = page.layout().children[3]
    assert table.id == "claims-table"
    header, passing, failing = table.children
    assert [c.children for c in header.children][:4] == ["claim", "result", "statement", "measured"]
    measured = failing.children[3].children
    assert [[td.children for td in tr.children] for tr in measured.children] == [["a", "1"], ["b.c", "0.5, 2"]]
    links = passing.children[7].children
    assert links[0].href == "/analyses?analysis=spectrum"  # the claim's study; no run has it cached here
    assert passing.style["background"] != failing.style["background"]


def test_an_analysis_shows_its_first_figure_at_once_and_the_others_per_tab(dash_app, parity_id):
    import analyses
    import plotly.graph_objects as go
    from analyses.base import Result

    built = []

    class Figs(Result):
        def figures(self):
            built.append(1)
            return {"first": go.Figure(go.Scatter(y=[1, 2])), "second": go.Figure(go.Bar(y=[3]))}

    analyses.register("app_unit_figs", lambda run, member=0: Figs(summary={"x": 2.0}))
    page = _page("analyses")
    with dash_app.server.test_request_context():
        page.show(1, None, parity_id, 0, "app_unit_figs")
        deadline = time.time() + 30
        while time.time() < deadline:
            out, status, err, _ = page.show(None, 1, parity_id, 0, "app_unit_figs")
            if "computed" in status or err:
                break
            time.sleep(0.1)
        tabs, body = out[2], out[3]
        assert [t.value for t in tabs.children] == ["first", "second"]
        assert body.children.figure.data[0].type == "scatter"  # only the first figure is sent with the page
        assert page.tab("second", parity_id, 0, "app_unit_figs").figure.data[0].type == "bar"
        assert "show the analysis again" in str(page.tab("third", parity_id, 0, "app_unit_figs"))
        assert built == [1]  # built once, for the summary and the tabs


def test_a_link_to_a_cached_analysis_shows_it_and_nothing_is_computed_before_a_click(dash_app, parity_id):
    import analyses
    from analyses.base import Result

    calls = []
    analyses.register("app_unit_link", lambda run, member=0: (calls.append(1), Result(summary={"y": 3.0}))[1])
    page = _page("analyses")
    with dash_app.server.test_request_context():
        assert page.show(None, None, parity_id, 0, "app_unit_link")[:3] == (dash.no_update, "", "")  # not cached
        assert page.show(None, None, None, 0, None)[2] == ""  # no run yet: no error either
        assert calls == []
        run = app_store.open_run(dash_app.server.config["PROBE_STORE"], parity_id)
        analyses.analyze("app_unit_link", run)  # now cached
        out, status, err, _ = page.show(None, None, parity_id, 0, "app_unit_link")
        assert status.endswith("cached result") and "3" in str(out) and calls == [1]
