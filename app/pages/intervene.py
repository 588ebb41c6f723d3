"""Intervene: ablate, clamp, scale, set or patch units at one step of a live model and compare."""
from __future__ import annotations

import json

import dash
from dash import Input, Output, State, callback, dcc, html, no_update

from app import figures, logic
from app.common import ERROR_STYLE, current_store, message, open_on_selected, run_page, step_for
from app.store import MODELS

dash.register_page(__name__, path="/intervene", name="Intervene", order=3)

_ROW = {"display": "inline-block", "verticalAlign": "middle", "marginRight": "1em"}
_OPS = [("zero", "zero-ablate"), ("clamp", "clamp to ±value"), ("scale", "scale by value"), ("set", "set to value"),
        ("patch", "patch from a second input")]


def layout(run=None, **_):
    return run_page(run, "Intervene", "intervene", [
        html.Div([html.Label("hook "), dcc.Dropdown(id="intervene-hook", clearable=False, style={**_ROW, "width": "16em"}),
                  html.Label("input seed "), dcc.Input(id="intervene-seed", type="number", min=0, step=1, value=0,
                                                       style={"width": "5em", **_ROW}),
                  dcc.Input(id="intervene-length", type="number", min=1, step=1, placeholder="length",
                            style={"width": "5em", **_ROW}),
                  dcc.Textarea(id="intervene-text", placeholder="or type an input (spaces and newlines kept)",
                               rows=1, style={"width": "24em", "fontFamily": "monospace", **_ROW})]),
        html.Div([html.Label("step "), dcc.Input(id="intervene-step", type="number", min=0, step=1, value=3,
                                                 style={"width": "5em", **_ROW}),
                  html.Label("units "), dcc.Input(id="intervene-units", type="text", placeholder="all (or 0,3,5-7)",
                                                  style={"width": "12em", **_ROW}),
                  dcc.RadioItems(id="intervene-op", options=[{"label": f" {l} ", "value": v} for v, l in _OPS],
                                 value="zero", inline=True, style=_ROW)], style={"marginTop": "0.4em"}),
        html.Div([html.Label("value "), dcc.Input(id="intervene-value", type="number", value=0, style={"width": "6em", **_ROW}),
                  html.Label("second input seed (patch) "),
                  dcc.Input(id="intervene-source", type="number", min=0, step=1, value=1, style={"width": "5em", **_ROW}),
                  html.Button("run the intervention", id="intervene-go")], style={"marginTop": "0.4em"}),
        html.Div(id="intervene-note", style={"color": "#555"}),
        html.Div(id="intervene-error", style=ERROR_STYLE),
        dcc.Loading(dcc.Graph(id="intervene-graph", figure=figures.empty("set up an edit and run it"))),
        html.Pre(id="intervene-data", style={"display": "none"}),
    ])


open_on_selected("intervene")


@callback(Output("intervene-hook", "options"), Output("intervene-hook", "value"), Output("intervene-units", "value"),
          Output("intervene-step", "value"), Output("intervene-seed", "value"), Output("intervene-length", "value"),
          Output("intervene-text", "value"), Output("intervene-note", "children"),
          Input("intervene-run", "value"), Input("intervene-member", "value"), State("app-units", "data"),
          State("app-checkpoint", "data"))
def setup(run_id, member, picked, ckpt):
    """Hooks of the model; the hook, units, first brushed step and input chosen on the States page carry over."""
    keep = (no_update,) * 4
    if not run_id:
        return [], None, "", *keep, ""
    try:
        _, model, _ = MODELS.get(current_store(), run_id, member, step_for(ckpt, run_id))
    except Exception:  # noqa: BLE001 - no hooks to offer; intervene() shows why
        return [], None, "", *keep, ""
    names = [h for h in sorted(model.hook_dict, key=lambda h: (not h.endswith("hook_h"), h)) if h != "hook_logits"]
    carried = logic.carried_over(picked, run_id, names)
    if carried is None:
        return names, names[0], "", *keep, ""
    c = carried
    what = ", ".join(k for k, v in (("units", c["units"]), ("step", c["step"] is not None), ("input", True)) if v)
    return (names, c["hook"], c["units"], c["step"] if c["step"] is not None else no_update, c["seed"], c["length"],
            c["text"], f"{what} from the States page")


@callback(Output("intervene-graph", "figure"), Output("intervene-data", "children"), Output("intervene-error", "children"),
          Input("intervene-go", "n_clicks"),
          State("intervene-run", "value"), State("intervene-member", "value"), State("intervene-hook", "value"),
          State("intervene-seed", "value"), State("intervene-length", "value"), State("intervene-text", "value"), State("intervene-step", "value"),
          State("intervene-units", "value"), State("intervene-op", "value"), State("intervene-value", "value"),
          State("intervene-source", "value"), State("app-checkpoint", "data"), prevent_initial_call=True)
def intervene(_, run_id, member, hook, seed, length, text, step, units, op, value, source, ckpt):
    """Run the edit; the figure shows both trajectories and the predictions, the hidden div the numbers."""
    try:
        if not run_id or not hook:
            raise ValueError("pick a run and a hook first")
        _, model, task = MODELS.get(current_store(), run_id, member, step_for(ckpt, run_id))
        x = logic.make_input(task, "typed" if text else "seed", seed, text or "", length)
        width = logic.trajectories(model, x["inputs"])[0][hook].shape[1]
        src = logic.make_input(task, "seed", source, "", length)["inputs"] if op == "patch" else None
        data = logic.counterfactual(model, task, x["inputs"], hook, step, logic.parse_units(units, width), op, value, src)
    except Exception as e:  # noqa: BLE001 - whatever goes wrong is shown in the page
        return figures.empty(message(e)), "", message(e)
    summary = {k: data[k] for k in ("hook", "step", "units", "op", "diff", "changed", "state_hook")}
    return figures.counterfactual(data, x["labels"]), json.dumps(summary), ""
