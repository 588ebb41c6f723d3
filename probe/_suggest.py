"""Error text for an unknown name: all the valid choices when they are few, the nearest ones when not."""
from __future__ import annotations

import difflib
from collections.abc import Sequence

SHOW_ALL = 12  # lists up to this long are shown whole


def nearest(value: str, valid: Sequence[str], n: int = 5) -> list[str]:
    """Up to ``n`` of ``valid`` nearest to ``value``: those it prefixes or that contain it, then
    the closest by difflib's ratio (case-insensitive; dotted names also by their last part), best first."""
    low = value.lower()
    tail = low.rpartition(".")[2]

    def score(v: str) -> float:
        v = v.lower()
        return max(difflib.SequenceMatcher(None, low, v).ratio(),
                   difflib.SequenceMatcher(None, tail, v.rpartition(".")[2]).ratio())

    out = [v for v in valid if v.lower().startswith(low)] + [v for v in valid if low in v.lower()]
    out += sorted((v for v in valid if score(v) >= 0.6), key=score, reverse=True)
    return list(dict.fromkeys(out))[:n]


def choices(value: str, valid: Sequence[str], what: str, hint: str = "") -> str:
    """``"valid <what>: a, b, c"`` for a short list; ``"did you mean a, b? (39 <what>; <hint>)"`` for a long one."""
    valid = [str(v) for v in valid]
    if not valid:
        return f"no {what} yet"
    if len(valid) <= SHOW_ALL:
        return f"valid {what}: {', '.join(valid)}"
    near = nearest(str(value), valid)
    rest = f"{len(valid)} {what}" + (f"; {hint}" if hint else "")
    return f"did you mean {', '.join(near)}? ({rest})" if near else f"no {what} near it ({rest})"
