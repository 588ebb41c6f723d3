"""Runs: the store as a sortable, filterable table; selected rows travel to the other pages."""
from __future__ import annotations

import dash
from dash import Input, Output, State, callback, dash_table, dcc, html

from app import figures, logic
from app.common import ERROR_STYLE, current_store, message

dash.register_page(__name__, path="/", name="Runs", order=0)

_FIRST = ["id", "task", "arch", "hidden", "layers", "members", "status", "step", "steps", "seed", "diverged"]


def layout(**_):
    try:
        rows = logic.runs_table(current_store())
        error = ""
    except ValueError as e:
        rows, error = [], str(e)
    keys = list(dict.fromkeys(_FIRST + [k for r in rows for k in r]))
    keys = [k for k in keys if any(k in r for r in rows)] or _FIRST
    claims, claims_head = [], ""
    try:
        claims, claims_head = logic.load_claims(current_store())
    except ValueError as e:
        claims_head = str(e)
    return html.Div([
        html.H3(f"Runs ({len(rows)})"),
        html.Div(error, id="runs-error", style=ERROR_STYLE),
        html.Div(f"Claims: {claims_head}" if claims else claims_head, style={"color": "#555"}),
        dash_table.DataTable(
            id="runs-table", data=rows, columns=[{"name": k, "id": k} for k in keys],
            sort_action="native", filter_action="native", row_selectable="multi", page_size=20,
            style_table={"overflowX": "auto"}, style_cell={"fontFamily": "monospace", "fontSize": 12},
            style_data_conditional=[{"if": {"filter_query": '{status} = "diverged"'}, "color": "#a00"}]),
        html.Div(id="runs-links", style={"margin": "0.6em 0"}),
        html.Div([html.Label("metric "),
                  dcc.Dropdown(id="runs-metric", value="loss", clearable=False,
                               options=["loss"] + sorted(k for k in keys if "." in k),
                               style={"width": "20em", "display": "inline-block", "verticalAlign": "middle"}),
                  dcc.Checklist(id="runs-logx", options=[{"label": " log step", "value": "log"}], value=[],
                                inline=True, style={"display": "inline-block", "marginLeft": "1em"})]),
        dcc.Graph(id="runs-compare", figure=figures.compare_curves({})),
    ])


@callback(Output("app-selected", "data"), Output("runs-links", "children"), Input("runs-table", "derived_virtual_data"),
          Input("runs-table", "derived_virtual_selected_rows"), prevent_initial_call=True)
def select_runs(data, selected):
    """Selected rows become the app-wide selection, with links to the run's pages."""
    rows = data if isinstance(data, list) else []
    picked = selected if isinstance(selected, list) else []
    ids = [rows[i]["id"] for i in picked if isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(rows)
           and isinstance(rows[i], dict) and isinstance(rows[i].get("id"), str)]
    links = [html.Div([html.Code(i), " → "] + [dcc.Link(p, href=f"/{p.lower()}?run={i}", style={"marginRight": "0.6em"})
                                               for p in ("Training", "States", "Intervene", "Analyses")]) for i in ids]
    return ids, links


@callback(Output("runs-compare", "figure"), Output("runs-metric", "options"), Output("runs-error", "children", allow_duplicate=True),
          Input("app-selected", "data"), Input("runs-metric", "value"), Input("runs-logx", "value"), prevent_initial_call=True)
def compare(selected, key, logx):
    """Curves of the selected runs, one line each (mean over members)."""
    from app.store import open_run

    curves, keys, errors = {}, {"loss": None}, []
    key = key if isinstance(key, str) else "loss"
    logx = logx if isinstance(logx, list) else []
    for rid in (selected if isinstance(selected, list) else [])[:50]:
        try:
            run = open_run(current_store(), rid)
            keys.update(dict.fromkeys(logic.metric_keys(run)))
            steps, vals = run.curve(key or "loss")
            if steps:
                curves[rid] = (steps, vals)
        except Exception as e:  # noqa: BLE001 - one unreadable run must not hide the others
            errors.append(f"{rid}: {message(e)}")
    return (figures.compare_curves(curves, key or "loss", log_x="log" in (logx or [])),
            [{"label": k, "value": k} for k in keys], "\n".join(errors))


@callback(Output("runs-table", "selected_rows"), Input("runs-table", "id"), State("runs-table", "data"),
          State("app-selected", "data"))
def restore(_, data, selected):
    """Coming back to the page, the runs selected before are still ticked."""
    picked = [x for x in selected if isinstance(x, str)] if isinstance(selected, list) else []
    return [i for i, row in enumerate(data if isinstance(data, list) else [])
            if isinstance(row, dict) and row.get("id") in picked]
