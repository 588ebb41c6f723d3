"""States (live LSTMVis): a unit × time heatmap of any hook on an input sampled or typed; brush a
time range and a threshold to select units, drawn as lines over the text; the text view (each
token coloured by one unit, units picked by clicking a heatmap row or from the cells ranking);
find inputs where the selected units switch on alike; PCA; for a matrix-state model (linattn,
based, deltanet, mamba), the matrix S_t per head at a step chosen on a slider."""
from __future__ import annotations

import dash
from dash import Input, Output, State, callback, dcc, html, no_update

from app import figures, logic, textview
from app.common import ERROR_STYLE, current_store, message, open_on_selected, run_page, step_for
from app.store import MODELS, check_member

dash.register_page(__name__, path="/states", name="States", order=2)

_ROW = {"display": "inline-block", "verticalAlign": "middle", "marginRight": "1em"}
MAX_VIEW_UNITS = 8  # rows of the text view
_TOKEN = {"padding": "1px 0", "margin": "0 0.5px", "borderRadius": "2px", "whiteSpace": "pre"}


def layout(run=None, **_):
    # With the run in the URL, the hook choices come with the page: its figures start at once.
    options, hook, hint = hooks(run, 0, None, None) if isinstance(run, str) else ([], None, "")
    return run_page(run, "States", "states", [
        html.Div([
            html.Label("hook "), dcc.Dropdown(id="states-hook", clearable=False, options=options, value=hook,
                                              style={**_ROW, "width": "16em"}),
            dcc.RadioItems(id="states-mode", options=[{"label": " sample by seed ", "value": "seed"},
                                                      {"label": " type an input", "value": "typed"}],
                           value="seed", inline=True, style=_ROW),
            dcc.Input(id="states-seed", type="number", min=0, step=1, value=0, style={"width": "5em", **_ROW}),
            dcc.Input(id="states-length", type="number", min=1, step=1, placeholder="length", debounce=True,
                      style={"width": "5em", **_ROW}),
        ]),
        html.Div([
            dcc.Textarea(id="states-text", placeholder="typed input: spaces and newlines are kept (shown as ␣ ⏎)",
                         rows=2, style={"width": "40em", "fontFamily": "monospace", **_ROW}),
            html.Button("use the typed input", id="states-text-go", style=_ROW),
        ], style={"marginTop": "0.3em"}),
        html.Div(hint, id="states-alphabet", style={"color": "#777", "fontSize": 12}),
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
        html.Div([  # heatmap and lines scroll together: every token stays labelled, however long the text
            dcc.Graph(id="states-heatmap", figure=figures.empty("pick a run"), config={"scrollZoom": False}),
            dcc.Graph(id="states-lines", figure=figures.empty("")),
        ], id="states-scroll", style={"overflowX": "auto", "maxWidth": "100%"}),
        html.Div([  # shown for matrix-state models only (linattn, based, deltanet, mamba)
            html.H4("Matrix state at step t", style={"marginBottom": "0.2em"}),
            html.Div("S_t of the hook's layer, per head, value dim × key dim (blue positive, red negative, white 0; "
                     "scaled to the step's largest |entry|). The step starts at the first brushed step, else the last.",
                     style={"color": "#555", "fontSize": 13}),
            html.Div(dcc.Slider(id="states-matrix-step", min=0, max=1, step=1, value=None,
                                tooltip={"placement": "bottom"}), style={"width": "40em"}),
            html.Div(dcc.Graph(id="states-matrix", figure=figures.empty("")),
                     style={"overflowX": "auto", "maxWidth": "100%"}),
        ], id="states-matrix-panel", style={"display": "none"}),
        html.H4("Text view", style={"marginBottom": "0.2em"}),
        html.Div("Each token on a background coloured by one unit (blue positive, red negative, white 0; "
                 "scaled to the unit's largest |activation| on this input). Click a row of the heatmap to add "
                 "or remove its unit, or pick units here (the cells analysis's best units first, when cached).",
                 style={"color": "#555", "fontSize": 13}),
        dcc.Dropdown(id="states-view-units", multi=True, value=[], placeholder="units to view (default: the 3 that vary most)",
                     style={"width": "48em", "margin": "0.3em 0"}),
        html.Div(id="states-text-view", style={"fontFamily": "monospace", "fontSize": 14, "lineHeight": "1.9em"}),
        html.Div([html.Button("find inputs whose pattern matches", id="states-match-go"),
                  html.Div(id="states-match")], style={"marginTop": "1em"}),
        dcc.Graph(id="states-pca", figure=figures.empty("")),
    ])


open_on_selected("states")


@callback(Output("states-hook", "options"), Output("states-hook", "value"), Output("states-alphabet", "children"),
          Input("states-run", "value"), Input("states-member", "value"), State("states-hook", "value"),
          State("app-checkpoint", "data"), prevent_initial_call=True)
def hooks(run_id, member, hook, ckpt):
    """Hook choices of the run's model (the state hook first) and the alphabet for typed inputs
    (filled by the layout when the URL names the run; again when the run or member changes)."""
    if not run_id:
        return [], None, ""
    try:
        _, model, task = MODELS.get(current_store(), run_id, member, step_for(ckpt, run_id))
    except Exception:  # noqa: BLE001 - no hooks to offer; draw() shows why
        return [], None, ""
    names = sorted(model.hook_dict, key=lambda h: (not h.endswith("hook_h"), h))
    hook = hook if hook in names else names[0]
    letters = logic.alphabet(task)
    hint = (f"alphabet: {' '.join(textview.glyph(x) for x in letters)}" if letters
            else "this task takes vectors: sample inputs by seed")
    return names, hook, hint


@callback(Output("states-t0", "value"), Output("states-t1", "value"),
          Input("states-heatmap", "selectedData"), Input("states-heatmap", "relayoutData"), prevent_initial_call=True)
def brush(selected, relayout):
    """A box drawn (or a zoom) on the heatmap sets the brushed time range."""
    rng = logic.brush_range(relayout, selected, length=10**9)
    return (rng[0], rng[1]) if rng else (no_update, no_update)


def _input(task, mode, seed, text, length=None):
    return logic.make_input(task, mode or "seed", seed, text or "", length)


def _view_options(run, member, hook: str, width: int) -> list[dict]:
    """The text view's unit choices: the cells ranking (when cached), then every unit of ``hook``."""
    ranked = logic.cells_ranking(run, member)
    opts = [{"label": f"{u} ({feature}, score {score:.2f})", "value": u} for u, feature, score in ranked]
    seen = {o["value"] for o in opts}
    return opts + [{"label": f"{hook}:{u}", "value": f"{hook}:{u}"} for u in range(width) if f"{hook}:{u}" not in seen]


@callback(Output("states-heatmap", "figure"), Output("states-lines", "figure"), Output("states-pca", "figure"),
          Output("states-units", "children"), Output("app-units", "data"), Output("states-error", "children"),
          Output("states-view-units", "options"),
          Input("states-run", "value"), Input("states-member", "value"), Input("states-hook", "value"),
          Input("states-mode", "value"), Input("states-seed", "value"), Input("states-text-go", "n_clicks"),
          Input("states-length", "value"), Input("states-t0", "value"), Input("states-t1", "value"),
          Input("states-threshold", "value"), Input("states-off", "value"), State("states-text", "value"),
          State("app-checkpoint", "data"))
def draw(run_id, member, hook, mode, seed, _go, length, t0, t1, threshold, off, text, ckpt):
    """Heatmap, unit lines, PCA and the units on in the brushed range; errors go to the page."""
    if not run_id or not hook:
        return (figures.empty("pick a run (or select one on the Runs page)"), figures.empty(""), figures.empty(""),
                "", no_update, "", [])
    try:
        run, model, task = MODELS.get(current_store(), run_id, member, step_for(ckpt, run_id))
        x = _input(task, mode, seed, text, length)
        trajs, _ = logic.trajectories(model, x["inputs"])
        if hook not in trajs and hook in model.hook_dict:  # a matrix state (hook_S) is cached on request only
            trajs[hook] = logic.state_trajectory(model, x["inputs"], hook)  # kept for the matrix panel
        if hook not in trajs:
            raise ValueError(f"hook {hook!r} is not in this model")
        traj = trajs[hook]  # (T, D)
        T = traj.shape[0]
        threshold = float(threshold or 0)
        units, brushed, note = [], None, "brush a time range on the heatmap (drag across it) to select units"
        if t0 is not None and t1 is not None:
            a, b = logic._integer("from", t0), logic._integer("to", t1)
            brushed = (max(0, min(a, b)), min(T - 1, max(a, b)))
            if brushed[0] > brushed[1]:
                raise ValueError(f"brushed range outside the input's 0..{T - 1}")
            units = logic.select_units(traj, *brushed, threshold, "off" in (off or []))
            note = (f"{len(units)} unit(s) above {threshold} on steps {brushed[0]}..{brushed[1]}"
                    f"{' and off elsewhere' if 'off' in (off or []) else ''}: {units}")
        state_hook = "layers.0.hook_h" if "layers.0.hook_h" in trajs else hook
        proj, ratios = logic.pca(trajs[state_hook])
        options = _view_options(run, check_member(run, member), hook, traj.shape[1])
    except Exception as e:  # noqa: BLE001 - whatever goes wrong is shown in the page
        return figures.empty(message(e)), figures.empty(""), figures.empty(""), "", no_update, message(e), []
    heat = figures.states_heatmap(traj, x["labels"], x["features"], hook, units, brushed)
    heat.update_layout(uirevision=f"{run_id}{hook}{mode}{seed}{text}{length}")
    lines = figures.unit_lines(traj, x["labels"], units, hook, threshold, brushed)
    shared = {"run": run_id, "hook": hook, "units": units, "t0": brushed and brushed[0], "t1": brushed and brushed[1],
              "member": member, "mode": mode, "seed": seed, "text": text, "length": length}
    return heat, lines, figures.pca_figure(proj, ratios, x["labels"]), note, shared, "", options


@callback(Output("states-matrix-panel", "style"), Output("states-matrix-step", "max"),
          Output("states-matrix-step", "marks"), Output("states-matrix-step", "value"),
          Input("states-run", "value"), Input("states-member", "value"), Input("states-mode", "value"),
          Input("states-seed", "value"), Input("states-text-go", "n_clicks"), Input("states-length", "value"),
          Input("states-t0", "value"), State("states-text", "value"), State("app-checkpoint", "data"))
def matrix_steps(run_id, member, mode, seed, _go, length, t0, text, ckpt):
    """The matrix panel is shown for a matrix-state model only; its slider spans the input's steps
    and starts at the first brushed step (else the last). Nothing is run here."""
    hidden = ({"display": "none"}, 1, {}, None)
    if not run_id:
        return hidden
    try:
        _, model, task = MODELS.get(current_store(), run_id, member, step_for(ckpt, run_id))
        if not logic.matrix_shapes(model):
            return hidden
        T = int(_input(task, mode, seed, text, length)["inputs"].shape[1])
    except Exception:  # noqa: BLE001 - draw() shows what went wrong
        return hidden
    every = max(1, T // 10)
    return {"display": "block"}, T - 1, {t: str(t) for t in range(0, T, every)}, logic.pick_step(T, None, t0)


@callback(Output("states-matrix", "figure"),
          Input("states-matrix-step", "value"), Input("states-hook", "value"), State("states-run", "value"),
          State("states-member", "value"), State("states-mode", "value"), State("states-seed", "value"),
          State("states-length", "value"), State("states-text", "value"), State("app-checkpoint", "data"),
          prevent_initial_call=True)
def matrix(step, hook, run_id, member, mode, seed, length, text, ckpt):
    """S_t of the page hook's layer (else the first matrix layer) at the slider's step, reshaped to its
    matrices; the trajectory of S is the one the heatmap computed when it shows hook_S."""
    if not run_id or step is None:
        return figures.empty("")
    try:
        _, model, task = MODELS.get(current_store(), run_id, member, step_for(ckpt, run_id))
        shapes = logic.matrix_shapes(model)
        name = logic.matrix_hook(shapes, hook)
        if name is None:
            return figures.empty("")
        x = _input(task, mode, seed, text, length)
        traj = logic.state_trajectory(model, x["inputs"], name)  # (T, width)
        t = logic.pick_step(len(traj), step)
        mats = logic.state_matrices(traj, shapes[name], t)
    except Exception as e:  # noqa: BLE001 - whatever goes wrong is shown in the figure
        return figures.empty(message(e))
    token = x["labels"][t] if t < len(x["labels"]) else str(t)
    return figures.matrix_state(mats, shapes[name], name, t, token)


@callback(Output("states-view-units", "value"), Input("states-heatmap", "clickData"),
          State("states-view-units", "value"), State("states-hook", "value"), prevent_initial_call=True)
def pick(click, value, hook):
    """A click on a heatmap row adds its unit to the text view (or removes it when already there)."""
    unit = logic.clicked_unit(click)
    if unit is None or not isinstance(hook, str):
        return no_update
    value = [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
    name = f"{hook}:{unit}"
    return [v for v in value if v != name] if name in value else (value + [name])[-MAX_VIEW_UNITS:]


@callback(Output("states-text-view", "children"),
          Input("states-run", "value"), Input("states-member", "value"), Input("states-hook", "value"),
          Input("states-mode", "value"), Input("states-seed", "value"), Input("states-text-go", "n_clicks"),
          Input("states-length", "value"), Input("states-view-units", "value"), State("states-text", "value"),
          State("app-checkpoint", "data"))
def view(run_id, member, hook, mode, seed, _go, length, picked, text, ckpt):
    """The text view: one row per unit, each token coloured by that unit's activation."""
    if not run_id or not isinstance(hook, str):
        return ""
    try:
        _, model, task = MODELS.get(current_store(), run_id, member, step_for(ckpt, run_id))
        if task.input_kind != "tokens":
            return html.Div(f"task {task.name} takes vectors: the text view needs tokens", style={"color": "#777"})
        x = _input(task, mode, seed, text, length)
        trajs, _ = logic.trajectories(model, x["inputs"])
        if hook not in trajs:
            raise ValueError(f"hook {hook!r} is not in this model")
        names = [p for p in picked if isinstance(p, str)][:MAX_VIEW_UNITS] if isinstance(picked, list) else []
        names = names or textview.default_units(trajs, hook)
        widths = {h: t.shape[1] for h, t in trajs.items()}
        units = {}
        for name in names:
            h, u = textview.parse_unit(name, widths)
            units[name] = trajs[h][:, u]
        rows = textview.rows(x["labels"], units)
    except Exception as e:  # noqa: BLE001 - whatever goes wrong is shown in the page
        return html.Div(message(e), style=ERROR_STYLE)
    return [_text_row(r) for r in rows]


def _text_row(row: dict) -> html.Div:
    spans = []
    for t, c in enumerate(row["cells"]):
        spans.append(html.Span(c["text"], title=f"t={t}: {c['value']:.3f}",
                               style={**_TOKEN, "background": c["bg"], "color": c["fg"]}))
        if c["newline"]:
            spans.append(html.Br())
    head = html.Div(f"unit {row['unit']}  (colour scale ±{row['lim']:.3g})",
                    style={"color": "#333", "fontSize": 12, "fontFamily": "sans-serif", "marginTop": "0.4em"})
    return html.Div([head, html.Div(spans, className="states-text-row")])


@callback(Output("states-match", "children"), Input("states-match-go", "n_clicks"), State("app-units", "data"),
          State("states-threshold", "value"), State("app-checkpoint", "data"), prevent_initial_call=True)
def match(_, sel, threshold, ckpt):
    """Sampled inputs on which the selected units switch on as in the brushed range, best first,
    each shown in context with the matching window highlighted."""
    try:
        if not isinstance(sel, dict) or not sel.get("units") or sel.get("t0") is None:
            raise ValueError("select units first: brush a time range with units above the threshold")
        _, model, task = MODELS.get(current_store(), sel["run"], sel.get("member"), step_for(ckpt, sel["run"]))
        x = _input(task, sel.get("mode"), sel.get("seed"), sel.get("text"), sel.get("length"))
        trajs, _ = logic.trajectories(model, x["inputs"])
        traj = trajs[sel["hook"]]
        width = traj.shape[1]
        units = logic.parse_units(sel["units"], width) or []
        t0, t1 = logic._integer("from", sel["t0"]), logic._integer("to", sel["t1"])
        lo, hi = max(0, t0 - 2), min(len(traj) - 1, t1 + 2)  # the range and a little context
        rows = logic.match_inputs(model, task, sel["hook"], units, traj[lo:hi + 1][:, units], float(threshold or 0))
    except Exception as e:  # noqa: BLE001 - whatever goes wrong is shown in the page
        return html.Div(message(e), style=ERROR_STYLE)
    head = html.Tr([html.Th(h, style={"textAlign": "left", "paddingRight": "1em"})
                    for h in ("sample", "start", "Jaccard", "distance", "match in context")])
    body = [html.Tr([html.Td(r["sample"]), html.Td(r["start"]), html.Td(f"{r['score']:.3f}"),
                     html.Td(f"{r['distance']:.3f}"),
                     html.Td([html.Span(r["before"], style={"color": "#777"}),
                              html.Mark(r["text"], style={"background": "#ffe066"}),
                              html.Span(r["after"], style={"color": "#777"})], style={"whiteSpace": "pre"})])
            for r in rows]
    return html.Div([
        html.Div(f"{len(rows)} best of 32 sampled inputs: Jaccard index of the on-sets (unit above {threshold} "
                 f"at a step) against steps {lo}..{hi} of this input, ties broken by the mean |difference| "
                 "of the activations", style={"color": "#555", "fontSize": 13}),
        html.Table([head, *body], id="states-match-table", style={"fontFamily": "monospace", "fontSize": 13})])
