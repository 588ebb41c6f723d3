"""What the Python and C lexers share: bracket depth outside literals, and each character's line."""
from __future__ import annotations

import numpy as np


def bracket_depth(codes: np.ndarray, code: np.ndarray) -> np.ndarray:
    """Depth of ``([{`` nesting after each character, counting brackets where ``code`` is True
    (outside strings and comments); ``codes`` are the characters' code points, (n,)."""
    opens = np.isin(codes, [ord(c) for c in "([{"]) & code
    closes = np.isin(codes, [ord(c) for c in ")]}"]) & code
    return np.cumsum(opens.astype(np.int32) - closes)


def line_layout(codes: np.ndarray, pad: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(position, line_start, leading)``, each (n,): a character's index, the index of the
    first character of its line, and how many ``pad`` characters open its line."""
    n = len(codes)
    position = np.arange(n)
    starts = np.zeros(n, dtype=np.int64)
    after = position[codes == ord("\n")] + 1
    after = after[after < n]
    starts[after] = after
    line_start = np.maximum.accumulate(starts)
    not_pad = np.where(codes != ord(pad), position, n)
    next_not_pad = np.minimum.accumulate(not_pad[::-1])[::-1]
    return position, line_start, next_not_pad[line_start] - line_start
