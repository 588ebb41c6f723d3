"""The text view (Karpathy et al. 2015, Fig. 3; LSTMVis's text panel): the input's tokens, each on
a background coloured by one unit's activation, one row per unit. Pure functions, no Dash.

Whitespace is shown, never dropped: a space is ``␣``, a newline ``⏎`` (and a line break), a tab
``⇥``, so typed code reads as it was typed. Colours come from the diverging ``RdBu`` scale the
heatmap uses (negative red, positive blue), centred on 0 and fitted to the unit's own range on
this input: the largest |activation| is the full colour, 0 is white.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

GLYPHS = {" ": "␣", "\n": "⏎", "\\n": "⏎", "\t": "⇥", "\\t": "⇥", "\r": "␍"}
NEWLINES = ("\n", "\\n")  # labels that end a line (charlm writes its newline token as "\\n")


def glyph(label: str) -> str:
    """A token's label as shown: whitespace as a visible glyph, anything else unchanged."""
    return GLYPHS.get(label, label)


def joiner(labels: Sequence[str]) -> str:
    """How tokens are joined into text: nothing between characters, a space between longer labels."""
    return "" if all(len(label) <= 1 or label in GLYPHS for label in labels) else " "


def render(labels: Sequence[str]) -> str:
    """Tokens as one line of visible text (whitespace as glyphs)."""
    return joiner(labels).join(glyph(label) for label in labels)


def diverging(values: Sequence[float]) -> tuple[list[str], list[str], float]:
    """Background and text colours of every value on a scale centred on 0 and fitted to
    max |value| (returned too; 0 for an all-zero unit, drawn white).

    Returns ``(backgrounds, foregrounds, lim)``: CSS ``rgb(...)`` strings, black text on pale
    backgrounds and white on saturated ones.
    """
    from plotly.colors import sample_colorscale

    v = np.nan_to_num(np.asarray(values, dtype=float), nan=0.0, posinf=0.0, neginf=0.0)  # (T,)
    lim = float(np.abs(v).max(initial=0.0))
    if lim == 0.0:
        return ["rgb(255,255,255)"] * len(v), ["black"] * len(v), 0.0
    pos = np.clip(v / lim, -1.0, 1.0)  # (T,) in [-1, 1]
    bg = sample_colorscale("RdBu", list((pos + 1) / 2))
    fg = ["white" if abs(p) > 0.6 else "black" for p in pos]
    return bg, fg, lim


def rows(labels: Sequence[str], units: dict[str, Sequence[float]]) -> list[dict]:
    """One row per unit: ``{"unit", "lim", "cells": [{"text", "bg", "fg", "value", "newline"}]}``.

    ``units`` maps a unit's name (``"layers.0.hook_h:5"``) to its activation at every step (T,).
    """
    out = []
    for name, values in units.items():
        if len(values) != len(labels):
            raise ValueError(f"unit {name} has {len(values)} steps, the text {len(labels)}")
        bg, fg, lim = diverging(values)
        cells = [{"text": glyph(label), "bg": b, "fg": f, "value": float(v), "newline": label in NEWLINES}
                 for label, v, b, f in zip(labels, values, bg, fg)]
        out.append({"unit": name, "lim": lim, "cells": cells})
    return out


def parse_unit(name: object, hooks: dict[str, int]) -> tuple[str, int]:
    """``"layers.0.hook_h:5"`` as ``(hook, unit)``, checked against ``{hook: width}``."""
    if not isinstance(name, str) or ":" not in name:
        raise ValueError(f"a unit is named hook:index (like layers.0.hook_h:5), got {str(name)[:60]!r}")
    hook, _, index = name.rpartition(":")
    if hook not in hooks:
        raise ValueError(f"unknown hook {hook[:60]!r} in unit {name[:80]!r}; hooks: {', '.join(hooks)}")
    try:
        u = int(index)
    except ValueError:
        raise ValueError(f"unit index {index[:20]!r} in {name[:80]!r} is not an integer") from None
    if not 0 <= u < hooks[hook]:
        raise ValueError(f"unit {u} out of range 0..{hooks[hook] - 1} of {hook}")
    return hook, u


def default_units(trajs: dict[str, np.ndarray], hook: str, k: int = 3) -> list[str]:
    """The ``k`` units of ``hook`` that vary most over the input (the view's start, before a pick)."""
    traj = trajs[hook]  # (T, D)
    order = np.argsort(-traj.std(0), kind="stable")[:k]
    return [f"{hook}:{int(u)}" for u in order]
