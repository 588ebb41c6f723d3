"""A small hand-written lexer for C source: per-character ground-truth features.

The same conventions as :mod:`tasks.pylex`: every feature is the state *after reading* the
character at that position.

- ``in_comment``: 1 inside a ``/* ... */`` comment from its ``/`` up to, not including, the
  closing ``/`` (an unterminated one runs to the end of the text); and inside a ``// ...``
  comment from its first ``/`` up to, not including, the newline that ends it (a backslash
  right before a newline continues it). Comment openers count only outside strings, character
  literals and comments.
- ``in_string``: 1 from a ``"`` up to, not including, its closing ``"``; so the opening quote
  reads 1 and the closing one 0. Backslash escapes never close it (``"\\""``), and a backslash
  before a newline continues it onto the next line. An unterminated string ends before its
  line's newline. The ``<...>`` of ``#include`` is not a string.
- ``in_char``: the same for character literals ``'...'`` (an apostrophe in ``#error don't``
  opens one that ends before the newline).
- ``in_comment_or_string``: ``in_comment``, ``in_string`` or ``in_char`` (the paper's cell that
  "turns on inside comments and quotes").
- ``bracket_depth``: open ``( [ {`` minus closed ones so far, counting only those outside
  comments, strings and character literals; the opening bracket already counts, the closing one
  no longer does. Preprocessor branches (``#ifdef``/``#else``) that each open a brace are all
  counted, as the text reads.
- ``paren_depth``: the same for ``(`` and ``[`` only: the depth of an expression, without the
  nesting of ``{}`` blocks.
- ``indent``: leading tab characters of the current line (the kernel indents with tabs).
- ``column``: offset of the character in its line, 0-based; a newline has its line's length.
- ``in_if``: 1 inside the condition of an ``if`` statement: from the ``(`` after the keyword
  ``if`` (whitespace between them allowed) up to, not including, its matching ``)``, matched
  among the parentheses outside comments, strings and literals; unmatched, to the end of the
  text. The keyword must be a whole word outside comments, strings and literals, and not a
  preprocessor ``#if``.

Example::

    text            if (a[i] == '(') /* ) */
    in_if           000111111111111000000000
    in_char         000000000000110000000000
    in_comment      000000000000000001111110
    bracket_depth   000112211111111000000000
"""
from __future__ import annotations

import re

import numpy as np

from tasks._lines import bracket_depth, line_layout

__all__ = ["FEATURES", "lex"]

FEATURES = ("in_string", "in_char", "in_comment", "in_comment_or_string", "bracket_depth", "paren_depth",
            "indent", "column", "in_if")

_START = re.compile(r"/\*|//|[\"']")
_LINE_COMMENT = re.compile(r"//(?:[^\\\n]|\\[\s\S])*")  # up to, not including, the newline
# the rest of a literal after its opening quote: content, then the closer (group 1)
_QUOTE_END = {q: re.compile(rf"(?:[^{q}\\\n]|\\[\s\S])*({q}|\n|\Z)") for q in "'\""}
_IF = re.compile(r"\bif\s*\(")


def _spans(text: str) -> tuple[np.ndarray, ...]:
    """Edge arrays (+1 at a span's start, -1 past its end) of strings, chars, literals and comments."""
    n = len(text)
    string = np.zeros(n + 1, dtype=np.int32)   # [open, closing quote)
    char = np.zeros(n + 1, dtype=np.int32)
    literal = np.zeros(n + 1, dtype=np.int32)  # [open, closing quote]: brackets there do not count
    comment = np.zeros(n + 1, dtype=np.int32)  # [first /, closing / or newline)
    i = 0
    while (m := _START.search(text, i)) is not None:
        j = m.start()
        if m.group() == "/*":
            close = text.find("*/", j + 2)
            end = n if close < 0 else close + 1  # the closing '/' reads 0
            comment[j] += 1
            comment[end] -= 1
            i = end + 1
            continue
        if m.group() == "//":
            end = _LINE_COMMENT.match(text, j).end()
            comment[j] += 1
            comment[end] -= 1
            i = end
            continue
        q = m.group()
        rest = _QUOTE_END[q].match(text, j + 1)
        close = rest.end() - 1 if rest.group(1) == q else rest.start(1)  # else: before the newline
        edges = string if q == '"' else char
        edges[j] += 1
        edges[close] -= 1
        literal[j] += 1
        literal[min(close + 1, n)] -= 1
        i = close + 1
    return string, char, literal, comment


def _in_if(text: str, codes: np.ndarray, code: np.ndarray) -> np.ndarray:
    """The ``in_if`` feature (n,) int32, from the mask of characters outside comments and literals."""
    n = len(text)
    parens = np.nonzero(((codes == ord("(")) | (codes == ord(")"))) & code)[0]
    match, stack = {}, []
    for p, c in zip(parens.tolist(), codes[parens].tolist()):  # match parentheses with a stack
        if c == ord("("):
            stack.append(p)
        elif stack:
            match[stack.pop()] = p
    edges = np.zeros(n + 1, dtype=np.int32)
    for m in _IF.finditer(text):
        k, p = m.start(), m.end() - 1                       # the keyword, its '('
        if not (code[k] and code[p]):
            continue
        line = text.rfind("\n", 0, k) + 1
        if text[line:k].strip(" \t").endswith("#"):         # a preprocessor #if (...)
            continue
        edges[p] += 1
        edges[match.get(p, n)] -= 1
    return (np.cumsum(edges[:n]) > 0).astype(np.int32)


def lex(text: str) -> dict[str, np.ndarray]:
    """Per-character features of C source ``text``.

    Returns
    -------
    dict of int32 arrays (len(text),), keyed by :data:`FEATURES`.
    """
    n = len(text)
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)  # (n,)
    string, char, literal, comment = _spans(text)
    in_string = np.cumsum(string[:n]) > 0
    in_char = np.cumsum(char[:n]) > 0
    in_literal = np.cumsum(literal[:n]) > 0
    in_comment = np.cumsum(comment[:n]) > 0

    code = ~(in_literal | in_comment)
    depth = bracket_depth(codes, code)
    braces = (codes == ord("{")).astype(np.int32) - (codes == ord("}"))
    paren = depth - np.cumsum(braces * code)
    position, line_start, leading = line_layout(codes, "\t")
    return {"in_string": in_string.astype(np.int32), "in_char": in_char.astype(np.int32),
            "in_comment": in_comment.astype(np.int32),
            "in_comment_or_string": (in_string | in_char | in_comment).astype(np.int32),
            "bracket_depth": depth.astype(np.int32), "paren_depth": paren.astype(np.int32),
            "indent": leading.astype(np.int32),
            "column": (position - line_start).astype(np.int32),
            "in_if": _in_if(text, codes, code)}
