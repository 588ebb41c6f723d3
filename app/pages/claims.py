"""Claims: the table ``probe verify`` wrote into the store, pass/fail and measured values."""
from __future__ import annotations

import functools

import dash
from dash import dcc, html

from app import logic
from app.common import ERROR_STYLE, current_store

dash.register_page(__name__, path="/claims", name="Claims", order=5)


@functools.lru_cache(maxsize=1)
def _claim_modules() -> dict[str, str]:
    """Claim id -> the module that registered it (importing every analysis module, once)."""
    import analyses
    from probe import claims

    try:
        analyses.load_all()
    except Exception:  # noqa: BLE001 - a broken analysis module must not take the page down
        return {}
    return {spec.id: spec.fn.__module__ for spec in claims.registered()}


def _analysis_of(claim_id: str) -> str | None:
    """The analysis whose figures back a claim: the module that defines it, else the id's prefix."""
    import analyses

    module = _claim_modules().get(str(claim_id), "").split(".")
    for name in (module[1] if len(module) > 1 else "", str(claim_id).split(".")[0]):
        if name in analyses.names():
            return name
    return None


_CELL = {"padding": "0.3em 0.6em", "verticalAlign": "top", "borderTop": "1px solid #ddd", "textAlign": "left"}
_COLOUR = {"PASS": "#e8f6e8", "FAIL": "#fbe3e3"}


def _measured(rows: list[tuple[str, str]]) -> html.Table:
    """A claim's measured values as a small key / value table (one row per quantity)."""
    return html.Table([html.Tr([html.Td(k, style={"color": "#555", "paddingRight": "0.8em"}), html.Td(v)])
                       for k, v in rows], className="claims-measured", style={"fontSize": 12, "fontFamily": "monospace"})


def _figures(name: str | None, runs: list[str]) -> list:
    """Links to the analysis behind a claim, on every run where its result (and so its figures) is cached."""
    if not name:
        return []
    links = [dcc.Link(f"{name} on {r}", href=f"/analyses?run={r}&analysis={name}") for r in runs[:6]]
    if not links:
        return [dcc.Link(name, href=f"/analyses?analysis={name}"), html.Div("(not computed on a run here yet)",
                                                                          style={"color": "#777"})]
    return [html.Div(link) for link in links] + ([html.Div(f"and {len(runs) - 6} more")] if len(runs) > 6 else [])


def layout(**_):
    try:
        rows, head = logic.load_claims(current_store())
        error = ""
    except ValueError as e:
        rows, head, error = [], "", str(e)
    cached: dict[str, list[str]] = {}
    body = []
    for r in rows:
        name = _analysis_of(r["id"])
        if name and name not in cached:
            cached[name] = logic.cached_runs(current_store(), name)
        cells = [html.B(str(r["id"])), html.Span(r["result"], className="claims-result", style={"fontWeight": "bold"}),
                 str(r["statement"] or ""), _measured(r["measured_rows"]), str(r["expected"] or ""),
                 str(r["source"] or ""), "" if r["seconds"] is None else f"{r['seconds']:.1f}",
                 _figures(name, cached.get(name, []))]
        body.append(html.Tr([html.Td(c, style=_CELL) for c in cells], style={"background": _COLOUR[r["result"]]}))
    header = html.Tr([html.Th(h, style=_CELL) for h in
                      ("claim", "result", "statement", "measured", "expected", "source", "seconds", "figures")])
    return html.Div([
        html.H3("Claims"), html.Div(head, id="claims-head"), html.Div(error, id="claims-error", style=ERROR_STYLE),
        html.Table([header, *body], id="claims-table", style={"borderCollapse": "collapse", "fontSize": 13}),
        dcc.Markdown("Each row is one reproduced paper claim; rerun `probe verify` to refresh. The figures column "
                     "opens the analysis behind the claim on the runs where its result is cached."),
    ])
