"""States (live LSTMVis): a unit × time heatmap of any hook on an input sampled or typed; brush a
time range and a threshold to select units; find inputs where they switch on alike; PCA."""
from __future__ import annotations

import dash
import numpy as np
from dash import Input, Output, State, callback, dash_table, dcc, html, no_update

from app import figures, logic
from app.common import ERROR_STYLE, message, current_store, default_run, run_page, step_for
from app.store import MODELS

dash.register_page(__name__, path="/states", name="States", order=2)

_ROW = {"display": "inline-block", "verticalAlign": "middle", "marginRight": "1em"}


def layout(run=None, **_):
    return run_page(run, "States", "states", [
        html.Div([
            html.Label("hook "), dcc.Dropdown(id="states-hook", clearable=False, style={**_ROW, "width": "16em"}),
            dcc.RadioItems(id="states-mode", options=[{"label": " sample by seed ", "value": "seed"},
                                                      {"label": " type an input", "value": "typed"}],
                           value="seed", inline=True, style=_ROW),
            dcc.Input(id="states-seed", type="number", min=0, step=1, value=0, style={"width": "5em", **_ROW}),
            dcc.Input(id="states-length", type="number", min=1, step=1, placeholder="length", debounce=True,
                      style={"width": "5em", **_ROW}),
            dcc.Input(id="states-text", type="text", debounce=True, placeholder="typed input",
                      style={"width": "24em", **_ROW}),
        ]),
        html.Div(id="states-alphabet", style={"color": "#777", "fontSize": 12}),
        html.Div([
            html.Label("brushed steps "),
            dcc.Input(id="states-t0", type="number", min=0, step=1, placeholder="from", style={"width": "5em"}),
            dcc.Input(id="states-t1", type="number", min=0, step=1, placeholder="to", style={"width": "5em", **_ROW}),
            html.Label("threshold ", style=_ROW),
            html.Div(dcc.Slider(id="states-threshold", min=-1, max=1, step=0.05, value=0.3,
                                marks={v: str(v) for v in (-1, -0.5, 0, 0.5, 1)},
                                tooltip={"placement": "bottom"}), style={"width": "22em", **_ROW}),
            dcc.Checklist(id="states-off", options=[{"label": " off elsewhere", "value": "off"}], value=[],
                          inline=True, style=_ROW),
        ], style={"marginTop": "0.4em"}),
        html.Div(id="states-error", style=ERROR_STYLE),
        html.Div(id="states-units", style={"fontFamily": "monospace"}),
        dcc.Graph(id="states-heatmap", figure=figures.empty("pick a run"), config={"scrollZoom": False}),
        html.Div([html.Button("find inputs whose pattern matches", id="states-match-go"),
                  html.Div(id="states-match")]),
        dcc.Graph(id="states-pca", figure=figures.empty("")),
    ])


@callback(Output("states-run", "value"), Input("states-run", "id"), State("states-run", "value"),
          State("app-selected", "data"))
def _open(_, value, selected):
    return default_run(value, selected)


@callback(Output("states-hook", "options"), Output("states-hook", "value"), Output("states-alphabet", "children"),
          Input("states-run", "value"), Input("states-member", "value"), State("states-hook", "value"),
          State("app-checkpoint", "data"))
def hooks(run_id, member, hook, ckpt):
    """Hook choices of the run's model (the state hook first) and the alphabet for typed inputs."""
    if not run_id:
        return [], None, ""
    try:
        _, model, task = MODELS.get(current_store(), run_id, member, step_for(ckpt, run_id))
    except Exception:  # noqa: BLE001 - no hooks to offer; draw() shows why
        return [], None, ""
    names = sorted(model.hook_dict, key=lambda h: (not h.endswith("hook_h"), h))
    hook = hook if hook in names else names[0]
    letters = logic.alphabet(task)
    hint = f"alphabet: {' '.join(letters)}" if letters else "this task takes vectors: sample inputs by seed"
    return names, hook, hint


@callback(Output("states-t0", "value"), Output("states-t1", "value"),
          Input("states-heatmap", "selectedData"), Input("states-heatmap", "relayoutData"), prevent_initial_call=True)
def brush(selected, relayout):
    """A box drawn (or a zoom) on the heatmap sets the brushed time range."""
    rng = logic.brush_range(relayout, selected, length=10**9)
    return (rng[0], rng[1]) if rng else (no_update, no_update)


def _input(task, mode, seed, text, length=None):
    return logic.make_input(task, mode or "seed", seed, text or "", length)


@callback(Output("states-heatmap", "figure"), Output("states-pca", "figure"), Output("states-units", "children"),
          Output("app-units", "data"), Output("states-error", "children"),
          Input("states-run", "value"), Input("states-member", "value"), Input("states-hook", "value"),
          Input("states-mode", "value"), Input("states-seed", "value"), Input("states-text", "value"), Input("states-length", "value"),
          Input("states-t0", "value"), Input("states-t1", "value"), Input("states-threshold", "value"),
          Input("states-off", "value"), State("app-checkpoint", "data"))
def draw(run_id, member, hook, mode, seed, text, length, t0, t1, threshold, off, ckpt):
    """Heatmap, PCA and the units on in the brushed range; errors go to the page."""
    if not run_id or not hook:
        return figures.empty("pick a run (or select one on the Runs page)"), figures.empty(""), "", no_update, ""
    try:
        _, model, task = MODELS.get(current_store(), run_id, member, step_for(ckpt, run_id))
        x = _input(task, mode, seed, text, length)
        trajs, _ = logic.trajectories(model, x["inputs"])
        if hook not in trajs and hook in model.hook_dict:  # a matrix state (hook_S) is cached on request only
            trajs.update(logic.trajectories(model, x["inputs"], names_filter=[hook])[0])
        if hook not in trajs:
            raise ValueError(f"hook {hook!r} is not in this model")
        traj = trajs[hook]  # (T, D)
        T = traj.shape[0]
        units, brushed, note = [], None, "brush a time range on the heatmap (drag across it) to select units"
        if t0 is not None and t1 is not None:
            brushed = (max(0, min(int(t0), int(t1))), min(T - 1, max(int(t0), int(t1))))
            if brushed[0] > brushed[1]:
                raise ValueError(f"brushed range outside the input's 0..{T - 1}")
            units = logic.select_units(traj, *brushed, float(threshold or 0), "off" in (off or []))
            note = (f"{len(units)} unit(s) above {threshold} on steps {brushed[0]}..{brushed[1]}"
                    f"{' and off elsewhere' if 'off' in (off or []) else ''}: {units}")
        state_hook = "layers.0.hook_h" if "layers.0.hook_h" in trajs else hook
        proj, ratios = logic.pca(trajs[state_hook])
    except Exception as e:  # noqa: BLE001 - whatever goes wrong is shown in the page
        return figures.empty(message(e)), figures.empty(""), "", no_update, message(e)
    heat = figures.states_heatmap(traj, x["labels"], x["features"], hook, units, brushed)
    heat.update_layout(uirevision=f"{run_id}{hook}{mode}{seed}{text}{length}")
    shared = {"run": run_id, "hook": hook, "units": units, "t0": brushed and brushed[0], "t1": brushed and brushed[1],
              "member": member, "mode": mode, "seed": seed, "text": text, "length": length}
    return heat, figures.pca_figure(proj, ratios, x["labels"]), note, shared, ""


@callback(Output("states-match", "children"), Input("states-match-go", "n_clicks"), State("app-units", "data"),
          State("states-threshold", "value"), State("app-checkpoint", "data"), prevent_initial_call=True)
def match(_, sel, threshold, ckpt):
    """Sampled inputs on which the selected units switch on as in the brushed range."""
    try:
        if not sel or not sel.get("units") or sel.get("t0") is None:
            raise ValueError("select units first: brush a time range with units above the threshold")
        _, model, task = MODELS.get(current_store(), sel["run"], sel.get("member"), step_for(ckpt, sel["run"]))
        x = _input(task, sel.get("mode"), sel.get("seed"), sel.get("text"), sel.get("length"))
        trajs, _ = logic.trajectories(model, x["inputs"])
        on = (trajs[sel["hook"]][:, sel["units"]] > float(threshold or 0)).all(-1)  # (T,)
        lo, hi = max(0, sel["t0"] - 2), min(len(on) - 1, sel["t1"] + 2)  # the range and a little context
        rows = logic.match_inputs(model, task, sel["hook"], sel["units"], on[lo:hi + 1].astype(np.bool_),
                                  float(threshold or 0))
    except Exception as e:  # noqa: BLE001 - whatever goes wrong is shown in the page
        return html.Div(message(e), style=ERROR_STYLE)
    return dash_table.DataTable(data=rows, columns=[{"name": k, "id": k} for k in ("sample", "start", "score", "text")],
                                style_cell={"fontFamily": "monospace", "fontSize": 12, "textAlign": "left"})
