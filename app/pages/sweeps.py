"""Sweeps: the grids ``probe sweep`` trained into the store, their progress, final metrics and figure."""
from __future__ import annotations

import dash
from dash import Input, Output, callback, dash_table, dcc, html

from app import figures, logic
from app.common import ERROR_STYLE, current_store, error_page, message
from app.store import resolve_sweep

dash.register_page(__name__, path="/sweeps", name="Sweeps", order=6)

_CELL = {"padding": "0.2em 0.7em", "borderTop": "1px solid #ddd", "textAlign": "left"}
_COUNTS = ("points", "done", "running", "failed", "not started")


def _listing(rows: list[dict]) -> html.Table:
    """The store's sweeps: name (a link that shows it), progress counts, varying axes or error."""
    head = html.Tr([html.Th(h, style=_CELL) for h in ("sweep", *_COUNTS, "varying")])
    body = []
    for r in rows:
        name = dcc.Link(r["name"], href=f"/sweeps?sweep={r['name']}")
        if "error" in r:
            cells = [name, html.Span(r["error"], style={"color": "#a00"})]
            body.append(html.Tr([html.Td(cells[0], style=_CELL), html.Td(cells[1], colSpan=len(_COUNTS) + 1,
                                                                         style=_CELL)]))
        else:
            body.append(html.Tr([html.Td(c, style=_CELL) for c in (name, *(r[k] for k in _COUNTS), r["varying"])]))
    return html.Table([head, *body], id="sweeps-list", style={"borderCollapse": "collapse", "fontSize": 13})


def _dropdown(id_: str, width: str = "16em") -> dcc.Dropdown:
    return dcc.Dropdown(id=id_, clearable=False, style={"width": width, "display": "inline-block",
                                                        "verticalAlign": "middle"})


def layout(sweep=None, **_):
    if sweep is not None:  # ?sweep=NAME: a sweep of this store, or the error page
        try:
            resolve_sweep(current_store(), sweep)
        except ValueError as e:
            return error_page(str(e))
    try:
        rows, note = logic.list_sweeps(current_store())
        error = ""
    except ValueError as e:
        rows, note, error = [], "", str(e)
    names = [r["name"] for r in rows]
    chosen = sweep if sweep is not None else (names[0] if names else None)
    if chosen is not None and chosen not in names:
        names.append(chosen)  # beyond the first MAX_SWEEPS
    return html.Div([
        html.H3(f"Sweeps ({len(rows)})"),
        html.Div(note, id="sweeps-head", style={"color": "#555"}),
        _listing(rows),
        dcc.Markdown("Each sweep is a grid of runs that `probe sweep SPEC.toml` trains; *failed* counts points "
                     "stopped before their last step (an error, or killed): rerunning the sweep resumes them. "
                     "Below, the table `probe sweep SPEC.toml --report` writes as CSV and its figure."),
        html.Div([html.Label("sweep "), dcc.Dropdown(id="sweeps-name", options=names, value=chosen, clearable=False,
                                                     style={"width": "22em", "display": "inline-block",
                                                            "verticalAlign": "middle"}),
                  html.Label(" metric ", style={"marginLeft": "1em"}), _dropdown("sweeps-metric"),
                  html.Label(" against ", style={"marginLeft": "1em"}), _dropdown("sweeps-x", "12em")]),
        html.Div(error, id="sweeps-error", style=ERROR_STYLE),
        html.Div(id="sweeps-note", style={"color": "#555"}),
        dcc.Graph(id="sweeps-graph", figure=figures.empty("pick a sweep")),
        dash_table.DataTable(id="sweeps-table", data=[], columns=[], sort_action="native", filter_action="native",
                             page_size=20, markdown_options={"link_target": "_self"},
                             style_table={"overflowX": "auto"}, style_cell={"fontFamily": "monospace", "fontSize": 12}),
    ])


def _link(cell: dict) -> dict:
    """The id cell as a markdown link to the run's Training page, once the run exists."""
    rid = cell.get("id")
    if cell.get("status") == "new":
        return {**cell, "id": rid.replace("_", "\\_")}
    return {**cell, "id": f"[{rid.replace('_', chr(92) + '_')}](/training?run={rid})"}


@callback(Output("sweeps-metric", "options"), Output("sweeps-metric", "value"), Output("sweeps-x", "options"),
          Output("sweeps-x", "value"), Output("sweeps-graph", "figure"), Output("sweeps-table", "data"),
          Output("sweeps-table", "columns"), Output("sweeps-note", "children"), Output("sweeps-error", "children"),
          Input("sweeps-name", "value"), Input("sweeps-metric", "value"), Input("sweeps-x", "value"))
def show(name, metric, x):
    """The chosen sweep's table and figure; a metric or axis not of this sweep falls back to the report's."""
    if name is None:
        return [], None, [], None, figures.empty("pick a sweep"), [], [], "", ""
    try:
        view = logic.sweep_view(current_store(), name, metric, x)
    except Exception as e:  # noqa: BLE001 - whatever goes wrong is shown in the page
        return [], None, [], None, figures.empty(""), [], [], "", message(e)
    counts = ", ".join(f"{v} {k}" for k, v in view["counts"].items())
    note = f"{view['note'] + ': ' if view['note'] else ''}{counts}"
    columns = [{"name": c, "id": c, **({"presentation": "markdown"} if c == "id" else {}),
                **({"type": "numeric", "format": {"specifier": ".4~g"}} if c in view["metrics"] else {})}  # shown
               for c in view["columns"]]  # rounded; the data (and a sort) keep every digit, as the CSV does
    fig = view["figure"] if view["figure"] is not None else figures.empty(view["error"])
    return (view["metrics"], view["metric"], view["axes"], view["x"], fig, [_link(r) for r in view["rows"]], columns,
            note, view["error"])
