"""Progress of long work, on stderr: a bar with what is being done and an ETA on a terminal, one
line per stage otherwise (logs, pipes, CI), nothing when switched off.

    from probe.progress import Progress, track, stage

    with Progress(total=1000, desc="train 3f2a…", unit="step") as p:
        for step in range(1000):
            ...
            p.update(1, note=f"loss {loss:.3g}")        # note: the text beside the bar
    for spec in track(specs, desc="claims", label=lambda s: s.id, weight=lambda s: s.quick_s):
        ...                                             # bar moves by weight (e.g. expected seconds)
    stage("checking the parity claims")                 # one line, in every mode but "off"

``mode`` is ``"bar"`` (tqdm, redrawn in place), ``"lines"`` (a line when the work starts, one
per stage — :meth:`Progress.stage` or each item of :func:`track` — with the elapsed time and an
ETA, at most one per ``every_s`` seconds from :meth:`Progress.update`, and a last line with the
total time) or ``"off"``. The default, ``None``, is ``"bar"`` when stderr is a terminal and
``"lines"`` otherwise; the environment variable ``PROBE_PROGRESS=bar|lines|off`` overrides it,
and ``True``/``False`` are accepted as "default"/"off" (the ``progress=`` arguments of
``probe.train`` and ``probe.claims.run``).
"""
from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Literal, TextIO, TypeVar

Mode = Literal["bar", "lines", "off"]
MODES: tuple[str, ...] = ("bar", "lines", "off")
T = TypeVar("T")


def resolve_mode(mode: Mode | bool | None = None, file: TextIO | None = None) -> Mode:
    """The mode a ``mode``/``progress`` argument means here (see the module docstring)."""
    if mode is False:
        return "off"
    if mode is not None and mode is not True:
        if mode not in MODES:
            raise ValueError(f"progress mode must be one of {', '.join(MODES)}; got {mode!r}")
        return mode
    env = os.environ.get("PROBE_PROGRESS", "").strip().lower()
    if env in MODES:
        return env  # type: ignore[return-value]
    file = sys.stderr if file is None else file
    try:
        return "bar" if file.isatty() else "lines"
    except (AttributeError, ValueError):  # a closed or odd stream
        return "lines"


def _columns(file: TextIO) -> int:
    try:
        return os.get_terminal_size(file.fileno()).columns
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        return 0


def duration(seconds: float) -> str:
    """``seconds`` as ``"42 s"``, ``"3:07"`` or ``"1:02:03"``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """A unit of long work with ``total`` parts (steps, claims, figures; None if unknown).

    Parameters
    ----------
    total : float, optional
        Amount of work; the bar and the ETA need it.
    desc : str
        What is being done, e.g. ``"train parity/gru"``.
    unit : str
        Name of one part, for the lines (``"step"``, ``"claim"``).
    mode : "bar", "lines", "off", bool or None
        See the module docstring.
    initial : float
        Work already done (a resumed run); the ETA counts only what is done from here.
    every_s : float
        In "lines" mode, the least time between two lines from :meth:`update`.
    """

    def __init__(self, total: float | None = None, desc: str = "", unit: str = "step",
                 mode: Mode | bool | None = None, initial: float = 0, every_s: float = 60.0,
                 file: TextIO | None = None):
        self.total, self.desc, self.unit, self.every_s = total, desc, unit, every_s
        self.n = self._start_n = initial
        self.file = sys.stderr if file is None else file
        self.mode = resolve_mode(mode, self.file)
        self._t0 = self._last_line = time.monotonic()
        self._stages = 0
        self._bar = None
        if self.mode == "bar":
            from tqdm import tqdm

            fmt = ("{desc}: {percentage:3.0f}%|{bar}| {postfix} [{elapsed}<{remaining}]" if unit == "s" else None)
            # A terminal that reports no width (some ptys) would get an empty bar: assume 100 columns.
            sized = _columns(self.file) > 0
            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False, file=self.file,
                             dynamic_ncols=sized, ncols=None if sized else 100, nrows=None if sized else 24,
                             mininterval=0.5, bar_format=fmt)
        elif self.mode == "lines":
            self._line(f"{desc}: about {duration(total)} expected" if total and unit == "s" else
                       f"{desc}: {_amount(initial, total, unit)}" if total else f"{desc} ...")

    def _line(self, text: str) -> None:
        print(text, file=self.file, flush=True)
        self._last_line = time.monotonic()

    def eta(self) -> float | None:
        """Seconds left at the rate so far (None until some work is done, or without a total)."""
        done = self.n - self._start_n
        if not self.total or done <= 0:
            return None
        return (time.monotonic() - self._t0) * max(0.0, self.total - self.n) / done

    def _clock(self) -> str:
        eta = self.eta()
        return f"elapsed {duration(time.monotonic() - self._t0)}" + ("" if eta is None else f", ETA {duration(eta)}")

    def update(self, n: float = 1, note: str | None = None) -> None:
        """``n`` more parts are done; ``note`` replaces the text beside the bar."""
        self.n += n
        if self._bar is not None:
            if note is not None:
                self._bar.set_postfix_str(note, refresh=False)
            self._bar.update(n)
        elif self.mode == "lines" and time.monotonic() - self._last_line >= self.every_s:
            self._line(f"{self.desc}: {_amount(self.n, self.total, self.unit)}{f' ({note})' if note else ''}, "
                       f"{self._clock()}")

    def stage(self, text: str) -> None:
        """The next stage starts: beside the bar, or its own line (``desc [i/n] text, elapsed, ETA``)."""
        self._stages += 1
        if self._bar is not None:
            self._bar.set_postfix_str(text)
        elif self.mode == "lines":
            of = f"/{int(self.total)}" if self.total and self.unit != "s" else ""
            self._line(f"{self.desc} [{self._stages}{of}] {text}, {self._clock()}")

    def close(self, summary: str | None = None) -> None:
        """End the work; in "lines" mode print ``desc: done, <summary or amount> in <time>``."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "lines":
            self.mode = "off"  # once
            what = summary or _amount(self.n - self._start_n, None, self.unit)
            self._line(f"{self.desc}: done, {what} in {duration(time.monotonic() - self._t0)}")

    def __enter__(self) -> Progress:  # noqa: PYI034 (3.10 has no typing.Self)
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is not None and self.mode == "lines":
            self.mode = "off"  # the error says what happened; no "done" line
        self.close()


def _amount(n: float, total: float | None, unit: str) -> str:
    if unit == "s":
        return f"{round(n)} s" + (f" of ~{round(total)} s" if total else "")
    count = f"{int(n)}/{int(total)}" if total else f"{int(n)}"
    return f"{count} {unit}{'' if (total or n) == 1 else 's'}"


def track(items: Iterable[T], desc: str, label: Callable[[T], str] = str, weight: Callable[[T], float] | None = None,
          unit: str = "item", mode: Mode | bool | None = None, file: TextIO | None = None) -> Iterator[T]:
    """Yield ``items``, showing each one's ``label`` as a stage; the bar moves by ``weight(item)``
    (e.g. expected seconds; default 1 per item) once the item's turn is over."""
    items = list(items)
    weights = [1.0 if weight is None else float(weight(x)) for x in items]
    with Progress(total=sum(weights) or None, desc=desc, unit="s" if weight else unit, mode=mode, file=file) as p:
        for x, w in zip(items, weights):
            p.stage(label(x))
            yield x
            p.update(w)
        p.close(f"{len(items)} {unit}{'' if len(items) == 1 else 's'}")


def stage(text: str, mode: Mode | bool | None = None, file: TextIO | None = None) -> None:
    """One line saying what starts now (``probe: text``), unless progress is off."""
    file = sys.stderr if file is None else file
    if resolve_mode(mode, file) != "off":
        print(f"probe: {text}", file=file, flush=True)
