"""Claims: the table ``probe verify`` wrote into the store, pass/fail and measured values."""
from __future__ import annotations

import dash
from dash import dash_table, dcc, html

from app import logic
from app.common import ERROR_STYLE, current_store

dash.register_page(__name__, path="/claims", name="Claims", order=5)


def _analysis_of(claim_id: str) -> str | None:
    import analyses

    head = str(claim_id).split(".")[0].split("-")[0]
    return head if head in analyses.names() else None


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
