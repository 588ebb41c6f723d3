"""Claims: the table ``probe verify`` wrote into the store, pass/fail and measured values."""
from __future__ import annotations

import functools

import dash
from dash import dash_table, dcc, html

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


def layout(**_):
    try:
        rows, head = logic.load_claims(current_store())
        error = ""
    except ValueError as e:
        rows, head, error = [], "", str(e)
    for r in rows:
        name = _analysis_of(r["id"])
        r["figures"] = f"[{name}](/analyses?analysis={name})" if name else ""
    columns = [{"name": k, "id": k, **({"presentation": "markdown"} if k == "figures" else {})}
               for k in ("id", "result", "measured", "expected", "statement", "source", "seconds", "figures")]
    return html.Div([
        html.H3("Claims"), html.Div(head, id="claims-head"), html.Div(error, id="claims-error", style=ERROR_STYLE),
        dash_table.DataTable(id="claims-table", data=rows, columns=columns, sort_action="native",
                             filter_action="native", page_size=50,
                             style_cell={"fontSize": 12, "textAlign": "left", "whiteSpace": "normal", "maxWidth": "30em"},
                             style_data_conditional=[
                                 {"if": {"filter_query": '{result} = "PASS"'}, "backgroundColor": "#e8f6e8"},
                                 {"if": {"filter_query": '{result} = "FAIL"'}, "backgroundColor": "#fbe3e3"}]),
        dcc.Markdown("Each row is one reproduced paper claim; rerun `probe verify` to refresh."),
    ])
