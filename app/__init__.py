"""The Dash explorer: runs, training curves, live states and interventions, analyses, claims, sweeps.

    import app
    app.run("runs")                      # http://127.0.0.1:8050
    dash_app = app.create_app("runs")    # to serve it yourself (dash_app.server is the Flask app)

Pages live in ``app/pages/`` (one module each, registered with ``dash.register_page``); the
figures and the logic behind their callbacks are plain functions in ``app/figures.py`` and
``app/logic.py``. The app reads only its store; see ``app/store.py`` for how ids are checked.
"""
from __future__ import annotations

import os
from pathlib import Path


def create_app(store: str | os.PathLike = "runs"):
    """A Dash app over run store ``store`` (pages registered, navigation built from the registry)."""
    import dash
    from dash import dcc, html

    root = Path(store)
    if root.exists() and not root.is_dir():
        raise ValueError(f"store {str(store)!r} is a file, not a directory")
    here = Path(__file__).parent
    app = dash.Dash(__name__, use_pages=True, pages_folder=str(here / "pages"),
                    assets_folder=str(here / "assets"), suppress_callback_exceptions=True,
                    title="probe explorer")
    app.server.config["PROBE_STORE"] = str(root.resolve())
    app.server.before_request(_refuse_traversal)
    app.server.before_request(lambda: _check_callback_request(app))
    nav = [dcc.Link(page["name"], href=page["relative_path"], id=f"app-nav-{page['module'].split('.')[-1]}",
                    style={"marginRight": "1.2em"})
           for page in dash.page_registry.values() if page["path"] != "/404"]
    app.layout = html.Div([
        html.Div([html.B("probe explorer", style={"marginRight": "2em"}), *nav,
                  html.Span(f"store: {root.resolve()}", style={"float": "right", "color": "#777"})],
                 style={"padding": "0.6em", "borderBottom": "1px solid #ddd", "fontFamily": "sans-serif"}),
        dcc.Store(id="app-selected", storage_type="session", data=[]),  # run ids picked on the Runs page
        dcc.Store(id="app-checkpoint", storage_type="session"),  # {"run", "step"} picked on Training
        dcc.Store(id="app-units", storage_type="session"),  # {"run", "hook", "units", "t0", "t1"} from States
        html.Div(dash.page_container, style={"padding": "0.6em", "fontFamily": "sans-serif"}),
    ])
    return app


def _refuse_traversal():
    # Every request whose path climbs out (``..``, raw or %-encoded) gets a 404 error page before
    # Dash or Flask routes it anywhere; the app serves nothing but its pages and its store's runs.
    from urllib.parse import unquote

    from flask import request

    raw = (request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.path).split("?")[0]
    if ".." in unquote(unquote(raw)) or ".." in request.path:  # a ?run=.. query is the page's to refuse
        return ('<!doctype html><title>Not found</title><h3>Not found</h3>'
                '<div id="page-error">No such page in this explorer.</div><a href="/">back to the runs</a>', 404)
    return None


_MAX_BODY = 8 << 20  # the runs table sends every row back: ~200 bytes a run, so ~40 000 runs


def _malformed(why: str):
    return {"error": f"malformed callback request: {why}"}, 400


def _same_props(sent, spec) -> bool:
    # The renderer sends every Input/State of the callback, in order, as {"id", "property", "value"}.
    return isinstance(sent, list) and len(sent) == len(spec) and all(
        isinstance(s, dict) and s.get("id") == w.get("id") and s.get("property") == w.get("property")
        for s, w in zip(sent, spec))


def _check_callback_request(dash_app):
    """A callback request whose envelope does not match a registered callback gets a 400 before
    Dash dispatches it (Dash would raise on it, a 500). The values inside are the callbacks'
    to check; every callback here shows a bad value in its page instead of raising."""
    from flask import request

    if request.method != "POST" or not request.path.endswith("/_dash-update-component"):
        return None
    if request.content_length is not None and request.content_length > _MAX_BODY:
        return _malformed(f"body larger than {_MAX_BODY >> 20} MB")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _malformed("the body is not a JSON object")
    output = body.get("output")
    spec = dash_app.callback_map.get(output) if isinstance(output, str) else None
    if spec is None or "callback" not in spec:  # clientside callbacks have no server side to call
        return _malformed(f"no server callback for output {str(output)[:80]!r}")
    if not _same_props(body.get("inputs"), spec["inputs"]) or not _same_props(body.get("state", []), spec["state"]):
        return _malformed(f"inputs or state do not match the callback of {output[:80]!r}")
    # Dash's own page router reads the URL parts as text and a path as starting at the app's
    # prefix, as a browser sends them; our callbacks check their own values
    prefix = dash_app.config.requests_pathname_prefix
    for p in body["inputs"] + body.get("state", []):
        value = p.get("value")
        if p["id"] == "_pages_location" and not (value is None or isinstance(value, str) and (
                p["property"] != "pathname" or value.startswith(prefix))):
            return _malformed(f"URL {p['property']} {str(value)[:80]!r}")
    outputs = body.get("outputs")
    outs = outputs if isinstance(outputs, list) else [outputs]
    n_out = len(spec["output"]) if isinstance(spec["output"], (list, tuple)) else 1
    if len(outs) != n_out or not all(isinstance(o, dict) and isinstance(o.get("id"), str)
                                     and isinstance(o.get("property"), str) for o in outs):
        return _malformed("outputs do not match the callback")
    changed = body.get("changedPropIds", [])
    if not isinstance(changed, list) or not all(isinstance(c, str) for c in changed):
        return _malformed("changedPropIds is not a list of strings")
    return None


def check_address(host: str, port: int) -> bool:
    """``ValueError`` for an address that cannot be served (not a host, unknown, port in use),
    checked before the server starts (whose own failure is a traceback); returns whether the
    address is loopback, reachable from this machine only (the explorer has no authentication)."""
    import ipaddress
    import socket

    if not host or any(c.isspace() or ord(c) < 32 for c in host):
        raise ValueError(f"--host must be an address or host name, got {host!r}")
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError, OSError) as e:
        raise ValueError(f"--host {host!r} is not an address this machine can serve on ({e})") from None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server itself does
        try:
            sock.bind(addr)
        except OSError as e:
            raise ValueError(f"cannot serve on {host}:{port} ({e.strerror}); pick another --port") from None
    try:
        return ipaddress.ip_address(addr[0]).is_loopback
    except ValueError:
        return False


def warm_up() -> None:
    """Import what the pages need before the first request: torch, the tasks, the models (with
    transformer-lens), scikit-learn's PCA, the char-LM corpus and every study's analysis and
    claims. On a busy 2-core machine that is 10-20 s that would otherwise fall on the first
    visit of each page; done in a background thread instead, it held the GIL while those first
    pages were being served, so it is done before the server answers."""
    import importlib

    import plotly.graph_objects  # noqa: F401
    import sklearn.decomposition  # noqa: F401
    import torch  # noqa: F401

    import analyses
    import probe.models  # transformer-lens and its transformers import: 10 s of a cold model load
    import probe.runs  # noqa: F401
    from tasks import charlm

    charlm.load_corpus()  # lexing the corpus: 1 s of the first char-LM page
    try:
        analyses.load_all()  # every study's claims, and with them its analysis
        for name in set(analyses.names()) & set(analyses.studies()):
            importlib.import_module(f"analyses.{name}")
    except Exception:  # noqa: BLE001 - a broken study shows its error on its own page, not here
        return


def run(store: str | os.PathLike = "runs", host: str = "127.0.0.1", port: int = 8050, debug: bool = False) -> None:
    """Serve the explorer over ``store`` at ``http://host:port`` (127.0.0.1 by default: local only).

    The heavy imports happen before the server answers (:func:`warm_up`), so every page is as
    fast on its first visit as later, save for the model it loads."""
    dash_app = create_app(store)
    warm_up()
    dash_app.run(host=host, port=port, debug=debug)
