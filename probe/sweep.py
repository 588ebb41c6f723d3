"""Sweeps: a grid of :func:`probe.train` runs from a TOML file, on worker processes here or on Ray.

::

    task = "parity"                 # or a list: one more axis
    arch = ["gru", "elman"]
    hidden = [4, 16]
    seeds = [0, 1]
    members = 1
    steps = 200
    exclude = [{arch = "elman", hidden = 4}]   # optional: rows of the grid to leave out
    [set]                           # the keys of `probe train --set`
    "train.lr" = [1e-3, 3e-3]       # a list is one more axis; [[...]] is one list value

The grid is the product of every axis (task, arch, hidden, layers, members, steps, each ``[set]``
key, seeds), less the ``exclude`` rows; a row's keys are axis names and its values one value or a
list of them. Each point is one run whose id is the hash of its whole config
(:func:`probe.runs.run_id`, the same id ``probe train`` gives the same settings), so a rerun skips
finished points and resumes unfinished ones from their last checkpoint. The top-level keys
``device``, ``num_cpus`` and ``num_gpus`` (Ray's resources per point) and ``name`` (of the
report files; default: the file's name) are settings, not axes.

``engine="local"`` trains points on worker processes here, the cores split among them;
``engine="ray"`` submits each point as a Ray task to a cluster (``pip install -e ".[ray]"``).
Either way the store must be one folder every worker can write: that is checked from the workers
before the first point starts.
"""
from __future__ import annotations

import contextlib
import contextvars
import csv
import itertools
import json
import math
import os
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from probe import _io
from probe._engines import LocalEngine, RayEngine, check_store_from_worker, run_point  # noqa: F401 (public)

AXES = ("task", "arch", "hidden", "layers", "members", "steps", "seed")
_ALIASES = {"tasks": "task", "archs": "arch", "seeds": "seed"}
_SETTINGS = {"device": str, "num_cpus": (int, float), "num_gpus": (int, float), "name": str}
_DEFAULTS = {"layers": 1, "members": 1, "steps": 1000, "seed": 0}
_HEARTBEAT_S = 30.0  # with nothing finished for this long, say where the running points are


class SpecError(ValueError):
    """A sweep file that cannot be used; the message names the file, line and key."""


# ---------------------------------------------------------------------------------------------
# the sweep file


def _key_line(text: str, key: str, section: str = "") -> int | None:
    # tomllib keeps no positions: find where a key is written, inside its [section].
    esc = re.escape(key)
    pattern = re.compile(rf"""^\s*(?:"{esc}"|'{esc}'|{esc})\s*=""")
    current = ""
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$", line)
        if header:
            current = header.group(1).strip("\"' ")
            if current == section and key == "":
                return number
        elif current == section and pattern.match(line):
            return number
    return None


def _exclude_line(text: str, row: int) -> int | None:
    headers = [n for n, line in enumerate(text.splitlines(), 1) if re.match(r"^\s*\[\[\s*exclude\s*\]\]", line)]
    return headers[row] if row < len(headers) else _key_line(text, "exclude")


@dataclass(frozen=True)
class Point:
    """One run of the grid: the ``probe train`` arguments and its ``--set`` pairs."""

    task: str
    arch: str
    hidden: int
    layers: int = 1
    members: int = 1
    steps: int = 1000
    seed: int = 0
    sets: tuple = ()  # ((key, value), ...) in the file's order

    def axes(self) -> dict[str, Any]:
        """Every axis value of this point, ``[set]`` keys included."""
        return {**{a: getattr(self, a) for a in AXES}, **dict(self.sets)}


@dataclass
class Spec:
    """A parsed sweep file: its points (exclusions applied) and settings."""

    path: Path
    name: str
    points: list[Point]
    varying: list[str]  # axes with more than one value, in grid order
    excluded: int
    device: str = "auto"
    num_cpus: float = 1
    num_gpus: float = 0
    text: str = field(default="", repr=False)


def _fail(path, text: str, key: str, message: str, section: str = "", line: int | None = None) -> SpecError:
    line = line or _key_line(text, key, section) or (_key_line(text, "", section) if section else None)
    return SpecError(f"{path}{f':{line}' if line else ''}: {key}: {message}")


def _flatten(table: dict, prefix: str = "") -> dict[str, Any]:
    # `train.lr = 1` (bare dotted key) parses as {"train": {"lr": 1}}; both spellings mean "train.lr".
    out = {}
    for k, v in table.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _values(path, text, key: str, raw: Any, section: str = "") -> list:
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        raise _fail(path, text, key, "an empty list leaves no grid", section)
    seen = []
    for v in values:
        if v in seen and not isinstance(v, bool):
            raise _fail(path, text, key, f"lists {v!r} twice", section)
        seen.append(v)
    return values


def _check_axis(path, text, key: str, canon: str, values: list) -> None:
    import probe.models
    import tasks

    for v in values:
        if canon in ("task", "arch"):
            choices = tasks.names() if canon == "task" else probe.models.names()
            if v not in choices:
                raise _fail(path, text, key, f"unknown {canon} {v!r}; valid choices: {', '.join(choices)}")
        elif isinstance(v, bool) or not isinstance(v, int) or v < (0 if canon == "seed" else 1):
            what = "an integer >= 0" if canon == "seed" else "a positive integer"
            raise _fail(path, text, key, f"expected {what} or a list of them, got {v!r}")


def load_spec(path: str | os.PathLike) -> Spec:
    """Read and check a sweep file; every problem is one :class:`SpecError` naming the key and line."""
    from probe.cli import _FLAG_KEYS, resolve_sets

    path = Path(path)
    try:
        if path.exists() and not path.is_file() or path.is_file() and path.stat().st_size > 1 << 20:
            raise SpecError(f"sweep file {str(path)!r} is not a regular file of at most 1 MB")
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"cannot read sweep file {str(path)!r}: {getattr(e, 'strerror', None) or e}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: not valid TOML: {e}") from None
    keys = {_ALIASES.get(k, k): k for k in raw}  # canonical -> as written
    if len(keys) < len(raw):
        twice = next(k for k in raw if k in _ALIASES and _ALIASES[k] in raw)
        raise _fail(path, text, twice, f"{twice} and {_ALIASES[twice]} name the same axis; keep one")
    for canon, written in keys.items():
        if canon not in AXES and canon not in _SETTINGS and canon not in ("set", "exclude"):
            valid = ", ".join(["task", "arch", "hidden", "layers", "members", "steps", "seeds", "set", "exclude",
                               *_SETTINGS])
            raise _fail(path, text, written, f"unknown key; valid keys: {valid}")
    for need in ("task", "arch", "hidden"):
        if need not in keys:
            raise SpecError(f"{path}: missing key {need!r} (a value or a list)")
    axes: dict[str, list] = {}
    for canon in AXES:
        written = keys.get(canon)
        axes[canon] = _values(path, text, written, raw[written]) if written else [_DEFAULTS[canon]]
        if written:
            _check_axis(path, text, written, canon, axes[canon])
    settings = {}
    for name, kind in _SETTINGS.items():
        if name in raw:
            v = raw[name]
            if isinstance(v, bool) or not isinstance(v, kind) or (kind != str and v < 0):
                raise _fail(path, text, name, f"expected a single {'string' if kind is str else 'number >= 0'}, got {v!r}")
            settings[name] = v
    if settings.get("device", "auto") not in ("auto", "cpu", "cuda"):
        raise _fail(path, text, "device", f"unknown device {settings['device']!r}; valid choices: auto, cpu, cuda")
    if "set" in raw and not isinstance(raw["set"], dict):
        raise _fail(path, text, "set", "must be a table: [set] with lines like \"train.lr\" = 0.01")
    sets = {k: _values(path, text, k, v, "set") for k, v in _flatten(raw.get("set", {})).items()}
    for key in sets:
        name = key.rpartition(".")[2]
        if name in _FLAG_KEYS:
            top = {"seed": "seeds", "store": "--store"}.get(name, name)
            raise _fail(path, text, key, f"write it as the top-level key {top}, not under [set]", "set")
        for task, arch in itertools.product(axes["task"], axes["arch"]):
            try:
                resolve_sets([(key, sets[key][0])], task, arch)
            except ValueError as e:
                raise _fail(path, text, key, str(e), "set") from None
    grid = {**axes, **sets}
    excludes = _excludes(path, text, raw.get("exclude", []), grid)
    points, excluded = [], 0
    order = [a for a in AXES if a != "seed"] + list(sets) + ["seed"]  # neighbours differ by seed
    for combo in itertools.product(*(grid[a] for a in order)):
        values = dict(zip(order, combo))
        if any(all(values[k] in allowed for k, allowed in row.items()) for row in excludes):
            excluded += 1
            continue
        points.append(Point(**{a: values[a] for a in AXES}, sets=tuple((k, values[k]) for k in sets)))
    if not points:
        raise _fail(path, text, "exclude", "every point of the grid is excluded", line=_exclude_line(text, 0))
    spec = Spec(path=path, name=settings.get("name", path.stem), points=points, excluded=excluded,
                varying=[a for a in order if len(grid[a]) > 1], text=text,
                **{k: v for k, v in settings.items() if k != "name"})
    _check_points(spec, list(sets))
    return spec


def _excludes(path, text, rows: Any, grid: dict[str, list]) -> list[dict[str, list]]:
    if isinstance(rows, dict):
        rows = [rows]
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise _fail(path, text, "exclude", "expected a list of tables, e.g. exclude = [{arch = \"elman\", hidden = 4}]")
    out = []
    for i, row in enumerate(rows):
        line = _exclude_line(text, i)
        checked = {}
        for key, value in _flatten(row).items():
            canon = _ALIASES.get(key, key)
            if canon not in grid:
                raise _fail(path, text, f"exclude row {i + 1}", f"unknown axis {key!r}; axes: {', '.join(grid)}",
                            line=line)
            allowed = value if isinstance(value, list) else [value]
            for v in allowed:
                if v not in grid[canon]:
                    raise _fail(path, text, f"exclude row {i + 1}", f"{key} = {v!r} is not a value of the grid "
                                f"({', '.join(map(repr, grid[canon]))})", line=line)
            checked[canon] = allowed
        if not checked:
            raise _fail(path, text, f"exclude row {i + 1}", "an empty row would exclude everything", line=line)
        out.append(checked)
    return out


def _check_points(spec: Spec, set_keys: list[str]) -> None:
    # Build every point's config (nothing allocated): a bad value is found now, not mid-sweep.
    for point in spec.points:
        try:
            build(point)
        except (ValueError, TypeError) as e:
            message = str(e)
            culprit = next((k for k in set_keys if k in message or k.rpartition(".")[2] in message), None)
            if culprit is not None:
                if "list" in message and not isinstance(dict(point.sets)[culprit], list):
                    message += " (a list under [set] is an axis; write [[...]] for one list value)"
                raise _fail(spec.path, spec.text, culprit, message, "set") from None
            axis = next((a for a in AXES if a in message), "")
            written = {v: k for k, v in _ALIASES.items()}.get(axis, axis)
            if axis and _key_line(spec.text, written) is None:
                written = axis
            raise _fail(spec.path, spec.text, written or "point", f"{message} (at {point.axes()})") from None


# ---------------------------------------------------------------------------------------------
# one point


_TASKS: dict[str, Any] = {}


def build(point: Point):
    """``(task, model_config, train_kwargs, run_id)`` of a point, exactly as ``probe train`` builds them."""
    import probe.models
    import tasks
    from probe.cli import resolve_sets
    from probe.runs import run_id
    from probe.training import TrainConfig

    sets = resolve_sets(list(point.sets), point.task, point.arch)
    key = json.dumps([point.task, sets["task"]], sort_keys=True, default=str)
    if key not in _TASKS:
        _TASKS[key] = tasks.make(point.task, **sets["task"])
    task = _TASKS[key]
    model_config = probe.models.make_config(point.arch, task, hidden=point.hidden, layers=point.layers,
                                            members=point.members, seed=point.seed, **sets["model"])
    cfg = TrainConfig(steps=point.steps, seed=point.seed, **sets["train"])
    config = json.loads(json.dumps({"task": {"name": task.name, "params": task.params},
                                    "model": dict(model_config), "train": cfg.to_dict()}))
    return task, model_config, sets["train"], run_id(config)


# ---------------------------------------------------------------------------------------------
# planning, running, reporting


def plan(spec: Spec, store: str | os.PathLike) -> list[dict[str, Any]]:
    """One row per point: its axes, ``id``, ``status`` in the store (``new``, ``partial``,
    ``running``, ``done``, ``diverged``, ``unreadable: ...``), ``step``, estimated ``flop`` and,
    when finished, its final metrics."""
    from probe.models import parameter_count

    root = Path(store)
    rows, lengths = [], {}
    for point in spec.points:
        task, model_config, train_kwargs, rid = build(point)
        row = {**point.axes(), "id": rid, **point_status(root, rid)}
        if id(task) not in lengths:
            lengths[id(task)] = int(task.sample(n=8, seed=0).inputs.shape[1])
        # A forward and backward pass costs about 6 flop per weight and token (Kaplan et al. 2020).
        batch = train_kwargs.get("batch_size", 128)
        row["flop"] = 6.0 * parameter_count(model_config) * point.members * batch * lengths[id(task)] * point.steps
        rows.append(row)
    return rows


def point_status(store: str | os.PathLike, rid: str) -> dict[str, Any]:
    """The store's part of a point's row: ``status`` (``new`` when it has no run yet, ``partial``
    when stopped), ``step`` and, once it has them, ``elapsed_s`` and the final metrics."""
    from probe.runs import Run

    row: dict[str, Any] = {"status": "new", "step": 0}
    path = Path(store) / rid
    if os.path.lexists(path / "run.json"):
        try:
            run = Run(path)
            status = run.status
            row.update(status="partial" if status == "stopped" else status, step=run.info.get("step", 0),
                       elapsed_s=run.info.get("elapsed_s"), **run.final)
        except (ValueError, OSError) as e:
            row["status"] = f"unreadable: {e}"
    return row


def _fmt_s(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _metric_keys(rows: list[dict]) -> list[str]:
    keys = {k for r in rows for k in r if "." in k and k.rpartition(".")[2] in ("accuracy", "mse")}
    return sorted(keys, key=lambda k: (not k.startswith("train."), k))


def format_table(rows: list[dict], varying: list[str], extra: tuple[str, ...] = ()) -> str:
    """The grid as fixed-width text: the varying axes, id, status, ``extra`` columns, final metrics."""
    metrics = _metric_keys(rows)
    head = [*varying, "id", "status", *extra, *metrics]
    show = lambda v: "-" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)
    lines = [[show(r.get(c)) for c in head] for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
    fmt = lambda cols: "  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()
    return "\n".join([fmt(head), fmt(["-" * w for w in widths]), *map(fmt, lines)])


def dry_run(spec: Spec, store: str | os.PathLike, workers: int = 1) -> str:
    """The grid with each point's status and cost, and the whole sweep's estimated cost."""
    rows = plan(spec, store)
    for r in rows:
        r["GFLOP"] = r["flop"] / 1e9
    todo = [r for r in rows if r["status"] not in ("done", "diverged")]
    flop = sum(r["flop"] for r in todo)
    timed = [r for r in rows if r["status"] == "done" and r.get("elapsed_s")]
    if timed:  # seconds per flop of this sweep's own finished points
        rate = sum(r["elapsed_s"] for r in timed) / sum(r["flop"] for r in timed)
        eta = f"about {_fmt_s(rate * flop / max(1, min(workers, len(todo) or 1)))} on {workers} worker(s)"
    else:
        eta = "unknown until a point has finished (rerun --dry-run then)"
    return "\n".join([format_table(rows, spec.varying, ("step", "GFLOP")), "",
                      (f"{len(rows)} points ({spec.excluded} excluded), {len(rows) - len(todo)} finished, "
                      f"{len(todo)} to train: {flop / 1e12:.3g} TFLOP (6 x weights x tokens); time {eta}")])


def _check_store(engine, store: Path) -> None:
    from probe.runs import store_dir

    store_dir(store, create=True)
    token = f".sweep-check-{uuid.uuid4().hex}"
    try:
        (store / token).write_text(token)
    except OSError as e:
        raise ValueError(f"store {str(store)!r} is not writable here ({e.strerror})") from None
    try:
        errors = engine.check_store(str(store), token)
    finally:
        (store / token).unlink(missing_ok=True)
    if errors:
        raise ValueError(f"{errors[0]}; no point was started")


def _read_index(store: Path, name: str) -> dict | None:
    try:
        return _io.read_json(store / "sweeps" / f"{name}.json")
    except (OSError, ValueError):
        return None


def _write_index(spec: Spec, store: Path, rows: list[dict], previous: dict | None = None) -> Path:
    """Write ``<store>/sweeps/<name>.json``: the grid's points (axes, ``[set]`` values, run id).

    ``previous`` (for :func:`train_points`, which code calls piece by piece under one name: a
    claim's sweep, then its champion) is the listing before: its points stay and these join
    them, so the listing holds every run trained under the name; a sweep file's is its grid."""
    set_keys = list(dict.fromkeys(k for p in spec.points for k, _ in p.sets))
    folder = store / "sweeps"
    folder.mkdir(exist_ok=True)
    path = folder / f"{spec.name}.json"
    points = [{k: r.get(k) for k in (*AXES, *set_keys, "id")} for r in rows]
    varying = spec.varying
    if previous is not None:
        try:  # listed points keep their place (updated), new ones join at the end
            by_id = {p["id"]: p for p in previous["points"] if isinstance(p, dict) and "id" in p}
            set_keys = list(dict.fromkeys([*previous.get("set_keys", []), *set_keys]))
        except (KeyError, TypeError, AttributeError):
            by_id = {}  # not a listing: list these points only
        by_id.update((p["id"], p) for p in points)
        points = [{k: p.get(k) for k in (*AXES, *set_keys, "id")} for p in by_id.values()]
        varying = [k for k in (*AXES, *set_keys) if len({json.dumps(p[k], sort_keys=True) for p in points}) > 1]
    _io.write_json(path, {"name": spec.name, "spec": str(spec.path.resolve()), "varying": varying,
                          "set_keys": set_keys,  # in the file's order (the points' keys are sorted)
                          "points": points})
    return path


def run_sweep(spec: Spec, store: str | os.PathLike = "runs", engine: str = "local", workers: int | None = None,
              address: str | None = None, num_cpus: float | None = None, num_gpus: float | None = None,
              out=None) -> tuple[list[dict], list[dict]]:
    """Train every unfinished point of ``spec`` into ``store``; returns ``(rows, failed)``.

    Finished points are skipped, unfinished ones resumed. A failing point never stops the
    others: its row's status is ``"failed"`` and it is in ``failed`` with its ``error``. One
    progress line per finished point.
    """
    if engine not in ("local", "ray"):
        raise ValueError(f"unknown engine {engine!r}; valid engines: local, ray")
    out = out or sys.stdout
    store = Path(store).absolute()
    rows = plan(spec, store)
    todo = [(p, r) for p, r in zip(spec.points, rows) if r["status"] not in ("done", "diverged")]
    print(f"sweep {spec.name}: {len(rows)} points, {len(rows) - len(todo)} finished, {len(todo)} to train "
          f"(engine {engine})", file=out, flush=True)
    if not todo:
        _write_index(spec, store, rows)
        return rows, []
    if engine == "local":
        eng = LocalEngine(min(workers or len(os.sched_getaffinity(0)), len(todo)))
    else:
        eng = RayEngine(address, spec.num_cpus if num_cpus is None else num_cpus,
                        spec.num_gpus if num_gpus is None else num_gpus)
    try:
        print(f"engine: {eng.describe}; store {store}", file=out, flush=True)
        _check_store(eng, store)
        _write_index(spec, store, rows)
        failed = _drive(eng, todo, store, spec.device, out)
    finally:
        eng.close()
    errors = {f["id"]: f["error"] for f in failed}
    rows = [{**r, "status": "failed", "error": errors[r["id"]]} if r["id"] in errors else r for r in plan(spec, store)]
    return rows, failed


def _drive(eng, todo: list, store: Path, device: str, out) -> list[dict]:
    pending, inflight, failed = list(todo), {}, []
    tries: dict[str, int] = {}
    done, durations, t_start, last_print = 0, [], time.monotonic(), time.monotonic()
    while pending or inflight:
        while pending and len(inflight) < eng.slots:
            point, row = pending.pop(0)
            inflight[eng.submit(point, str(store), device)] = (point, row)
        finished = eng.wait(list(inflight), _HEARTBEAT_S)
        for handle, result in finished:
            point, row = inflight.pop(handle)
            if isinstance(result, Exception):
                tries[row["id"]] = tries.get(row["id"], 0) + 1
                if tries[row["id"]] <= eng.retries:
                    print(f"  {row['id']}: {result}; resuming it", file=out, flush=True)
                    pending.insert(0, (point, row))
                    continue
                result = {"id": row["id"], "status": "failed", "error": str(result), "final": {}, "seconds": 0.0}
            done += 1
            if result["status"] == "failed":
                failed.append({**point.axes(), **result, "id": row["id"]})
            else:
                durations.append(result["seconds"])
            left = len(pending) + len(inflight)
            parallel = max(1, min(len(inflight), getattr(eng, "workers", len(inflight)) or 1))
            eta = _fmt_s(sum(durations) / len(durations) * left / parallel) if durations and left else "-"
            metrics = " ".join(f"{k}={v:.3g}" for k, v in result["final"].items()
                               if k.rpartition(".")[2] in ("accuracy", "mse") and isinstance(v, (int, float)))
            note = f"FAILED {result['error']}" if result["status"] == "failed" else f"{result['status']} {metrics}"
            print(f"[{done}/{len(todo)}] {row['id']} {result['seconds']:.1f}s {note} | running {len(inflight)}, "
                  f"failed {len(failed)}, ETA {eta}", file=out, flush=True)
            last_print = time.monotonic()
        if not finished and time.monotonic() - last_print >= _HEARTBEAT_S:
            # A point is running once its lock is held (on Ray, submitted points may still be queued).
            running = [(p, r) for p, r in inflight.values() if _io.is_locked(store / r["id"] / ".lock")]
            steps = ", ".join(f"{r['id']} step {_step(store, r['id'])}/{p.steps}" for p, r in running[:8])
            print(f"  ... {_fmt_s(time.monotonic() - t_start)} elapsed; {len(running)} running"
                  f"{': ' + steps if steps else ''}{' ...' if len(running) > 8 else ''}; "
                  f"{len(inflight) - len(running) + len(pending)} waiting", file=out, flush=True)
            last_print = time.monotonic()
    return failed


@dataclass(frozen=True)
class EngineSettings:
    """Where :func:`train_points` trains when its caller does not say: ``engine`` (``local`` or
    ``ray``), ``workers`` (local: worker processes; 1 trains in this process, one point after
    another) and ``address`` (ray: ``None``, ``"auto"`` or a cluster's address)."""

    engine: str = "local"
    workers: int = 1
    address: str | None = None

    def __post_init__(self):
        if self.engine not in ("local", "ray"):
            raise ValueError(f"unknown engine {self.engine!r}; valid engines: local, ray")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers must be a positive integer; got {self.workers!r}")


_ENGINE = contextvars.ContextVar("probe_sweep_engine", default=EngineSettings())  # noqa: B039 (frozen)


def engine_settings() -> EngineSettings:
    """The engine :func:`train_points` uses now (see :func:`using`)."""
    return _ENGINE.get()


@contextlib.contextmanager
def using(engine: str = "local", workers: int = 1, address: str | None = None):
    """Within this block, :func:`train_points` (a claim's or a figure's runs) trains on ``engine``::

        with sweep.using("ray", address="auto"):
            claims.run(specs)            # every claim's sweep is spread over the cluster

    ``probe verify`` and ``probe figs`` set it from ``--engine``, ``--workers`` and ``--address``.
    """
    token = _ENGINE.set(EngineSettings(engine, workers, address))
    try:
        yield _ENGINE.get()
    finally:
        _ENGINE.reset(token)


def train_points(points: list[Point], store: str | os.PathLike = "runs", engine: str | None = None,
                 workers: int | None = None, address: str | None = None, device: str = "auto",
                 name: str = "points", out=None) -> list:
    """Train (or resume, or load) these points through a sweep engine, for code that builds its
    own list of runs (a claim's sweep); returns their :class:`probe.runs.Run`, in order.

    ``engine``, ``workers`` and ``address`` default to :func:`engine_settings` (set by
    :func:`using`; out of one: this process, one point after another). Each point's run id is the
    one ``probe train`` and ``probe sweep`` give it, so a run trained any of these ways is found
    by the others. Raises ``RuntimeError`` naming every failed point after the others have finished.
    """
    import io

    from probe.runs import Run

    ctx = engine_settings()
    engine = ctx.engine if engine is None else engine
    workers = (ctx.workers if engine == ctx.engine else 1) if workers is None else workers
    address = ctx.address if address is None else address
    points = list(points)
    previous = _read_index(Path(store).absolute(), name) or {"points": []}
    spec = Spec(path=Path(f"{name}.toml"), name=name, points=points, excluded=0, device=device,
                varying=[a for a in AXES if len({getattr(p, a) for p in points}) > 1])
    if engine == "local" and workers == 1:  # here, in order: no worker process to start
        results = [run_point(p, str(store), device) for p in points]
        failed = [{**p.axes(), **r} for p, r in zip(points, results) if r["status"] == "failed"]
        n = len(points)
    else:
        rows, failed = run_sweep(spec, store, engine, workers, address, out=out or io.StringIO())
        results, n = rows, len(rows)
    # Listed for the explorer's Sweeps page with what was trained under this name before (a
    # point whose configuration could not be built has no run id, and is not listed).
    listed = [{**p.axes(), "id": r["id"]} for p, r in zip(points, results) if r.get("id")]
    _write_index(spec, Path(store).absolute(), listed, previous)
    if failed:
        raise RuntimeError(f"{len(failed)} of {n} runs failed: "
                           + "; ".join(f"{f['id']}: {f['error']}" for f in failed))
    return [Run(Path(store) / r["id"]) for r in results]


def _step(store: Path, rid: str) -> Any:
    try:
        return json.loads((store / rid / "run.json").read_text()).get("step", 0)
    except (OSError, ValueError):
        return 0


def report(spec: Spec, store: str | os.PathLike, metric: str | None = None, x: str | None = None,
           out_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Write the grid's final metrics as ``<name>.csv`` and a plotly figure ``<name>.html``
    (``metric`` against axis ``x``, mean over seeds, one line per value of the other varying
    axes) into ``out_dir`` (default ``<store>/sweeps``)."""
    rows = plan(spec, store)
    set_keys = list(dict(spec.points[0].sets))
    metric, x, lines = choose(rows, spec.name, spec.varying, set_keys, metric, x)
    folder = Path(out_dir) if out_dir is not None else Path(store) / "sweeps"
    folder.mkdir(parents=True, exist_ok=True)
    columns, cells = table(rows, set_keys)
    csv_path = folder / f"{spec.name}.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(cells)
    html_path = folder / f"{spec.name}.html"
    figure(rows, metric, x, lines).write_html(html_path)
    return csv_path, html_path


def report_metrics(rows: list[dict], set_keys: list[str]) -> list[str]:
    """The metrics a report can show: every ``<split>.<metric>`` of the rows (not a ``[set]`` key)."""
    return sorted({k for r in rows for k in r if "." in k and k not in set_keys})


def choose(rows: list[dict], name: str, varying: list[str], set_keys: list[str], metric: str | None = None,
           x: str | None = None) -> tuple[str, str, list[str]]:
    """The report's ``(metric, x, lines)``: ``metric`` (default: the first accuracy or mse, train
    split first) against axis ``x`` (default: the first numeric varying axis other than seed), one
    line per combination of the other varying axes. ``ValueError`` naming the valid choices."""
    metrics = report_metrics(rows, set_keys)
    metric = metric or next((m for m in _metric_keys(rows)), None)
    if metric is None:
        raise ValueError(f"no point of sweep {name} has finished yet; nothing to report")
    if metric not in metrics:
        raise ValueError(f"unknown metric {metric!r}; valid metrics: {', '.join(metrics)}")
    axes = [a for a in varying if a != "seed"] or varying or ["hidden"]
    x = x or next((a for a in axes if isinstance(rows[0].get(a), (int, float))), axes[0])
    if x not in rows[0] or x in ("id", "status", "step", "flop"):
        raise ValueError(f"unknown axis {x!r}; valid axes: {', '.join([*AXES, *set_keys])}")
    return metric, x, [a for a in varying if a not in (x, "seed")]


def table(rows: list[dict], set_keys: list[str]) -> tuple[list[str], list[dict]]:
    """The report's table: its columns (every axis, id, status, step, the metrics) and one row per
    point holding those columns, a list value as JSON text: what ``<name>.csv`` holds."""
    columns = [*AXES, *set_keys, "id", "status", "step", *report_metrics(rows, set_keys)]
    return columns, [{k: json.dumps(r[k]) if isinstance(r[k], list) else r[k] for k in columns if k in r}
                     for r in rows]


def figure(rows: list[dict], metric: str, x: str, lines: list[str]):
    """A plotly figure of ``metric`` against ``x``: the mean over the rows (seeds) at each point,
    with their standard deviation, one line per combination of the ``lines`` axes."""
    import plotly.graph_objects as go

    groups: dict[tuple, dict[Any, list[float]]] = {}
    for r in rows:
        v = r.get(metric)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            at = json.dumps(r[x]) if isinstance(r[x], list) else r[x]  # a list value is one (hashable) value
            groups.setdefault(tuple(str(r[a]) for a in lines), {}).setdefault(at, []).append(v)
    fig = go.Figure()
    for key, by_x in sorted(groups.items()):
        xs = sorted(by_x, key=lambda v: (isinstance(v, str), v))
        means = [sum(by_x[v]) / len(by_x[v]) for v in xs]
        std = [math.sqrt(sum((y - m) ** 2 for y in by_x[v]) / len(by_x[v])) for v, m in zip(xs, means)]
        fig.add_trace(go.Scatter(x=xs, y=means, error_y={"type": "data", "array": std}, mode="lines+markers",
                                 name=", ".join(f"{a}={k}" for a, k in zip(lines, key)) or metric))
    fig.update_layout(xaxis_title=x, yaxis_title=metric, legend_title="; ".join(lines) or None,
                      template="plotly_white")
    if x == "hidden" or x.endswith("lr"):
        fig.update_xaxes(type="log")
    ticks = {v for by_x in groups.values() for v in by_x}
    if 0 < len(ticks) <= 12 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in ticks):
        fig.update_xaxes(tickvals=sorted(ticks))  # the grid's own values, not plotly's round numbers
    return fig


def command(args) -> int:
    """``probe sweep``: dry run, report, or train the grid; exit 1 when a point failed."""
    spec = load_spec(args.spec)
    if args.dry_run:
        print(dry_run(spec, args.store, args.workers or len(os.sched_getaffinity(0))))
        return 0
    if args.report:
        for path in report(spec, args.store, args.metric, args.x, args.out):
            print(path)
        return 0
    rows, failed = run_sweep(spec, args.store, args.engine, args.workers, args.address, args.num_cpus, args.num_gpus)
    print()
    print(format_table(rows, spec.varying))
    for f in failed:
        print(f"FAILED {f['id']} ({', '.join(f'{a}={f[a]}' for a in spec.varying)}): {f['error']}", file=sys.stderr)
    print(f"{len(rows) - len(failed)} of {len(rows)} points finished"
          + (f", {len(failed)} failed; rerun the same command to retry them" if failed else ""))
    return 1 if failed else 0
