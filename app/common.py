"""Pieces every page shares: the store of the running app, the run picker, error boxes."""
from __future__ import annotations

from dash import dcc, html

from app import store as _store

ERROR_STYLE = {"color": "#a00", "whiteSpace": "pre-wrap", "fontWeight": "bold", "margin": "0.4em 0"}


def current_store() -> str:
    """The store folder of the app serving this request."""
    from flask import current_app

    return current_app.config["PROBE_STORE"]


def run_options() -> list[dict]:
    """Dropdown options: every run in the store."""
    from probe.runs import list_runs

    return [{"label": f"{r['id']} ({r['status']})", "value": r["id"]} for r in list_runs(current_store())]


def error_page(message: str) -> html.Div:
    """What a page shows instead of itself when its URL names a bad run."""
    return html.Div([html.H3("Cannot show this page"), html.Div(message, id="page-error", style=ERROR_STYLE),
                     dcc.Link("back to the runs", href="/")])


def check_query_run(run: str | None) -> str | None:
    """Validate a ``?run=`` query value (``ValueError`` with the reason); ``None`` when absent."""
    if run is None:
        return None
    _store.resolve_run(current_store(), run)
    return run


def run_page(run: str | None, title: str, prefix: str, body: list, member: bool = True) -> html.Div:
    """A page about one run: its title, the run picker (``<prefix>-run``, ``<prefix>-member``)
    and ``body``; the error page instead when the ``?run=`` query is bad."""
    try:
        run = check_query_run(run)
    except ValueError as e:
        return error_page(str(e))
    return html.Div([html.H3(title), run_picker(prefix, run, member=member), *body])


def run_picker(prefix: str, run: str | None, member: bool = True) -> html.Div:
    """The run dropdown (``<prefix>-run``) and member input (``<prefix>-member``) at the top of a page."""
    items = [html.Label("run "), dcc.Dropdown(id=f"{prefix}-run", options=run_options(), value=run,
                                              style={"width": "34em", "display": "inline-block", "verticalAlign": "middle"})]
    if member:
        items += [html.Label(" member ", style={"marginLeft": "1em"}),
                  dcc.Input(id=f"{prefix}-member", type="number", min=0, step=1, value=0, style={"width": "4em"})]
    return html.Div(items, style={"marginBottom": "0.5em"})


def open_on_selected(prefix: str) -> None:
    """Register the callback that opens a page on the first run selected on the Runs page when its
    URL names none. It runs in the browser (a clientside callback): no round trip to the server
    before the page's own callbacks start."""
    from dash import Input, Output, State, clientside_callback

    clientside_callback(
        """function(_, value, selected) {
            const ok = Array.isArray(selected) && selected.length > 0 && typeof selected[0] === "string";
            return (value || !ok) ? window.dash_clientside.no_update : selected[0];
        }""",
        Output(f"{prefix}-run", "value"), Input(f"{prefix}-run", "id"), State(f"{prefix}-run", "value"),
        State("app-selected", "data"))


def step_for(checkpoint: dict | None, run_id: str | None):
    """The checkpoint step picked on the Training page, if it was picked for this run."""
    if isinstance(checkpoint, dict) and checkpoint.get("run") == run_id:
        return checkpoint.get("step")
    return None


def message(e: Exception) -> str:
    """An exception as the one line a page shows (the class named unless it is a plain ValueError)."""
    return str(e) if type(e) is ValueError else f"{type(e).__name__}: {e}"
