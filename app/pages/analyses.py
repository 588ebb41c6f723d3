"""Analyses: every registered analysis on the selected run; cached results load at once,
others run in a background thread while the page polls."""
from __future__ import annotations

import dash
from dash import Input, Output, State, callback, dcc, html, no_update

from app import jobs
from app.common import ERROR_STYLE, message, check_query_run, current_store, default_run, error_page, run_picker
from app.store import check_member, open_run

dash.register_page(__name__, path="/analyses", name="Analyses", order=4)


def layout(run=None, analysis=None, **_):
    try:
        run = check_query_run(run)
    except ValueError as e:
        return error_page(str(e))
    return html.Div([
        html.H3("Analyses"),
        run_picker("analyses", run),
        html.Div([html.Label("analysis "),
                  dcc.Dropdown(id="analyses-name", value=analysis, clearable=False, options=_options(run, 0),
                               style={"width": "24em", "display": "inline-block", "verticalAlign": "middle"}),
                  html.Button("show", id="analyses-go", style={"marginLeft": "1em"})]),
        html.Div(id="analyses-status", style={"color": "#555", "margin": "0.4em 0"}),
        html.Div(id="analyses-error", style=ERROR_STYLE),
        dcc.Interval(id="analyses-poll", interval=1000, disabled=True),
        html.Div(id="analyses-result"),
    ])


@callback(Output("analyses-run", "value"), Input("analyses-run", "id"), State("analyses-run", "value"),
          State("app-selected", "data"))
def _open(_, value, selected):
    return default_run(value, selected)


@callback(Output("analyses-name", "options"), Input("analyses-run", "value"), Input("analyses-member", "value"))
def names(run_id, member):
    """Every registered analysis, marked when its result is cached for this run and member."""
    return _options(run_id, member)


def _options(run_id, member) -> list[dict]:
    import analyses

    marks = {}
    try:
        run = open_run(current_store(), run_id)
        m = check_member(run, member)
        marks = {n: " (cached)" for n in analyses.names() if jobs.is_cached(run, n, m)}
    except Exception:  # noqa: BLE001 - no marks for a bad run or member; show() says why
        pass
    return [{"label": n + marks.get(n, ""), "value": n} for n in analyses.names()]


def render(result) -> list:
    """The Result's summary as a table and its figures as graphs (a figure that fails says so)."""
    rows = [html.Tr([html.Td(str(k), style={"paddingRight": "1em"}), html.Td(_cell(v))]) for k, v in result.summary.items()]
    out = [html.H4("summary"), html.Table(rows, id="analyses-summary", style={"fontFamily": "monospace"})]
    try:
        figs = result.figures()
    except Exception as e:  # noqa: BLE001 - a broken figure must not take the page down
        return out + [html.Div(f"figures failed: {type(e).__name__}: {e}", style=ERROR_STYLE)]
    return out + [dcc.Graph(figure=fig, id=f"analyses-fig-{i}") for i, fig in enumerate(figs.values())]


def _cell(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


@callback(Output("analyses-result", "children"), Output("analyses-status", "children"), Output("analyses-error", "children"),
          Output("analyses-poll", "disabled"),
          Input("analyses-go", "n_clicks"), Input("analyses-poll", "n_intervals"),
          State("analyses-run", "value"), State("analyses-member", "value"), State("analyses-name", "value"),
          prevent_initial_call=True)
def show(_, __, run_id, member, name):
    """Load a cached result now, or start (and then poll) a background job; never block the page."""
    import analyses

    try:
        if not name:
            raise ValueError("pick an analysis")
        run = open_run(current_store(), run_id)
        m = check_member(run, member)
        if name not in analyses.names():
            raise ValueError(f"unknown analysis {name!r}")
        key = (str(run.path), name, m)
        job = jobs.JOBS.get(key)
        if job is None and jobs.is_cached(run, name, m):
            return render(analyses.analyze(name, run, member=m)), f"{name}: cached result", "", True
        job = jobs.JOBS.start(key, lambda: analyses.analyze(name, run, member=m))
    except Exception as e:  # noqa: BLE001 - whatever goes wrong is shown in the page
        return no_update, "", message(e), True
    if job["state"] == "running":
        return no_update, f"{name}: running in the background ({jobs.JOBS.elapsed(key):.0f} s)…", "", False
    if job["state"] == "error":
        jobs.JOBS.forget(key)  # the next click tries again
        return "", "", f"{name} failed: {job['error']}", True
    return render(job["result"]), f"{name}: computed in {jobs.JOBS.elapsed(key):.1f} s", "", True
