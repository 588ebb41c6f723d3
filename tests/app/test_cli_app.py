"""``probe app``: bad input is one line on stderr and exit 2; the demo starts the app only when asked."""
from __future__ import annotations

import pytest

from probe import cli


@pytest.mark.parametrize("argv, message", [
    (["app", "--port", "0"], "port"),
    (["app", "--port", "http"], "port"),
    (["app", "--store", "{missing}"], "no store"),
    (["app", "--store", "{file}"], "is a file"),
])
def test_bad_app_arguments_end_in_one_line_and_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "f").write_text("x")
    argv = [a.format(missing=tmp_path / "missing", file=tmp_path / "f") for a in argv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("probe: error:") and message in err and err.count("\n") == 1


def test_app_serves_the_store_on_localhost_by_default(tmp_path, monkeypatch):
    import app

    seen = {}
    monkeypatch.setattr(app, "check_address", lambda host, port: True)  # 8050 may be taken on this machine
    monkeypatch.setattr(app, "run", lambda store, host, port: seen.update(store=store, host=host, port=port))
    assert cli.main(["app", "--store", str(tmp_path)]) == 0
    assert seen == {"store": str(tmp_path), "host": "127.0.0.1", "port": 8050}


def test_the_demo_opens_the_explorer_only_with_app_or_in_a_terminal(tmp_path, monkeypatch):
    import app
    from probe import demo

    served = []
    monkeypatch.setattr(app, "check_address", lambda host, port: True)
    monkeypatch.setattr(demo, "run", lambda store: [])
    monkeypatch.setattr(app, "run", lambda store, host, port: served.append((store, host, port)))
    assert cli.main(["demo", "--store", str(tmp_path), "--no-claims"]) == 0  # pytest's stdout is no terminal
    assert served == []
    assert cli.main(["demo", "--store", str(tmp_path), "--no-claims", "--app", "--port", "8123"]) == 0
    assert served == [(str(tmp_path), "127.0.0.1", 8123)]
