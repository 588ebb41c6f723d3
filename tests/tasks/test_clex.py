"""tasks.clex: the C lexer's features on hand-checked tricky lines and against a slow lexer."""
from __future__ import annotations

import numpy as np
import pytest

from tasks.clex import FEATURES, lex

# Tricky lines, each with its features hand-written below it (one mark per character, the
# newline included): quotes and a bracket inside a block comment, an escaped quote in a char
# literal, a ')' char literal inside an if condition with "if (" in a // comment, an escaped
# quote and a '(' in a string, a preprocessor "# if (", "iff(" and "elif (" that are not ifs,
# an if condition spanning lines and a block comment spanning lines, an escaped backslash
# before a closing quote, an unterminated string, and a // comment continued by a backslash.
LINES = [
    "/* a \"b\" ( */ x = '\\'';",
    "if (s[0] == ')') // if (",
    "\twhile (f(\"\\\"(\", 'a')) {",
    "# if (X) || defined(Y)",
    "\t\tiff(1); elif (2); if(a &&",
    "\t\t   b) {} /* multi",
    " line ( */ }",
    "\tp = \"a\\\\\"; q = \"unterminated",
    "// c \\",
    "still ( comment",
]
COMMENT = ["1" * 12 + "0" * 12,
           "0" * 17 + "1" * 7 + "0",
           "0" * 25,
           "0" * 23,
           "0" * 28,
           "0" * 11 + "1" * 9,
           "1" * 9 + "0" * 4,
           "0" * 30,
           "1" * 7,
           "1" * 15 + "0"]
STRING = ["0" * 24,
          "0" * 25,
          "0" * 10 + "1111" + "0" * 11,
          "0" * 23,
          "0" * 28,
          "0" * 20,
          "0" * 13,
          "0" * 5 + "1111" + "0" * 7 + "1" * 13 + "0",
          "0" * 7,
          "0" * 16]
CHAR = ["0" * 18 + "111" + "000",
        "0" * 12 + "11" + "0" * 11,
        "0" * 17 + "11" + "0" * 6,
        "0" * 23, "0" * 28, "0" * 20, "0" * 13, "0" * 30, "0" * 7, "0" * 16]
DEPTH = ["0" * 24,
         "000" + "11" + "22" + "1" * 8 + "0" * 10,
         "0" * 7 + "11" + "2" * 11 + "1" + "00" + "11",
         "11111" + "22" + "1" * 12 + "22" + "11",
         "11111" + "22" + "1" * 8 + "22" + "1" * 5 + "2" * 6,
         "222222" + "11" + "2" + "1" * 11,
         "1" * 11 + "00",
         "0" * 30,
         "0" * 7,
         "0" * 16]
PAREN = ["0" * 24,
         "000" + "11" + "22" + "1" * 8 + "0" * 10,
         "0" * 7 + "11" + "2" * 11 + "1" + "00" + "00",
         "00000" + "11" + "0" * 12 + "11" + "00",
         "00000" + "11" + "0" * 8 + "11" + "0" * 5 + "1" * 6,
         "111111" + "0" * 14,
         "0" * 13, "0" * 30, "0" * 7, "0" * 16]
IF = ["0" * 24,
      "000" + "1" * 12 + "0" * 10,
      "0" * 25,
      "0" * 23,
      "0" * 22 + "1" * 6,
      "111111" + "0" * 14,
      "0" * 13, "0" * 30, "0" * 7, "0" * 16]
INDENT = [0, 0, 1, 0, 2, 2, 0, 1, 0, 0]
TEXT = "".join(line + "\n" for line in LINES)


def test_hand_checked_lines():
    for marks in (COMMENT, STRING, CHAR, DEPTH, PAREN, IF):
        assert [len(m) for m in marks] == [len(line) + 1 for line in LINES]  # the table itself is aligned
    f = lex(TEXT)
    assert set(f) == set(FEATURES)
    got = lambda name: "".join(map(str, f[name]))
    assert got("in_comment") == "".join(COMMENT)
    assert got("in_string") == "".join(STRING)
    assert got("in_char") == "".join(CHAR)
    assert got("bracket_depth") == "".join(DEPTH)
    assert got("in_if") == "".join(IF)
    assert got("paren_depth") == "".join(PAREN)
    either = [max(a, b, c) for a, b, c in zip("".join(COMMENT), "".join(STRING), "".join(CHAR))]
    assert got("in_comment_or_string") == "".join(either)
    assert f["indent"].tolist() == [i for line, i in zip(LINES, INDENT) for _ in range(len(line) + 1)]
    assert f["column"].tolist() == [c for line in LINES for c in range(len(line) + 1)]


def test_an_unterminated_block_comment_and_an_unmatched_if_run_to_the_end():
    f = lex("if (a /* b")
    assert "".join(map(str, f["in_comment"])) == "0000001111"
    assert "".join(map(str, f["in_if"])) == "0001111111"
    assert lex("")["in_if"].shape == (0,)


def slow_lex(text: str) -> dict[str, list[int]]:
    """A character-by-character reference lexer with the same conventions as tasks.clex."""
    n = len(text)
    out = {k: [0] * n for k in ("in_comment", "in_string", "in_char", "bracket_depth", "in_if")}
    braces = [0] * n  # paren_depth = bracket_depth - open braces
    mode, level, parens, ifs, i = "code", 0, 0, [], 0
    while i < n:
        c = text[i]
        if mode in ('"', "'"):
            key = "in_string" if mode == '"' else "in_char"
            if c == "\\" and i + 1 < n:
                out[key][i] = out[key][i + 1] = 1
                for k in (i, i + 1):
                    out["bracket_depth"][k], out["in_if"][k] = level, int(bool(ifs))
                i += 2
                continue
            if c == mode or c == "\n":
                mode = "code"  # the closer reads 0; an unterminated literal ends before the newline
                if c == "\n":
                    out["bracket_depth"][i], out["in_if"][i] = level, int(bool(ifs))
                    i += 1
                    continue
            else:
                out[key][i] = 1
        elif mode == "block":
            if text.startswith("*/", i):
                out["in_comment"][i] = 1
                for k in (i, i + 1):
                    out["bracket_depth"][k], out["in_if"][k] = level, int(bool(ifs))
                i += 2
                mode = "code"
                continue
            out["in_comment"][i] = 1
        elif mode == "line":
            if c == "\\" and i + 1 < n:
                out["in_comment"][i] = out["in_comment"][i + 1] = 1
                for k in (i, i + 1):
                    out["bracket_depth"][k], out["in_if"][k] = level, int(bool(ifs))
                i += 2
                continue
            if c == "\n":
                mode = "code"
            else:
                out["in_comment"][i] = 1
        elif text.startswith("/*", i) or text.startswith("//", i):
            mode = "block" if text[i + 1] == "*" else "line"
            out["in_comment"][i] = out["in_comment"][i + 1] = 1
            for k in (i, i + 1):
                out["bracket_depth"][k], out["in_if"][k] = level, int(bool(ifs))
            i += 2  # "/*/" does not close
            continue
        elif c in "\"'":
            mode = c
            out["in_string" if c == '"' else "in_char"][i] = 1
        elif c in "([{":
            level += 1
            if c == "(":
                j = i - 1
                while j >= 0 and text[j] in " \t\n\r\f\v":
                    j -= 1
                word = text[j - 1:j + 1] if j >= 1 else ""
                before = text[j - 2] if j >= 2 else ""
                line = text[text.rfind("\n", 0, j - 1) + 1:j - 1]
                if word == "if" and not (before.isalnum() or before == "_") and \
                        not line.strip(" \t").endswith("#") and out["in_comment"][j] == 0:
                    ifs.append(parens)
                parens += 1
        elif c in ")]}":
            level -= 1
            if c == ")" and parens > 0:
                parens -= 1
                if ifs and ifs[-1] == parens:
                    ifs.pop()
        out["bracket_depth"][i], out["in_if"][i] = level, int(bool(ifs))
        i += 1
    opened = 0
    for j, c in enumerate(text):  # braces outside comments and literals, by the features just found
        if c in "{}" and not (out["in_comment"][j] or out["in_string"][j] or out["in_char"][j]):
            opened += 1 if c == "{" else -1
        braces[j] = opened
    out["paren_depth"] = [d - b for d, b in zip(out["bracket_depth"], braces)]
    return out


def _agree(text: str) -> None:
    fast = lex(text)
    slow = slow_lex(text)
    for name, values in slow.items():
        same = np.array(values) == fast[name]
        assert same.all(), (name, int(np.argmin(same)), text[max(0, int(np.argmin(same)) - 40):int(np.argmin(same)) + 5])


def test_lexer_agrees_with_the_slow_reference_on_the_hand_checked_lines():
    _agree(TEXT)
    _agree(TEXT * 3 + "if (x) { if (y(if (z))) } '")


@pytest.mark.slow
def test_lexer_agrees_with_the_slow_reference_on_kernel_files():
    import glob

    from tasks.charlm import LINUX_TARBALLS, linux_files
    if not glob.glob(LINUX_TARBALLS):
        pytest.skip("no linux-source tarball (apt-get install linux-source)")
    _, files = linux_files()
    for _, text in files[:40]:
        _agree(text)
