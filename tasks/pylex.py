"""A small hand-written lexer for Python source: per-character ground-truth features.

Every feature is the state *after reading* the character at that position, which is what a
character-level model must carry to predict the next one:

- ``in_string``: 1 from a string literal's first quote up to, but not including, the last
  character of its closing quote(s); so the opening quote reads 1 and the closing quote 0.
  Triple-quoted strings span lines; backslash escapes (``\\'``, ``\\\\``) never close a string
  (the same in raw strings, where ``r"\\""`` is legal); f-strings count as strings throughout,
  ``{...}`` fields included; prefix letters (``f``, ``rb``, ...) read 0. An unterminated
  single-quoted string ends before its line's newline.
- ``in_comment``: 1 from ``#`` (outside strings) up to, not including, the newline.
- ``bracket_depth``: open ``( [ {`` minus closed ones so far, counting only those outside
  strings and comments; the opening bracket already counts, the closing one no longer does.
- ``in_comment_or_string``: ``in_string`` or ``in_comment`` (the paper's cell that "turns on
  inside comments and quotes").
- ``indent``: leading spaces of the current line, divided by 4 (floor).
- ``column``: offset of the character in its line, 0-based; a newline has its line's length.
- ``in_if``: 1 inside the condition of an ``if`` or ``elif`` statement: from the character after
  the keyword up to, not including, the ``:`` that ends it (the first ``:`` outside strings,
  comments and brackets that is not ``:=``). Only statements count: the keyword is the first
  word of its line, outside brackets; the ``if`` of a conditional expression or comprehension
  does not. A ``lambda``'s colon right in the condition would end it early (never seen in the corpus).

Example::

    text           x = f"#{a}" # it's
    in_string      000001111100000000
    in_comment     000000000000111111

    text           if (a): b
    in_if          001111000
    bracket_depth  000110000
"""
from __future__ import annotations

import re

import numpy as np

from tasks._lines import bracket_depth, line_layout

__all__ = ["FEATURES", "lex"]

FEATURES = ("in_string", "in_comment", "in_comment_or_string", "bracket_depth", "indent", "column", "in_if")

_START = re.compile(r"[#'\"]")
# the rest of a string after its opening quote(s): content, then the closer (group 1)
_SINGLE_END = {q: re.compile(rf"(?:[^{q}\\\n]|\\[\s\S])*({q}|\n|\Z)") for q in "'\""}
_TRIPLE_END = {q: re.compile(rf"(?:[^{q}\\]|\\[\s\S]|{q}(?!{q}{q}))*({q}{q}{q}|\Z)") for q in "'\""}
_IF = re.compile(r"^[ \t]*(?:el)?if\b", re.MULTILINE)  # an if/elif statement's keyword, ending at match.end()


def _spans(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edge arrays (+1 at a span's start, -1 past its end) of strings, whole literals and comments."""
    n = len(text)
    string = np.zeros(n + 1, dtype=np.int32)  # [open, last char of the closer)
    literal = np.zeros(n + 1, dtype=np.int32)  # [open, last char of the closer]: brackets there do not count
    comment = np.zeros(n + 1, dtype=np.int32)  # [#, newline)
    i = 0
    while (m := _START.search(text, i)) is not None:
        j = m.start()
        q = text[j]
        if q == "#":
            end = text.find("\n", j)
            end = n if end < 0 else end
            comment[j] += 1
            comment[end] -= 1
            i = end
            continue
        if text.startswith(q * 3, j):
            rest = _TRIPLE_END[q].match(text, j + 3)
            close = rest.end() - 1 if rest.group(1) else n  # unterminated: to the end of the text
        else:
            rest = _SINGLE_END[q].match(text, j + 1)
            close = rest.end() - 1 if rest.group(1) == q else rest.start(1)  # else: before the newline
        string[j] += 1
        string[close] -= 1
        literal[j] += 1
        literal[min(close + 1, n)] -= 1
        i = close + 1
    return string, literal, comment


def lex(text: str) -> dict[str, np.ndarray]:
    """Per-character features of Python source ``text``.

    Returns
    -------
    dict of int32 arrays (len(text),), keyed by :data:`FEATURES`.
    """
    n = len(text)
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)  # (n,)
    string, literal, comment = _spans(text)
    in_string = np.cumsum(string[:n]) > 0
    in_literal = np.cumsum(literal[:n]) > 0
    in_comment = np.cumsum(comment[:n]) > 0

    code = ~(in_literal | in_comment)
    depth = bracket_depth(codes, code)
    position, line_start, leading = line_layout(codes, " ")
    return {"in_string": in_string.astype(np.int32), "in_comment": in_comment.astype(np.int32),
            "in_comment_or_string": (in_string | in_comment).astype(np.int32),
            "bracket_depth": depth.astype(np.int32), "indent": (leading // 4).astype(np.int32),
            "column": (position - line_start).astype(np.int32),
            "in_if": _in_if(text, codes, code, depth)}


def _in_if(text: str, codes: np.ndarray, code: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """The ``in_if`` feature: (n,) int32 from the code mask and bracket depth (see the module docstring)."""
    n = len(text)
    colon = (codes == ord(":")) & code & (depth == 0)
    colon[:-1] &= codes[1:] != ord("=")                                        # not the walrus :=
    colons = np.nonzero(colon)[0]                                              # (K,) sorted
    edges = np.zeros(n + 1, dtype=np.int32)
    for m in _IF.finditer(text):
        k = m.end() - 1                                                        # the keyword's last letter
        if not code[k] or depth[k] != 0:
            continue
        at = np.searchsorted(colons, k)
        end = int(colons[at]) if at < len(colons) else n
        edges[k + 1] += 1
        edges[end] -= 1
    return (np.cumsum(edges[:n]) > 0).astype(np.int32)
