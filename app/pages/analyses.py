"""Analyses: every registered analysis on the selected run; cached results load at once,
others run in a background thread while the page polls."""
from __future__ import annotations

import threading
from collections import OrderedDict

import dash
from dash import Input, Output, State, callback, dcc, html, no_update

from app import jobs
from app.common import (ERROR_STYLE, check_query_run, current_store, error_page, message, open_on_selected,
                        run_picker)
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


open_on_selected("analyses")


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


_SHOWN: OrderedDict = OrderedDict()  # result_key(...) -> (result, {name: figure}), the 4 latest
_LOCK = threading.Lock()


def result_key(run, name: str, member: int) -> tuple:
    """Which result is shown: the run, analysis, member and the version of its cache file."""
    import os

    import analyses

    path = run.path / "analyses" / analyses._cache_name(name, member, {})
    try:
        version = os.lstat(path).st_mtime_ns
    except OSError:
        version = 0
    return str(run.path), name, member, version


def shown(key: tuple, load) -> tuple:
    """``(result, figures)`` for ``key``: from memory, else ``load()`` and its figures built once
    (the tabs then send them one at a time)."""
    with _LOCK:
        if key in _SHOWN:
            _SHOWN.move_to_end(key)
            return _SHOWN[key]
    result = load()
    try:
        figs = result.figures()
    except Exception as e:  # noqa: BLE001 - a broken figure must not take the page down
        figs = e
    with _LOCK:
        _SHOWN[key] = (result, figs)
        while len(_SHOWN) > 4:
            _SHOWN.popitem(last=False)
    return result, figs


def render(result, figs) -> list:
    """The Result's summary as a table and its figures in tabs, the first one drawn; a tab's figure
    is sent when the tab is opened (figures that failed say so)."""
    rows = [html.Tr([html.Td(str(k), style={"paddingRight": "1em"}), html.Td(_cell(v))]) for k, v in result.summary.items()]
    out = [html.H4("summary"), html.Table(rows, id="analyses-summary", style={"fontFamily": "monospace"})]
    if isinstance(figs, Exception):
        return out + [html.Div(f"figures failed: {type(figs).__name__}: {figs}", style=ERROR_STYLE)]
    if not figs:
        return out
    names = list(figs)
    return out + [dcc.Tabs(id="analyses-tabs", value=names[0], children=[dcc.Tab(label=n, value=n) for n in names]),
                  html.Div(dcc.Graph(figure=figs[names[0]], id="analyses-fig"), id="analyses-tab-body")]


@callback(Output("analyses-tab-body", "children"), Input("analyses-tabs", "value"),
          State("analyses-run", "value"), State("analyses-member", "value"), State("analyses-name", "value"),
          prevent_initial_call=True)
def tab(fig_name, run_id, member, name):
    """The figure of the opened tab, from the figures built when the result was shown."""
    try:
        run = open_run(current_store(), run_id)
        key = result_key(run, name, check_member(run, member)) if isinstance(name, str) else None
        with _LOCK:
            figs = _SHOWN.get(key, (None, None))[1]
        if not isinstance(figs, dict) or not isinstance(fig_name, str) or fig_name not in figs:
            raise ValueError("show the analysis again to see this figure")
    except Exception as e:  # noqa: BLE001 - whatever goes wrong is shown in the page
        return html.Div(message(e), style={"color": "#777"})
    return dcc.Graph(figure=figs[fig_name], id="analyses-fig")


def _cell(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


@callback(Output("analyses-result", "children"), Output("analyses-status", "children"), Output("analyses-error", "children"),
          Output("analyses-poll", "disabled"),
          Input("analyses-go", "n_clicks"), Input("analyses-poll", "n_intervals"),
          State("analyses-run", "value"), State("analyses-member", "value"), State("analyses-name", "value"))
def show(clicks, polls, run_id, member, name):
    """Load a cached result now, or start (and then poll) a background job; never block the page.
    Opened from a link naming the run and analysis (the Claims page's), a cached result shows at
    once; nothing is computed before a click."""
    import analyses

    opening = clicks is None and polls is None
    try:
        if not name:
            raise ValueError("pick an analysis")
        run = open_run(current_store(), run_id)
        m = check_member(run, member)
        if name not in analyses.names():
            raise ValueError(f"unknown analysis {name!r}")
        if opening and not jobs.is_cached(run, name, m):
            return no_update, "", "", True
        key = (str(run.path), name, m)
        job = jobs.JOBS.get(key)
        if job is None and jobs.is_cached(run, name, m):
            shown_now = shown(result_key(run, name, m), lambda: analyses.analyze(name, run, member=m))
            return render(*shown_now), f"{name}: cached result", "", True
        job = jobs.JOBS.start(key, lambda: analyses.analyze(name, run, member=m))
    except Exception as e:  # noqa: BLE001 - whatever goes wrong is shown in the page (after a click)
        return no_update, "", "" if opening else message(e), True
    if job["state"] == "running":
        return no_update, f"{name}: running in the background ({jobs.JOBS.elapsed(key):.0f} s)…", "", False
    if job["state"] == "error":
        jobs.JOBS.forget(key)  # the next click tries again
        return "", "", f"{name} failed: {job['error']}", True
    result = job["result"]
    return render(*shown(result_key(run, name, m), lambda: result)), f"{name}: computed in {jobs.JOBS.elapsed(key):.1f} s", "", True
