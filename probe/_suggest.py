"""Error text for an unknown name: all the valid choices when they are few, the nearest ones when not."""
from __future__ import annotations

import difflib
from collections.abc import Sequence

SHOW_ALL = 12  # lists up to this long are shown whole


def nearest(value: str, valid: Sequence[str], n: int = 5) -> list[str]:
    """Up to ``n`` of ``valid`` nearest to ``value``: those it prefixes or that contain it, then
    difflib's close matches (case-insensitive), best first."""
    low = value.lower()
    by_low = {v.lower(): v for v in valid}
    out = [v for v in valid if v.lower().startswith(low)] + [v for v in valid if low in v.lower()]
    out += [by_low[m] for m in difflib.get_close_matches(low, list(by_low), n=n, cutoff=0.5)]
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
