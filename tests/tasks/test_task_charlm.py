"""charlm: the lexer's features on hand-checked tricky lines and against a slow lexer; windows."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import tasks
from tasks.charlm import UNK, load_corpus
from tasks.pylex import FEATURES, lex

# Tricky lines, each with its features hand-written below it (one mark per character, the
# newline included): '#' inside a string, a quote inside a comment, an escaped quote, brackets
# inside strings and comments, an f-string, a triple-quoted string spanning lines with a '#'
# and a bracket inside it, and an escaped backslash right before a closing quote.
LINES = [
    'x = "a#b(" + ' + "'c\\'d'" + '  # q"uote (',
    'y = f"{x!r}" [',
    "    '''doc \"x\"",
    "  # not ( a comment'''",
    "]",
    'z = "a\\\\" # c(',
]
STRING = [("0000" "11111" "0000" "11111" "00000000000000"),
          ("00000" "111111" "0000"),
          ("0000" "11111111111"),
          ("111111111111111111111" "00"),
          "00",
          ("0000" "1111" "0000000")]
COMMENT = [("000000000000000000000" "1111111111" "0"),
           "000000000000000",
           "000000000000000",
           "00000000000000000000000",
           "00",
           ("0000000000" "1111" "0")]
DEPTH = ["00000000000000000000000000000000",
         ("0000000000000" "11"),
         "111111111111111",
         "11111111111111111111111",
         "00",
         "000000000000000"]
INDENT = [0, 0, 1, 0, 0, 0]


def test_hand_checked_lines():
    text = "".join(line + "\n" for line in LINES)
    for marks in (STRING, COMMENT, DEPTH):
        assert [len(m) for m in marks] == [len(line) + 1 for line in LINES]  # the table itself is aligned
    features = lex(text)
    got = lambda name: "".join(map(str, features[name]))
    assert got("in_string") == "".join(STRING)
    assert got("in_comment") == "".join(COMMENT)
    assert got("bracket_depth") == "".join(DEPTH)
    assert features["indent"].tolist() == [i for line, i in zip(LINES, INDENT) for _ in range(len(line) + 1)]
    assert features["column"].tolist() == [c for line in LINES for c in range(len(line) + 1)]


def slow_lex(text: str) -> dict[str, list[int]]:
    """A character-by-character reference lexer with the same conventions as tasks.pylex."""
    n = len(text)
    in_string, in_comment, depth = [0] * n, [0] * n, [0] * n
    mode, quote, level, i = "code", "", 0, 0
    while i < n:
        c = text[i]
        if mode == "comment":
            if c == "\n":
                mode = "code"
            else:
                in_comment[i] = 1
        elif mode == "string":
            if c == "\\":
                in_string[i:i + 2] = [1] * len(in_string[i:i + 2])
                depth[i:i + 2] = [level] * len(depth[i:i + 2])
                i += 2
                continue
            if len(quote) == 1 and c == "\n":
                mode = "code"  # unterminated: the string ends before the newline
            elif text.startswith(quote, i):
                for k in range(len(quote)):  # all but the last closing quote still read 1
                    in_string[i + k] = int(k < len(quote) - 1)
                    depth[i + k] = level
                i += len(quote)
                mode = "code"
                continue
            else:
                in_string[i] = 1
        elif c == "#":
            mode, in_comment[i] = "comment", 1
        elif c in "'\"":
            quote = c * 3 if text.startswith(c * 3, i) else c
            for k in range(len(quote)):
                in_string[i + k] = 1
                depth[i + k] = level
            i += len(quote)
            mode = "string"
            continue
        elif c in "([{":
            level += 1
        elif c in ")]}":
            level -= 1
        depth[i] = level
        i += 1
    column, indent, lead, line_start = [0] * n, [0] * n, 0, 0
    for j, c in enumerate(text):  # column and indentation, line by line
        if j == line_start:
            lead = len(text[j:]) - len(text[j:].lstrip(" "))
            end = text.find("\n", j)
            lead = min(lead, (end if end >= 0 else n) - j)
        column[j], indent[j] = j - line_start, lead // 4
        if c == "\n":
            line_start = j + 1
    return {"in_string": in_string, "in_comment": in_comment, "bracket_depth": depth,
            "indent": indent, "column": column}


def test_lexer_agrees_with_the_slow_reference_on_the_corpus():
    corpus = load_corpus()
    fast = corpus.features
    # a prefix of the corpus ending at a newline where nothing is open, so both lexers see the same text
    cut = next(j + 1 for j in range(250_000, len(corpus.text))
               if corpus.text[j] == "\n" and fast["in_string"][j] == 0 and fast["bracket_depth"][j] == 0)
    slow = slow_lex(corpus.text[:cut])
    for name in ("in_string", "in_comment", "bracket_depth", "indent", "column"):
        same = np.array(slow[name]) == fast[name][:cut]
        assert same.all(), (name, int(np.argmin(same)))
    assert fast["bracket_depth"].min() == 0 and fast["bracket_depth"][-1] == 0
    assert 0.1 < fast["in_string"].mean() < 0.5 and 0.05 < fast["in_comment"].mean() < 0.3


def test_windows_carry_the_corpus_and_its_features():
    task = tasks.make("charlm", length=50)
    corpus = task.corpus
    batch = task.sample(8, seed=0)
    for i in range(8):
        start = int(batch.info["start"][i])
        assert batch.inputs[i].tolist() == corpus.ids[start:start + 50].tolist()
        assert batch.targets[i].tolist() == corpus.ids[start + 1:start + 51].tolist()
        for name, values in corpus.features.items():
            assert batch.features[name][i].tolist() == values[start:start + 50].tolist()
        text = corpus.text[start:start + 50]
        decoded = ["\n" if s == "\\n" else s for s in task.decode(batch.inputs[i])]
        assert all(d == c or d == "<unk>" for d, c in zip(decoded, text))


def test_validation_region_is_held_out():
    task = tasks.make("charlm", length=64)
    n = len(task.corpus.ids)
    split = int(n * 0.9)
    train = task.sample(256, seed=0)
    valid = task.sample(256, seed=0, **task.splits()["valid"])
    assert int(train.info["start"].max()) + 64 < split  # the last target too stays in the train region
    assert int(valid.info["start"].min()) >= split


def test_vocabulary_maps_rare_and_non_ascii_characters_to_unknown():
    corpus = load_corpus()
    assert corpus.chars[UNK] == "<unk>" and all(len(c) == 1 and ord(c) < 128 for c in corpus.chars[1:])
    known = set(corpus.chars[1:])
    unknown = sum(1 for c in corpus.text if c not in known)
    assert int((corpus.ids == UNK).sum()) == unknown > 0
    assert tasks.make("charlm").vocab_size == len(corpus.chars)


def test_corpus_ships_with_its_licence_and_is_small():
    data = Path(tasks.__file__).parent / "data"
    assert (data / "cpython_stdlib.txt").stat().st_size <= 1_500_000
    assert "PYTHON SOFTWARE FOUNDATION LICENSE" in (data / "LICENSE-PSF.txt").read_text()


def test_bits_per_char_metric():
    task = tasks.make("charlm", length=16)
    batch = task.sample(4, seed=0)
    import torch
    metrics = task.evaluate(torch.zeros(4, 16, task.vocab_size), batch)  # uniform prediction
    assert metrics["bits_per_char"] == pytest.approx(np.log2(task.vocab_size), rel=1e-5)


def test_streams_continue_where_the_last_batch_stopped_and_wrap_in_their_region():
    task = tasks.make("charlm", length=64, region="valid")
    lo, hi = task._region(task.config)
    corpus = load_corpus()
    a, b = task.stream(n=5, seed=3, step=0), task.stream(n=5, seed=3, step=1)
    assert torch.equal(a.targets[:, -1], b.inputs[:, 0])  # row b of step 1 reads on from row b of step 0
    assert torch.equal(a.targets[:, :-1], a.inputs[:, 1:])
    assert torch.equal(a.info["start"] + 64, b.info["start"])
    assert len(set(a.info["start"].tolist())) == 5  # five different streams
    again = task.stream(n=5, seed=3, step=1)
    assert torch.equal(b.inputs, again.inputs) and not torch.equal(b.inputs, task.stream(n=5, seed=4, step=1).inputs)
    # far enough on, every row has wrapped around the region (never into the training text)
    late = task.stream(n=5, seed=3, step=(hi - lo) // 64 + 3)
    for row, start in zip(late.inputs, late.info["start"].tolist()):
        assert lo <= start < hi
        at = lo + (start - lo + np.arange(64)) % (hi - lo)
        assert np.array_equal(row.numpy(), corpus.ids[at])
    for k, v in late.features.items():
        assert torch.equal(v[0], torch.as_tensor(corpus.features[k][lo + (late.info["start"][0].item() - lo
                                                                          + np.arange(64)) % (hi - lo)]).long())
    with pytest.raises(ValueError, match="step"):
        task.stream(n=5, seed=3, step=-1)


# -- the if-condition and comment-or-string features of Python ---------------------------------

IF_LINES = [
    "if (a): b",
    "x = 1 if y else 2",
    "    elif d[1:2] and (e :=",
    "  c): # no",
    '"""',
    "if x: y",
    '"""',
    "while z: pass",
    "  if lambda_: q",
]
IF_MARKS = [("00" "1111" "0000"),
            "0" * 18,
            "0" * 8 + "1" * 18,
            "1111" + "0" * 7,
            "0000",
            "0" * 8,
            "0000",
            "0" * 14,
            "0000" + "1" * 8 + "0000"]


def test_if_conditions_of_statements_only():
    text = "".join(line + "\n" for line in IF_LINES)
    assert [len(m) for m in IF_MARKS] == [len(line) + 1 for line in IF_LINES]
    features = lex(text)
    assert "".join(map(str, features["in_if"])) == "".join(IF_MARKS)
    either = features["in_string"] | features["in_comment"]
    assert np.array_equal(features["in_comment_or_string"], either) and either[text.index("# no")] == 1


# -- the Linux kernel corpus ---------------------------------------------------------------------

def _tarball(path: Path, files: dict[str, str]) -> None:
    import io
    import tarfile
    with tarfile.open(path, "w:xz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"linux-source-9.9/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_linux_selection_is_sorted_kernel_c_files_up_to_the_byte_budget(tmp_path, monkeypatch):
    from tasks import charlm
    files = {"kernel/b.c": "int b(void) { return (1); }\n" * 2, "kernel/a.h": "/* a ( */\n",
             "kernel/sub/c.c": "if (x) {\n", "kernel/z.c": "never;\n", "kernel/notes.txt": "skip (\n",
             "mm/m.c": "skip;\n"}
    _tarball(tmp_path / "linux-source-9.9.tar.xz", files)
    budget = len(files["kernel/a.h"]) + len(files["kernel/b.c"]) + 1  # reached inside kernel/sub/c.c
    monkeypatch.setattr(charlm, "LINUX_BYTES", budget)
    tarball, chosen = charlm.linux_files(str(tmp_path / "linux-source-*.tar.xz"))
    assert tarball.endswith("linux-source-9.9.tar.xz")
    assert [p for p, _ in chosen] == ["kernel/a.h", "kernel/b.c", "kernel/sub/c.c"]
    assert all(text == files[p] for p, text in chosen)
    corpus = charlm._load("linux", str(tmp_path / "linux-source-*.tar.xz"))
    assert corpus.text == "".join(files[p] for p, _ in chosen) and corpus.files == ("kernel/a.h", "kernel/b.c", "kernel/sub/c.c")
    # every file is lexed alone: the '{' left open in c.c is c.c's own, the comment's '(' never counts
    start = corpus.text.index("if (x)")
    assert corpus.features["bracket_depth"][:start].max() == 2 and corpus.features["bracket_depth"][-1] == 1
    assert corpus.features["in_if"][start + 3:start + 5].tolist() == [1, 1]
    assert corpus.features["in_comment"][:len(files["kernel/a.h"]) - 2].all()


def test_a_missing_linux_tarball_says_how_to_install_it(tmp_path, monkeypatch):
    from tasks import charlm
    monkeypatch.setattr(charlm, "LINUX_TARBALLS", str(tmp_path / "linux-source-*.tar.xz"))
    with pytest.raises(FileNotFoundError, match="apt-get install linux-source"):
        tasks.make("charlm", corpus="linux")
    assert tasks.make("charlm").feature_names == FEATURES  # the Python corpus needs no tarball


@pytest.mark.slow
def test_the_linux_corpus_from_the_installed_tarball():
    import glob

    from tasks import charlm, clex
    if not glob.glob(charlm.LINUX_TARBALLS):
        pytest.skip("no linux-source tarball (apt-get install linux-source)")
    task = tasks.make("charlm", corpus="linux", length=200)
    corpus = task.corpus
    assert corpus.files[0] == "kernel/acct.c" and list(corpus.files) == sorted(corpus.files)
    sizes = [len(t.encode()) for _, t in charlm.linux_files()[1]]
    assert sum(sizes[:-1]) < charlm.LINUX_BYTES <= sum(sizes) < charlm.LINUX_BYTES + 200_000  # ~6 MB as the paper
    assert task.feature_names == clex.FEATURES and 90 <= task.vocab_size <= 110  # the paper: ~101
    f = corpus.features
    assert f["bracket_depth"].min() >= 0 and 0.15 < f["in_comment_or_string"].mean() < 0.5
    assert 0.02 < f["in_if"].mean() < 0.2 and f["in_char"].sum() > 0
    batch = task.sample(4, seed=0, **task.splits()["valid"])
    start = int(batch.info["start"][0])
    assert batch.features["in_if"][0].tolist() == f["in_if"][start:start + 200].tolist()
    assert int(batch.info["start"].min()) >= int(len(corpus.ids) * 0.9)
