"""Training: every logged metric against step, per member; clicking a checkpoint picks it for the other pages."""
from __future__ import annotations

import dash
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from app import figures, logic
from app.common import ERROR_STYLE, current_store, message, open_on_selected, run_page, step_for
from app.store import open_run

dash.register_page(__name__, path="/training", name="Training", order=1)


def layout(run=None, **_):
    return run_page(run, "Training", "training", [
        html.Div([html.Label("checkpoint used by the other pages "),
                  dcc.Dropdown(id="training-ckpt", clearable=True, placeholder="last",
                               style={"width": "12em", "display": "inline-block", "verticalAlign": "middle"}),
                  dcc.Checklist(id="training-logx", options=[{"label": " log step", "value": "log"}], value=[],
                                inline=True, style={"display": "inline-block", "marginLeft": "1em"})]),
        html.Div(id="training-error", style=ERROR_STYLE),
        dcc.Graph(id="training-graph", figure=figures.empty("pick a run")),
    ], member=False)


open_on_selected("training")


@callback(Output("training-ckpt", "options"), Output("training-ckpt", "value"),
          Input("training-run", "value"), Input("training-graph", "clickData"), State("app-checkpoint", "data"))
def checkpoints(run_id, click, picked):
    """Checkpoint choices of the run; a click on the figure picks the nearest checkpoint."""
    if not run_id:
        return [], None
    try:
        run = open_run(current_store(), run_id)
    except Exception:  # noqa: BLE001 - no checkpoints to offer; draw() shows why
        return [], None
    options = [{"label": str(s), "value": s} for s in run.checkpoint_steps]
    if ctx.triggered_id == "training-graph":
        return options, logic.pick_checkpoint(run, click)
    return options, step_for(picked, run_id)


@callback(Output("training-graph", "figure"), Output("training-error", "children"), Output("app-checkpoint", "data"),
          Input("training-run", "value"), Input("training-ckpt", "value"), Input("training-logx", "value"))
def draw(run_id, step, logx):
    """The training figure; the chosen checkpoint goes to the app-wide store."""
    if not run_id:
        return figures.empty("pick a run (or select one on the Runs page)"), "", no_update
    try:
        run = open_run(current_store(), run_id)
        curves = {k: logic.member_curves(run, k) for k in logic.metric_keys(run)}
        fig = figures.training(curves, run.checkpoint_steps, log_x="log" in (logx or []), selected=step)
    except Exception as e:  # noqa: BLE001 - whatever goes wrong is shown in the page
        return figures.empty(""), message(e), no_update
    return fig, "", {"run": run_id, "step": step}
