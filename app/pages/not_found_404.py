"""The page every unknown URL gets (path traversal attempts included)."""
import dash
from dash import dcc, html

dash.register_page(__name__, path="/404", name="Not found")

layout = html.Div([html.H3("Not found"),
                   html.Div("No such page in this explorer.", id="page-error", style={"color": "#a00"}),
                   dcc.Link("back to the runs", href="/")])
