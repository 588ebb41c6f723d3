"""What the explorer's callbacks compute, as plain functions (tested without a server).

Pages call these and turn what they return into components; nothing here knows about Dash.
Inputs from the browser are checked here, whatever JSON value arrives, and bad ones raise
``ValueError`` with a message the page shows as it is. The work one request can ask for is
bounded: inputs of at most ``MAX_TYPED`` steps, units checked against the hook's width before a
range is expanded, one edit per run, 32 sampled inputs when matching, ``MAX_SWEEPS`` sweep files
of at most 4 MB and ``MAX_POINTS`` points of one sweep (and, in ``app/jobs.py``, two background
analyses at a time).
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np

MAX_TYPED = 2000  # typed inputs longer than this are refused: the heatmap would be unreadable anyway

# --- runs and training -------------------------------------------------------------------------


def runs_table(store) -> list[dict[str, Any]]:
    """One row per run for the DataTable: ``probe.list_runs`` with floats rounded and NaN blanked."""
    from probe.runs import list_runs

    rows = []
    for r in list_runs(store):
        row = {}
        for k, v in r.items():
            if isinstance(v, float):
                v = None if not math.isfinite(v) else round(v, 4)
            elif not isinstance(v, (int, str, type(None))):
                v = str(v)
            row[k] = v
        rows.append(row)
    return rows


def metric_keys(run) -> list[str]:
    """The metrics logged for a run: ``loss`` first, then every ``<split>.<metric>``."""
    keys: dict[str, None] = {}
    for row in run.metrics:
        for k, v in row.items():
            if k not in ("step", "member", "lr", "time") and isinstance(v, (int, float)):
                keys[k] = None
    return sorted(keys, key=lambda k: (k != "loss", k))


def member_curves(run, key: str) -> dict[int, tuple[list[int], list[float]]]:
    """``{member: (steps, values)}`` of one metric."""
    out: dict[int, tuple[list[int], list[float]]] = {}
    for row in run.metrics:
        v = row.get(key)
        if isinstance(v, (int, float)) and math.isfinite(v):
            steps, vals = out.setdefault(int(row.get("member", 0)), ([], []))
            steps.append(int(row["step"]))
            vals.append(float(v))
    return out


def pick_checkpoint(run, click: dict | None) -> int | None:
    """The checkpoint step nearest a clicked point of the training figure (``None`` without a
    click, or for a click payload of any other shape)."""
    points = click.get("points") if isinstance(click, dict) else None
    if not isinstance(points, list) or not points or not isinstance(points[0], dict):
        return None
    steps = run.checkpoint_steps
    if not steps:
        return None
    x = points[0].get("x")
    if isinstance(x, bool) or not isinstance(x, (int, float, str)):
        return None
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(x):
        return None
    return min(steps, key=lambda s: abs(s - x))


# --- inputs --------------------------------------------------------------------------------------


def alphabet(task) -> list[str]:
    """The labels a user may type for a token task (the task's vocabulary, as ``task.decode`` writes it)."""
    if task.input_kind != "tokens":
        return []
    return task.decode(list(range(task.vocab_size)))


def parse_tokens(task, text: str) -> list[int]:
    """Token ids of a typed input.

    When the alphabet has a whitespace token (charlm's space and newline), the text is read one
    character per token and whitespace is kept: a space is the space token, a newline the
    newline token (``"\\n"`` in charlm's labels), so code can be typed as it is. Otherwise
    labels separated by spaces (``"0 1 <pad>"``, ``"k3 v40"``) or, failing that, one character
    per token (``"0110"``), where the spaces only separate.

    Raises ``ValueError`` naming the first bad symbol and the valid ones.
    """
    if task.input_kind != "tokens":
        raise ValueError(f"task {task.name} takes vectors; typed input is for token tasks, sample by seed instead")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("type an input first")
    if len(text) > MAX_TYPED:
        raise ValueError(f"typed input is {len(text)} characters long; at most {MAX_TYPED}")
    labels = alphabet(task)
    index = {label: i for i, label in enumerate(labels)}
    if "\\n" in index and "\n" not in index:
        index["\n"] = index["\\n"]  # a typed newline is the newline token
    text = text.replace("\r\n", "\n")
    if any(c.isspace() for c in index if len(c) == 1):
        symbols = list(text)  # whitespace is text: keep every character
    else:
        symbols = text.split()
        if not all(s in index for s in symbols):
            symbols = [c for c in text if not c.isspace()]  # "0110": one character per token
    bad = [s for s in symbols if s not in index]
    if bad:
        shown = " ".join(repr(label) for label in labels[:40]) + (" ..." if len(labels) > 40 else "")
        raise ValueError(f"{bad[0]!r} is not in the alphabet of {task.name}: {shown}")
    return [index[s] for s in symbols]


def _integer(name: str, value: Any) -> int:
    """A browser value (a number or its text) as an int; ``ValueError`` for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{name} must be an integer, got {str(value)[:40]!r}")
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be an integer, got {str(value)[:40]!r}") from None


def make_input(task, mode: Literal["seed", "typed"] = "seed", seed: Any = 0, text: str = "", length: Any = None) -> dict:
    """One input sequence: ``{"inputs" (1, T[, d]), "labels" [T], "features" {name: [T]}, "targets"}``.

    ``mode="seed"`` samples it from the task (at ``length``, if given and the task takes one);
    ``"typed"`` parses ``text`` (features then empty).
    """
    import torch

    if mode == "typed":
        ids = parse_tokens(task, text)
        inputs = torch.tensor([ids], dtype=torch.long)  # (1, T)
        return {"inputs": inputs, "labels": task.decode(ids), "features": {}, "targets": None}
    seed = _integer("seed", seed)
    if not 0 <= seed < 2**63:
        raise ValueError(f"seed must be in 0..2**63 - 1, got {seed}")
    overrides = {}
    if length is not None and length != "":
        overrides["length"] = _integer("length", length)
        if not 1 <= overrides["length"] <= MAX_TYPED:
            raise ValueError(f"length must be in 1..{MAX_TYPED}, got {length}")
    try:
        batch = task.sample(1, seed=seed, **overrides)
    except TypeError as e:
        raise ValueError(f"task {task.name} cannot sample with {overrides}: {e}") from None
    feats = {k: v[0].float().tolist() for k, v in batch.features.items() if v.dim() == 2}
    return {"inputs": batch.inputs, "labels": task.decode(batch.inputs[0]),
            "features": feats, "targets": batch.targets[0]}


# --- states --------------------------------------------------------------------------------------


def trajectories(model, inputs, names_filter=None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every hook's trajectory ``{hook: (T, D)}`` (those ``names_filter`` names, if given; a matrix
    state's only then) and the outputs ``(T, d_output)`` for one input."""
    import torch

    with torch.no_grad():
        out, cache = model.run_with_cache(inputs, names_filter=names_filter)
    trajs = {k: v[0].float().numpy() for k, v in cache.items() if v.dim() == 3}  # (T, D)
    return trajs, out[0].float().numpy()


def brush_range(relayout: dict | None, selected: dict | None, length: int) -> tuple[int, int] | None:
    """The brushed time range ``(t0, t1)`` (inclusive) from a box selection or a zoom on the x axis."""
    lo = hi = None
    selected = selected if isinstance(selected, dict) else None  # any other payload: no selection
    relayout = relayout if isinstance(relayout, dict) else None
    if selected and isinstance(selected.get("range"), dict):
        xs = next((v for k, v in selected["range"].items() if str(k).startswith("x")), None)
        if isinstance(xs, list) and len(xs) == 2:
            lo, hi = xs
    elif selected and isinstance(selected.get("points"), list):
        xs = [p.get("x") for p in selected["points"] if isinstance(p, dict) and isinstance(p.get("x"), (int, float))
              and not isinstance(p.get("x"), bool)]
        if xs:
            lo, hi = min(xs), max(xs)
    if lo is None and relayout:
        if "xaxis.range[0]" in relayout:
            lo, hi = relayout["xaxis.range[0]"], relayout.get("xaxis.range[1]")
        elif isinstance(relayout.get("xaxis.range"), list) and len(relayout["xaxis.range"]) == 2:
            lo, hi = relayout["xaxis.range"]
    if lo is None or hi is None or isinstance(lo, bool) or isinstance(hi, bool):
        return None
    try:
        t0, t1 = sorted((int(math.ceil(float(lo))), int(math.floor(float(hi)))))
    except (TypeError, ValueError, OverflowError):
        return None
    t0, t1 = max(t0, 0), min(t1, length - 1)
    return (t0, t1) if t0 <= t1 else None


def clicked_unit(click: Any) -> int | None:
    """The unit (row) of a click on the states heatmap (its first trace), else ``None``."""
    points = click.get("points") if isinstance(click, dict) else None
    if not isinstance(points, list) or not points or not isinstance(points[0], dict):
        return None
    p = points[0]
    y = p.get("y")
    if p.get("curveNumber", 0) != 0 or isinstance(y, bool) or not isinstance(y, (int, float)) \
            or not math.isfinite(y) or y != int(y) or not 0 <= y < 1 << 20:
        return None
    return int(y)


_CELLS: dict[tuple, list] = {}  # (cache file, mtime) -> ranking: reading the cells result takes a second


def cells_ranking(run, member: int = 0, per_feature: int = 3) -> list[tuple[str, str, float]]:
    """The best units of the *cached* cells analysis of ``run``: ``[(unit, feature, score)]``,
    ``per_feature`` per feature, best first; empty when the analysis is not cached (never computed here)."""
    import analyses

    from app import jobs

    if not jobs.is_cached(run, "cells", member):
        return []
    path = run.path / "analyses" / analyses._cache_name("cells", member, {})
    key = (str(path), os.lstat(path).st_mtime_ns)
    if key not in _CELLS:
        result = analyses.analyze("cells", run, member=member)
        top = getattr(result, "top", {}) or {}
        ranked = [(str(r["unit"]), str(feature), float(r.get("score", 0.0)))
                  for feature, rows in top.items() if isinstance(rows, list)
                  for r in rows[:per_feature] if isinstance(r, dict) and "unit" in r]
        _CELLS.clear()
        _CELLS[key] = sorted(ranked, key=lambda r: -r[2])
    return _CELLS[key]


def select_units(traj: np.ndarray, t0: int, t1: int, threshold: float, off_elsewhere: bool = False) -> list[int]:
    """Units above ``threshold`` at every step of ``[t0, t1]`` (and, if asked, below it everywhere else).

    ``traj`` is (T, D); the LSTMVis rule of "on in the range, off outside".
    """
    T = traj.shape[0]
    if not 0 <= t0 <= t1 < T:
        raise ValueError(f"time range [{t0}, {t1}] outside the input's 0..{T - 1}")
    on = (traj[t0:t1 + 1] > threshold).all(0)  # (D,)
    if off_elsewhere:
        outside = np.concatenate([traj[:t0], traj[t1 + 1:]])  # (T - span, D)
        if len(outside):
            on &= (outside <= threshold).all(0)
    return [int(i) for i in np.flatnonzero(on)]


def pca(traj: np.ndarray, k: int = 3) -> tuple[np.ndarray, list[float]]:
    """Projection ``(T, k)`` of a state trajectory on its top principal components, and their variance ratios."""
    from sklearn.decomposition import PCA

    k = max(1, min(k, traj.shape[0], traj.shape[1]))
    if traj.shape[0] < 2:
        return np.zeros((traj.shape[0], k)), [0.0] * k
    p = PCA(n_components=k).fit(traj)
    return p.transform(traj), [float(v) for v in p.explained_variance_ratio_]


def match_scores(acts: np.ndarray, ref: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Score every window of every sequence against a reference window of the same units.

    ``acts`` is (n, T, U) and ``ref`` (L, U): the selected units' activations. A unit is *on* at
    a step when above ``threshold``. Returns ``jaccard`` (n, T - L + 1), the Jaccard index of the
    window's on-set and the reference's (as sets of (step, unit) pairs; 1 when both are empty),
    and ``distance`` (n, T - L + 1), the mean |activation - reference| over the window, which
    ranks windows with the same on-set.
    """
    _, T, U = acts.shape
    L = ref.shape[0]
    if ref.ndim != 2 or ref.shape[1] != U or not 1 <= L <= T:
        raise ValueError(f"reference window {ref.shape} does not fit activations {acts.shape}")
    windows = np.lib.stride_tricks.sliding_window_view(acts, L, axis=1)  # (n, T - L + 1, U, L)
    ref_t = ref.T  # (U, L)
    on, ref_on = windows > threshold, ref_t > threshold
    inter = (on & ref_on).sum((-2, -1))  # (n, T - L + 1)
    union = (on | ref_on).sum((-2, -1))
    jaccard = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    distance = np.abs(windows - ref_t).mean((-2, -1))  # (n, T - L + 1)
    return jaccard, distance


def match_inputs(model, task, hook: str, units: list[int], ref: np.ndarray, threshold: float,
                 n: int = 32, seed: int = 1, context: int = 8) -> list[dict]:
    """Sampled inputs whose selected units behave like the reference window ``ref`` (L, U).

    Every window of ``n`` sampled inputs is scored by :func:`match_scores`; each input keeps
    its best window (highest Jaccard index, then smallest distance), and the ten best inputs
    come first. Rows carry the match with ``context`` tokens either side, whitespace as glyphs.
    """
    import torch

    from app import textview

    ref = np.asarray(ref, dtype=float)
    if not units or ref.ndim != 2 or len(ref) == 0:
        raise ValueError("select units and a time range first")
    batch = task.sample(n, seed=seed)
    with torch.no_grad():
        _, cache = model.run_with_cache(batch.inputs, names_filter=[hook])
    acts = cache[hook][..., units].float().numpy()  # (n, T, U)
    L = ref.shape[0]
    if acts.shape[1] < L:
        return []
    jaccard, distance = match_scores(acts, ref, threshold)
    out = []
    for i in range(n):
        t = int(np.lexsort((distance[i], -jaccard[i]))[0])  # best Jaccard, then nearest
        labels = task.decode(batch.inputs[i])
        part = lambda a, b, labels=labels: textview.render(labels[max(a, 0):b])  # noqa: E731
        sep = textview.joiner(labels)
        out.append({"sample": i, "start": t, "score": round(float(jaccard[i, t]), 3),
                    "distance": round(float(distance[i, t]), 4), "text": part(t, t + L),
                    "before": ("…" if t > context else "") + part(t - context, t) + (sep if t else ""),
                    "after": (sep if t + L < len(labels) else "") + part(t + L, t + L + context)
                    + ("…" if t + L + context < len(labels) else "")})
    return sorted(out, key=lambda r: (-r["score"], r["distance"]))[:10]


# --- matrix states ---------------------------------------------------------------------------


def matrix_shapes(model) -> dict[str, dict]:
    """The matrix-state hooks of ``model`` and how each flattens its state:
    ``{"layers.{i}.hook_S": {"heads", "rows", "cols", "order", "row_title", "col_title", "arch"}}``.

    ``hook_S`` is (T, width) per input, flattened row-major from the layer's own state: (heads, F, V)
    for linattn, based and deltanet (keys on F, values on V, see :mod:`probe.models.linattn`) and
    (D, N) for mamba (channels d take the value u_t[d], state indices n the key B_t[n], see
    :mod:`probe.models.mamba`). Every matrix is shown as value dim (rows) × key dim (columns);
    ``order`` says how the flat vector is laid out ("hkv": heads, keys, values; "vk": values, keys).
    Empty for a model whose states are vectors.
    """
    from probe.models.linattn import MatrixLayer
    from probe.models.mamba import MambaLayer

    out = {}
    for i, layer in enumerate(getattr(model, "layers", [])):
        hook = f"layers.{i}.hook_S"
        if isinstance(layer, MatrixLayer):
            normalize = bool(getattr(layer, "normalize", False))
            arch = getattr(layer, "ARCH", "deltanet")
            out[hook] = {"heads": layer.heads, "rows": layer.V, "cols": layer.F, "order": "hkv", "arch": arch,
                         "row_title": "value dim" + (" (last row: the normaliser Σφ(k))" if normalize else ""),
                         "col_title": "key dim" + (" (feature φ(k))" if layer.F != layer.d_key else "")}
        elif isinstance(layer, MambaLayer):
            out[hook] = {"heads": 1, "rows": layer.hidden, "cols": layer.N, "order": "vk", "arch": "mamba",
                         "row_title": "value dim (channel d, input u_t[d])",
                         "col_title": "key dim (state index n, input B_t[n])"}
    return out


def matrix_hook(shapes: dict[str, dict], page_hook: Any) -> str | None:
    """The matrix state to show: that of the page hook's layer when it has one, else the first layer's;
    ``None`` for a model without matrix states."""
    if not shapes:
        return None
    if isinstance(page_hook, str) and "." in page_hook:
        mine = page_hook.rsplit(".", 1)[0] + ".hook_S"
        if mine in shapes:
            return mine
    return next(iter(shapes))


def pick_step(T: int, step: Any = None, brushed: Any = None) -> int:
    """The step to show in ``0..T-1``: ``step`` when it is one, else the first brushed step, else the last."""
    for s in (step, brushed):
        if isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) and 0 <= int(s) < T:
            return int(s)
    return T - 1


def state_matrices(traj: np.ndarray, shape: dict, t: int) -> np.ndarray:
    """S_t as matrices ``(heads, value dim, key dim)`` from a ``hook_S`` trajectory ``traj`` (T, width)."""
    h, r, c = shape["heads"], shape["rows"], shape["cols"]
    T, width = traj.shape
    if width != h * r * c:
        raise ValueError(f"hook_S has width {width}, not heads·rows·cols = {h}·{r}·{c}")
    if not 0 <= t < T:
        raise ValueError(f"step {t} outside the input's 0..{T - 1}")
    flat = traj[t]
    if shape["order"] == "hkv":
        return flat.reshape(h, c, r).transpose(0, 2, 1)  # (heads, V, F)
    return flat.reshape(1, r, c)  # (1, D, N)


_S_LAST: list = [None]  # (model, key of hook and input, (T, width) trajectory): the page's last hook_S


def state_trajectory(model, inputs, hook: str) -> np.ndarray:
    """The trajectory (T, width) of one hook of ``model`` on one input, computed once: the last one
    is kept, so that the heatmap, the matrix panel and its step slider share a matrix state's run."""
    import hashlib

    import torch

    arr = inputs.detach().cpu().numpy() if isinstance(inputs, torch.Tensor) else np.asarray(inputs)
    key = (hook, arr.shape, str(arr.dtype), hashlib.sha1(arr.tobytes()).hexdigest())
    last = _S_LAST[0]  # read once: callbacks run in threads, and each entry is replaced whole
    if last is not None and last[0] is model and last[1] == key:
        return last[2]
    traj = trajectories(model, inputs, names_filter=[hook])[0][hook]  # (T, width)
    _S_LAST[0] = (model, key, traj)
    return traj


# --- interventions -------------------------------------------------------------------------------


def carried_over(picked: Any, run_id: str, hooks: list[str]) -> dict | None:
    """What the Intervene page takes from the States page's selection (``app-units``): the hook,
    the units (as text), the first brushed step and the input (seed, length, typed text).
    ``None`` when the selection is for another run or is not a selection at all."""
    if not isinstance(picked, dict) or picked.get("run") != run_id:
        return None
    hook = picked.get("hook") if picked.get("hook") in hooks else hooks[0]
    units = picked.get("units")
    units = ",".join(str(u) for u in units if isinstance(u, int) and not isinstance(u, bool)) \
        if isinstance(units, list) else ""
    t0 = picked.get("t0")
    step = t0 if isinstance(t0, int) and not isinstance(t0, bool) and t0 >= 0 else None
    typed = picked.get("mode") == "typed" and isinstance(picked.get("text"), str)
    seed = picked.get("seed")
    length = picked.get("length")
    return {"hook": hook, "units": units, "step": step,
            "seed": seed if isinstance(seed, int) and not isinstance(seed, bool) else 0,
            "length": length if isinstance(length, int) and not isinstance(length, bool) else None,
            "text": picked["text"] if typed else ""}


Op = Literal["zero", "clamp", "scale", "set", "patch"]


def parse_units(text: Any, width: int) -> list[int] | None:
    """Units from ``"3, 7, 10-12"`` (``None`` = all units); out-of-range units raise ``ValueError``.

    Every number and range is checked against ``width`` before a range is expanded, so the
    work is bounded by the width whatever the text asks for.
    """
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if isinstance(text, list) and all(isinstance(t, (int, str)) and not isinstance(t, bool) for t in text):
        parts = [str(t) for t in text]
    elif isinstance(text, (str, int)) and not isinstance(text, bool):
        parts = [p for p in str(text).replace(";", ",").split(",") if p.strip()]
    else:
        raise ValueError(f"units must be text like 3, 7, 10-12, got {str(text)[:40]!r}")
    if sum(map(len, parts)) > MAX_TYPED:
        raise ValueError(f"units text is longer than {MAX_TYPED} characters")
    units: set[int] = set()
    for p in parts:
        a, dash, b = p.strip().partition("-")
        try:
            lo, hi = (int(a), int(b)) if dash else (int(a), int(a))
        except ValueError:
            raise ValueError(f"units: {p.strip()!r} is not a unit number or range like 3-7") from None
        if lo > hi:
            raise ValueError(f"units: range {p.strip()!r} runs backwards")
        if not 0 <= lo or hi >= width:
            raise ValueError(f"unit {lo if lo < 0 else hi} out of range 0..{width - 1}")
        units.update(range(lo, hi + 1))
    return sorted(units)


def counterfactual(model, task, inputs, hook: str, step: Any, units: list[int] | None, op: Op,
                   value: Any = 0.0, source_inputs=None) -> dict:
    """Run the model with one step edit and return original and edited trajectories side by side.

    Returns
    -------
    dict with ``orig`` and ``edit`` (hook trajectories (T, D) as lists), ``state_hook``,
    ``orig_state`` / ``edit_state``, ``pred_orig`` / ``pred_edit`` (T,), ``changed`` (T,) bools
    and ``diff`` (T,): the largest change of the state at each step.
    """
    import torch

    import probe

    if not isinstance(hook, str) or hook not in model.hook_dict:
        raise ValueError(f"unknown hook {str(hook)[:80]!r}; hooks: {', '.join(model.hook_dict)}")
    T = inputs.shape[1]
    step = _integer("step", step)
    if not 0 <= step < T:
        raise ValueError(f"step {step} outside the input's 0..{T - 1}")
    if isinstance(value, bool) or not isinstance(value, (int, float, str, type(None))):
        raise ValueError(f"value must be a number, got {str(value)[:40]!r}")
    try:
        value = float(value if value not in (None, "") else 0.0)
    except (TypeError, ValueError):
        raise ValueError(f"value must be a number, got {value!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"value must be a finite number, got {value!r}")
    if not isinstance(op, str):
        raise ValueError(f"unknown operation {str(op)[:40]!r}; valid: zero, clamp, scale, set, patch")
    if op == "zero":
        fn = probe.zero_ablate()
    elif op == "clamp":
        fn = probe.clamp(min=-abs(value), max=abs(value))
    elif op == "scale":
        fn = probe.scale(value)
    elif op == "set":
        fn = probe.set_to(value)
    elif op == "patch":
        if source_inputs is None:
            raise ValueError("patching needs a second input")
        if source_inputs.shape[1] <= step:
            raise ValueError(f"the second input is shorter than step {step}")
        with torch.no_grad():
            _, src = model.run_with_cache(source_inputs, names_filter=[hook])
        fn = probe.patch_from(src[hook], step)
    else:
        raise ValueError(f"unknown operation {op!r}; valid: zero, clamp, scale, set, patch")
    state_hook = "layers.0.hook_h" if "layers.0.hook_h" in model.hook_dict else hook
    with torch.no_grad():
        out0, c0 = model.run_with_cache(inputs)
        out1, c1 = probe.intervene(model, inputs, [probe.Edit(hook, step, fn, units)])
    o, e = c0[state_hook][0].float().numpy(), c1[state_hook][0].float().numpy()  # (T, D)
    if task.loss == "ce":
        p0, p1 = out0[0].argmax(-1).tolist(), out1[0].argmax(-1).tolist()
        changed = [a != b for a, b in zip(p0, p1)]
    else:
        p0, p1 = out0[0, :, 0].tolist(), out1[0, :, 0].tolist()
        changed = [abs(a - b) > 1e-3 * (1 + abs(a)) for a, b in zip(p0, p1)]
    return {"hook": hook, "step": step, "units": units, "op": op, "state_hook": state_hook,
            "orig": c0[hook][0].tolist(), "edit": c1[hook][0].tolist(),
            "orig_state": o.tolist(), "edit_state": e.tolist(),
            "pred_orig": p0, "pred_edit": p1, "changed": changed,
            "diff": np.abs(e - o).max(1).tolist()}


# --- claims --------------------------------------------------------------------------------------


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def measured_rows(value: Any, prefix: str = "", limit: int = 200) -> list[tuple[str, str]]:
    """A claim's measured (or expected) value as ``(key, value)`` rows for a table: nested dicts
    flattened to dotted keys, lists of numbers written in one cell (one entry per member or seed)."""
    rows: list[tuple[str, str]] = []

    def walk(v: Any, key: str) -> None:
        if len(rows) >= limit:
            return
        if isinstance(v, dict):
            for k, item in v.items():
                walk(item, f"{key}.{k}" if key else str(k))
        elif isinstance(v, list) and not any(isinstance(x, (dict, list)) for x in v):
            rows.append((key, ", ".join(_fmt(x) for x in v)))
        elif isinstance(v, list):
            for i, item in enumerate(v):
                walk(item, f"{key}[{i}]")
        else:
            rows.append((key, _fmt(v)))

    walk(value, prefix)
    return rows


def cached_runs(store, analysis: str) -> list[str]:
    """Runs of ``store`` holding a cached result of ``analysis`` (member 0), whose figures the
    Analyses page shows at once."""
    from probe.runs import list_runs

    out = []
    for r in list_runs(store):
        path = Path(store) / str(r["id"]) / "analyses" / f"{analysis}.json"
        if os.path.isfile(path) and not os.path.islink(path):
            out.append(str(r["id"]))
    return out



def load_claims(store) -> tuple[list[dict], str]:
    """Rows of ``<store>/claims.json`` (written by ``probe verify``) and a one-line header."""
    from probe import _io, _safepath

    path = Path(store) / "claims.json"
    if not os.path.lexists(path):
        return [], "No claims report in this store yet: run `probe verify --store <store>`."
    try:
        data = _io.read_json(_safepath.under(Path(store), path, "file"))  # no link followed, size bounded
        claims = data["claims"]
        if not isinstance(claims, list) or not all(isinstance(c, dict) for c in claims):
            raise TypeError("'claims' is not a list of objects")
    except (ValueError, KeyError, TypeError, OSError) as e:
        raise ValueError(f"claims report {path.name} cannot be read: {e}") from None
    rows = []
    for c in claims:
        cell = lambda v: v if isinstance(v, (int, float, str)) or v is None else json.dumps(v, default=str)  # noqa: E731
        rows.append({"id": c.get("id"), "source": c.get("source"), "statement": c.get("statement"),
                     "measured": cell(c.get("measured")), "expected": cell(c.get("expected")),
                     "measured_rows": measured_rows(c.get("measured")),
                     "result": "PASS" if c.get("passed") else "FAIL", "seconds": c.get("seconds")})
    created = data.get("created", 0)
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(created if isinstance(created, (int, float))
                                                       and 0 <= created < 1e11 else 0))
    passed = sum(r["result"] == "PASS" for r in rows)
    return rows, f"{passed}/{len(rows)} claims pass ({data.get('profile', '?')} profile, {when} UTC)."


# --- sweeps ------------------------------------------------------------------------------------

MAX_SWEEPS = 100  # sweeps listed on the Sweeps page, by name
MAX_POINTS = 2000  # points of one sweep read (one run.json each) for its table and figure
_SWEEPS: dict[tuple, dict] = {}  # (index file, mtime, size) -> checked sweep: a 1,000-point index parses in 10 ms


def sweep_names(store) -> list[str]:
    """Names of the sweeps of ``store``: its ``sweeps/<name>.json`` files (regular files only), sorted."""
    from probe import _safepath

    root = Path(store).resolve()
    try:
        folder = _safepath.under(root, root / "sweeps", "dir", missing_ok=True)
    except ValueError:
        raise ValueError("the store's sweeps folder is not a folder of this store (a link?); "
                         "the explorer follows no links") from None
    if folder is None:
        return []
    with os.scandir(folder) as entries:
        return sorted(e.name[:-5] for e in entries if e.name.endswith(".json") and len(e.name) > 5
                      and not e.name.startswith(".") and e.is_file(follow_symlinks=False))


def load_sweep(store, name: Any) -> dict[str, Any]:
    """The index ``probe sweep`` wrote for sweep ``name`` (its grid's points and their run ids),
    checked: ``{"name", "varying", "set_keys", "points" (at most MAX_POINTS), "total"}``.

    Raises ``ValueError`` for a bad name (see :func:`app.store.resolve_sweep`) and for a file that
    is not such an index, naming what is wrong."""
    from app.store import MAX_SWEEP_BYTES, check_run_id, resolve_sweep
    from probe import _io
    from probe.sweep import AXES

    path = resolve_sweep(store, name)
    st = os.lstat(path)
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key in _SWEEPS:
        return _SWEEPS[key]
    try:
        data = _io.read_json(path, limit=MAX_SWEEP_BYTES)
    except ValueError as e:
        raise ValueError(f"sweep {name!r} cannot be read: {str(e).replace(str(path), path.name)}") from None

    def bad(why: str) -> ValueError:
        return ValueError(f"sweep {name!r} is malformed ({path.name}): {why}; rerun `probe sweep` to rewrite it")

    points, varying = data.get("points"), data.get("varying", [])
    if not isinstance(points, list) or not points:
        raise bad("'points' is not a non-empty list")
    if not isinstance(varying, list) or not all(isinstance(v, str) for v in varying):
        raise bad("'varying' is not a list of axis names")
    scalar = (str, int, float, bool, type(None))
    for i, p in enumerate(points):
        if not isinstance(p, dict):
            raise bad(f"point {i} is not an object")
        missing = [a for a in (*AXES, "id") if a not in p]
        if missing:
            raise bad(f"point {i} has no {missing[0]!r}")
        try:
            if check_run_id(p["id"]).startswith("."):
                raise ValueError
        except ValueError:
            raise bad(f"point {i} has run id {str(p['id'])[:80]!r}, not a run id") from None
        for k, v in p.items():
            if not (isinstance(v, scalar) or isinstance(v, list) and all(isinstance(x, scalar) for x in v)):
                raise bad(f"point {i} has {str(k)[:40]} = {str(v)[:40]}, not a value or a list of values")
    found = list(dict.fromkeys(k for p in points for k in p if k not in AXES and k != "id"))
    set_keys = data.get("set_keys", found)  # the [set] keys in the sweep file's order (the points' are sorted)
    if not isinstance(set_keys, list) or sorted(set_keys) != sorted(found):
        raise bad("'set_keys' does not name the points' [set] keys")
    unknown = [v for v in varying if v not in (*AXES, *set_keys)]
    if unknown:
        raise bad(f"varying axis {unknown[0][:40]!r} is not an axis of its points")
    sweep = {"name": name, "varying": varying, "set_keys": set_keys, "points": points[:MAX_POINTS],
             "total": len(points)}
    if len(_SWEEPS) > 32:
        _SWEEPS.clear()
    _SWEEPS[key] = sweep
    return sweep


def sweep_rows(store, sweep: dict) -> list[dict[str, Any]]:
    """One row per point, as :func:`probe.sweep.plan` makes them for ``probe sweep --report``:
    the point's axes, ``id`` and :func:`probe.sweep.point_status` of its run in ``store`` (a run
    folder that is a link is ``unreadable``, never followed)."""
    from probe.sweep import point_status

    root = Path(store).resolve()
    rows = []
    for p in sweep["points"]:
        row = dict(p)
        if os.path.islink(root / p["id"]):
            row.update(status="unreadable: a symbolic link; the store follows no links", step=0)
        else:
            row.update(point_status(root, p["id"]))
        rows.append(row)
    return rows


def _count(statuses) -> dict[str, int]:
    counts = {"done": 0, "running": 0, "failed": 0, "not started": 0}
    for s in statuses:
        if s in ("done", "diverged"):
            counts["done"] += 1
        elif s == "running":
            counts["running"] += 1
        elif s in (None, "new"):
            counts["not started"] += 1
        else:  # stopped ("partial"), unreadable: failed or killed, a rerun resumes it
            counts["failed"] += 1
    return counts


def list_sweeps(store) -> tuple[list[dict[str, Any]], str]:
    """One row per sweep of ``store`` (at most ``MAX_SWEEPS``): ``name``, ``points``, how many are
    ``done`` (diverged included), ``running``, ``failed`` (stopped before their last step: failed
    or killed; a rerun resumes them) and ``not started``, its ``varying`` axes, or its ``error``;
    and a note saying what was left out. Statuses come from the store's index (``list_runs``)."""
    from probe.runs import list_runs

    names = sweep_names(store)
    if not names:
        return [], "No sweeps in this store yet: run `probe sweep SPEC.toml --store <store>`."
    status = {r["id"]: r["status"] for r in list_runs(store)}
    rows = []
    for name in names[:MAX_SWEEPS]:
        try:
            sweep = load_sweep(store, name)
        except ValueError as e:
            rows.append({"name": name, "error": str(e)})
            continue
        counts = _count(status.get(p["id"]) for p in sweep["points"])
        counts["not started"] += sweep["total"] - len(sweep["points"])  # beyond MAX_POINTS: not read
        rows.append({"name": name, "points": sweep["total"], **counts, "varying": ", ".join(sweep["varying"])})
    note = f"{len(names)} sweep(s)" + (f"; the first {MAX_SWEEPS} by name are listed" if len(names) > MAX_SWEEPS else "")
    return rows, note


def sweep_view(store, name: Any, metric: Any = None, x: Any = None) -> dict[str, Any]:
    """What the Sweeps page shows of one sweep: the table ``probe sweep --report`` writes as CSV
    (``columns``, ``rows``, from :func:`probe.sweep.table`) and its figure (``metric`` against axis
    ``x``, mean over seeds, one line per other varying axis, from :func:`probe.sweep.figure`).

    ``metric`` and ``x`` fall back to the report's defaults when absent or not one of this sweep's
    (``metrics``, ``axes``, the dropdowns' choices); ``figure`` is ``None`` and ``error`` says
    why when nothing can be drawn yet. Bad names raise ``ValueError``."""
    from probe.sweep import AXES, choose, figure, report_metrics, table

    sweep = load_sweep(store, name)
    rows = sweep_rows(store, sweep)
    set_keys, varying = sweep["set_keys"], sweep["varying"]
    columns, cells = table(rows, set_keys)
    metrics = report_metrics(rows, set_keys)
    axes = [a for a in varying if a != "seed"] + [a for a in varying if a == "seed"] or list(AXES)
    metric = metric if isinstance(metric, str) and metric in metrics else None
    x = x if isinstance(x, str) and x in axes else None
    out = {"columns": columns, "rows": cells, "metrics": metrics, "axes": axes, "figure": None, "error": "",
           "metric": metric, "x": x, "counts": _count(r["status"] for r in rows),
           "note": f"{len(rows)} of {sweep['total']} points" if sweep["total"] > len(rows) else ""}
    try:
        out["metric"], out["x"], lines = choose(rows, str(name), varying, set_keys, metric, x)
        out["figure"] = figure(rows, out["metric"], out["x"], lines)
    except ValueError as e:  # nothing finished yet
        out["error"] = str(e)
    except TypeError as e:  # axis values of kinds that have no order (a hand-edited index)
        out["error"] = f"cannot draw {out['metric']} against {out['x']}: {e}"
    return out
