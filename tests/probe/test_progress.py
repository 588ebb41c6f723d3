"""probe.progress: a bar on a terminal, one line per stage otherwise, nothing when off."""
from __future__ import annotations

import io
import re

import pytest

import probe
import tasks
from probe import progress
from probe.progress import Progress, duration, resolve_mode, stage, track


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_mode_follows_the_terminal_unless_asked(monkeypatch):
    monkeypatch.delenv("PROBE_PROGRESS", raising=False)
    assert resolve_mode(None, _Tty()) == "bar" and resolve_mode(None, io.StringIO()) == "lines"
    assert resolve_mode(True, io.StringIO()) == "lines" and resolve_mode(False, _Tty()) == "off"
    assert resolve_mode("lines", _Tty()) == "lines"
    monkeypatch.setenv("PROBE_PROGRESS", "off")
    assert resolve_mode(None, _Tty()) == "off"
    with pytest.raises(ValueError, match="progress mode must be one of bar, lines, off; got 'loud'"):
        resolve_mode("loud")


@pytest.mark.parametrize("seconds, text", [(0, "0 s"), (59.4, "59 s"), (60, "1:00"), (187, "3:07"),
                                           (3723, "1:02:03"), (-5, "0 s")])
def test_duration(seconds, text):
    assert duration(seconds) == text


def test_lines_mode_prints_a_start_line_one_per_stage_and_a_done_line():
    out = io.StringIO()
    with Progress(total=3, desc="claims", unit="claim", mode="lines", file=out) as p:
        for name in ["a", "b", "c"]:
            p.stage(name)
            p.update(1, note="ignored between lines")
    lines = out.getvalue().splitlines()
    assert lines[0] == "claims: 0/3 claims"
    assert [re.sub(r", elapsed.*", "", x) for x in lines[1:4]] == ["claims [1/3] a", "claims [2/3] b", "claims [3/3] c"]
    assert "ETA" not in lines[1] and "ETA" in lines[2]  # an ETA once some work is done
    assert re.fullmatch(r"claims: done, 3 claims in \d+ s", lines[4]) and len(lines) == 5


def test_lines_mode_prints_updates_at_most_every_every_s_and_nothing_after_an_error():
    out = io.StringIO()
    p = Progress(total=100, desc="train x", mode="lines", every_s=0.0, file=out)
    p.update(50, note="loss 0.5")
    assert out.getvalue().splitlines()[-1].startswith("train x: 50/100 steps (loss 0.5), elapsed 0 s, ETA")
    quiet = io.StringIO()
    q = Progress(total=100, desc="train y", mode="lines", every_s=3600, file=quiet)
    q.update(50)
    assert quiet.getvalue().splitlines() == ["train y: 0/100 steps"]
    with pytest.raises(KeyError), Progress(total=1, desc="boom", mode="lines", file=quiet):
        raise KeyError
    assert quiet.getvalue().splitlines()[-1] == "boom: 0/1 step"


def test_eta_is_the_rate_so_far_times_what_is_left(monkeypatch):
    clock = iter([100.0, 110.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    p = Progress(total=10, initial=2, desc="x", mode="off")
    p.n = 4  # 2 done in 10 s since the start, 6 left
    assert p.eta() == pytest.approx(30.0)


def test_track_weights_the_bar_by_expected_seconds_and_yields_every_item():
    out = io.StringIO()
    items = list(track([("a", 30.0), ("b", 90.0)], desc="claims", label=lambda x: x[0], weight=lambda x: x[1],
                       unit="claim", mode="lines", file=out))
    lines = out.getvalue().splitlines()
    assert items == [("a", 30.0), ("b", 90.0)]
    assert lines[0] == "claims: about 2:00 expected"
    assert lines[1].startswith("claims [1] a, elapsed") and lines[2].startswith("claims [2] b, elapsed")
    assert re.fullmatch(r"claims: done, 2 claims in \d+ s", lines[3])


def test_bar_mode_draws_on_the_terminal_and_off_prints_nothing():
    tty, off = _Tty(), io.StringIO()
    with Progress(total=5, desc="figures", unit="figure", mode=None, file=tty) as p:
        p.stage("fig1")
        p.update(5)
    assert "figures" in tty.getvalue() and "fig1" in tty.getvalue()
    with Progress(total=5, desc="figures", mode="off", file=off) as p:
        p.stage("fig1")
        p.update(5)
    stage("hello", mode="off", file=off)
    assert off.getvalue() == ""
    stage("hello", mode="lines", file=off)
    assert off.getvalue() == "probe: hello\n"


def _train(store, **kw):
    task = tasks.make("parity", max_len=6)
    return probe.train(task, probe.models.make("gru", task, hidden=8), steps=4, batch_size=8, eval_n=8,
                       eval_splits=["train"], store=store, **kw)


def test_train_reports_in_lines_off_a_terminal_and_is_silent_when_asked(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("PROBE_PROGRESS", raising=False)
    run = _train(tmp_path / "a")  # stderr is captured: not a terminal
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"train {run.id} (parity): 0/4 steps"
    assert re.fullmatch(rf"train {run.id} \(parity\): done, 4 steps, loss [\d.]+, acc [\d.]+ in \d+ s", err[1])
    assert len(err) == 2
    _train(tmp_path / "b", progress=False)
    assert capsys.readouterr().err == ""


def test_a_terminal_that_reports_no_width_still_gets_a_bar():
    # A fresh pty reports 0 x 0, as some do in practice; tqdm alone would hide its bar there.
    import os
    import select

    master, slave = os.openpty()
    with os.fdopen(slave, "w") as tty:
        assert os.get_terminal_size(tty.fileno()).columns == 0
        with Progress(total=4, desc="zero-size", unit="step", mode=None, file=tty) as p:
            p.update(2)
        tty.flush()
        ready, _, _ = select.select([master], [], [], 5)  # nothing written: fail, not hang
        out = os.read(master, 65536).decode() if ready else ""
    os.close(master)
    assert "zero-size:   0%" in out and "0/4" in out
