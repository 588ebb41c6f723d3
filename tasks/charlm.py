"""Character-level language modelling on real source code (Karpathy, Johnson & Fei-Fei 2015).

Two corpora (parameter ``corpus``):

- ``"python"`` (default): a fixed selection of 40 modules of the CPython 3.11.7 standard
  library, concatenated (``tasks/data/cpython_stdlib.txt``, 1.3 MB, PSF licence in
  ``tasks/data/LICENSE-PSF.txt``; the file list is in ``tasks/data/README.md``). Features from
  :func:`tasks.pylex.lex`.
- ``"linux"``: C source of the Linux kernel, the paper's own kind of corpus (it used 6.2 MB),
  read from the tarball that Debian's ``linux-source`` package installs
  (``/usr/src/linux-source-*.tar.xz``; the newest by name if several) without extracting it and
  without any download. The selection is fixed: the ``.c`` and ``.h`` files under the
  kernel's ``kernel/`` directory (:data:`LINUX_DIRS`), in sorted path order, taken whole until
  their total first reaches :data:`LINUX_BYTES` (6 000 000) bytes, then concatenated; from
  linux-source-6.1 that is 289 files, ``kernel/acct.c`` to ``kernel/rcu/rcuscale.c``, 6.0 MB,
  vocabulary 98 (the paper: ~101). Features from :func:`tasks.clex.lex`, run on each file
  alone (bracket depth restarts at 0 in every file).

The last ``valid_fraction`` of the corpus is held out (split ``"valid"``). A row is a random
window of ``length`` characters; the target is the next character.

Vocabulary: id 0 is the unknown symbol, which every non-ASCII character and every ASCII
character seen fewer than ``MIN_COUNT`` times maps to; then the remaining characters in code
point order.

Example (length=8)::

    text        def f(x):
    inputs      d e f ␣ f ( x )
    targets     e f ␣ f ( x ) :
    bracket     0 0 0 0 0 1 1 0
    column      0 1 2 3 4 5 6 7

Features are computed once per corpus and cached: :data:`tasks.pylex.FEATURES` for Python,
:data:`tasks.clex.FEATURES` for C.
"""
from __future__ import annotations

import glob
import math
import tarfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Literal

import numpy as np
import torch

from tasks import clex, pylex
from tasks.base import Batch, Task, as_long
from tasks.params import bad_param, param
from tasks.pylex import FEATURES

CORPUS = "cpython_stdlib.txt"
CORPORA = ("python", "linux")
LINUX_TARBALLS = "/usr/src/linux-source-*.tar.xz"  # Debian's linux-source package
LINUX_DIRS = ("kernel/",)   # the kernel's core: scheduler, locking, bpf, cgroups, tracing, ...
LINUX_BYTES = 6_000_000     # Karpathy et al. used 6.2 MB of kernel source
MIN_COUNT = 10  # ASCII characters rarer than this in the corpus become the unknown symbol
UNK = 0


@dataclass(frozen=True)
class Corpus:
    """The corpus as ids, its vocabulary and its per-character features (all (N,) arrays).

    ``source`` names where the text came from; ``files`` lists the files concatenated (linux).
    """

    text: str
    ids: np.ndarray
    chars: tuple[str, ...]
    features: dict[str, np.ndarray]
    source: str = CORPUS
    files: tuple[str, ...] = ()


def linux_files(pattern: str | None = None) -> tuple[str, list[tuple[str, str]]]:
    """The fixed kernel selection (see the module docstring): (tarball path, [(path, text), ...]).

    Reads the tarball once, in order, keeping only the candidates in memory. Paths are relative
    to the tarball's top directory (``kernel/acct.c``).
    """
    found = sorted(glob.glob(pattern or LINUX_TARBALLS))
    if not found:
        raise FileNotFoundError(f"charlm corpus 'linux' reads the kernel source tarball {pattern or LINUX_TARBALLS}, "
                                "and there is none: install it with `apt-get install linux-source`")
    tarball = found[-1]
    candidates = {}
    with tarfile.open(tarball, "r|xz") as archive:
        for member in archive:
            path = member.name.split("/", 1)[-1]
            if member.isfile() and path.startswith(LINUX_DIRS) and path.endswith((".c", ".h")):
                candidates[path] = archive.extractfile(member).read()
    chosen, total = [], 0
    for path in sorted(candidates):
        if total >= LINUX_BYTES:
            break
        chosen.append((path, candidates[path].decode("utf-8", errors="replace")))
        total += len(candidates[path])
    if not chosen:
        raise FileNotFoundError(f"{tarball} holds no .c or .h file under {', '.join(LINUX_DIRS)}")
    return tarball, chosen


def _encode(text: str, features: dict[str, np.ndarray], source: str, files: tuple[str, ...] = ()) -> Corpus:
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)  # (N,)
    counts = np.bincount(codes[codes < 128], minlength=128)
    kept = np.nonzero(counts >= MIN_COUNT)[0]
    table = np.zeros(int(codes.max()) + 1, dtype=np.uint8)
    table[kept] = np.arange(1, len(kept) + 1)
    features = {k: v.astype(np.int16) for k, v in features.items()}  # small ints; int16 halves the gather cost
    return Corpus(text, table[codes], ("<unk>",) + tuple(chr(c) for c in kept), features, source, files)


@lru_cache(maxsize=4)
def _load(name: str, pattern: str) -> Corpus:
    if name == "python":
        text = (resources.files("tasks") / "data" / CORPUS).read_text(encoding="utf-8")
        return _encode(text, pylex.lex(text), CORPUS)
    if name != "linux":
        raise ValueError(f"unknown charlm corpus {name!r}; valid corpora: {', '.join(CORPORA)}")
    tarball, files = linux_files(pattern)
    per_file = [clex.lex(text) for _, text in files]  # every file lexed alone: depth restarts at 0
    features = {k: np.concatenate([f[k] for f in per_file]) for k in clex.FEATURES}
    return _encode("".join(text for _, text in files), features, tarball, tuple(path for path, _ in files))


def load_corpus(name: str = "python") -> Corpus:
    """Read, encode and lex a corpus (``"python"`` or ``"linux"``) once per process."""
    return _load(name, LINUX_TARBALLS)


@dataclass(frozen=True)
class CharLMParams:
    length: int = param(100, ge=1, le=100_000, doc="characters per window (Karpathy et al.: 100)")
    region: Literal["train", "valid"] = param("train", doc="which part of the corpus windows come from")
    valid_fraction: float = param(0.1, gt=0.0, lt=1.0, doc="the held-out tail of the corpus")
    corpus: Literal["python", "linux"] = param("python", doc="shipped CPython stdlib text, or C from linux-source")


class CharLM(Task):
    """Character LM on CPython standard-library or Linux kernel source; see the module docstring.

    Features (Python): ``in_string``, ``in_comment``, ``in_comment_or_string``, ``in_if`` (0/1),
    ``bracket_depth``, ``indent`` (leading spaces // 4), ``column`` (0-based); see
    :mod:`tasks.pylex`. C adds ``in_char`` and counts indent in tabs; see :mod:`tasks.clex`.
    ``feature_names`` is the instance's corpus's.
    """

    name = "charlm"
    Params = CharLMParams
    input_kind = "tokens"
    loss = "ce"
    feature_names = FEATURES

    def _dims(self, cfg: CharLMParams) -> dict[str, int]:
        size = len(load_corpus(cfg.corpus).chars)
        return {"vocab_size": size, "d_output": size}

    def _setup(self, cfg: CharLMParams) -> None:
        self.feature_names = tuple(load_corpus(cfg.corpus).features)

    def _region(self, cfg: CharLMParams) -> tuple[int, int]:
        """[start, end) of the region's characters."""
        n = len(load_corpus(cfg.corpus).ids)
        split = int(n * (1.0 - cfg.valid_fraction))
        return (0, split) if cfg.region == "train" else (split, n)

    def _check(self, cfg: CharLMParams) -> None:
        start, end = self._region(cfg)
        if cfg.length + 1 > end - start:
            raise bad_param(self.name, "length", cfg.length,
                            f"an int <= {end - start - 1}, the {cfg.region} region's size minus one")

    def splits(self) -> dict[str, dict]:
        return {"train": {}, "valid": {"region": "valid"}}

    @property
    def corpus(self) -> Corpus:
        return load_corpus(self.config.corpus)

    def _sample(self, cfg: CharLMParams, n: int, rng: np.random.Generator) -> Batch:
        lo, hi = self._region(cfg)
        start = rng.integers(lo, hi - cfg.length, size=n)  # (B,) so that start + length < hi
        return self._windows(cfg, start[:, None] + np.arange(cfg.length + 1), start)  # (B, T + 1)

    def stream(self, n: int, seed: int, step: int, **overrides) -> Batch:
        """Batch ``step`` of ``n`` contiguous streams through the region (char-rnn's batches).

        Row b of step s is the ``length`` characters that follow row b of step s - 1, so a
        network that keeps each row's final state reads the text without a break
        (``probe.train(..., stateful=True)``). The n streams start ``size // n`` characters
        apart, from an offset drawn from ``seed``, and wrap around at the region's end.
        Deterministic in (params, n, seed, step, overrides).
        """
        for name, value, low in (("n", n, 1), ("seed", seed, 0), ("step", step, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise bad_param(self.name, name, value, f"an int >= {low}")
        cfg = self._resolve(overrides)[0]
        lo, hi = self._region(cfg)
        size = hi - lo
        offset = int(np.random.default_rng([int(seed), 0x57E4]).integers(size))
        start = lo + (offset + np.arange(n) * (size // n) + int(step) * cfg.length) % size  # (B,)
        at = lo + (start[:, None] - lo + np.arange(cfg.length + 1)) % size  # (B, T + 1), wrapped
        return self._windows(cfg, at, start)

    def _windows(self, cfg: CharLMParams, at: np.ndarray, start: np.ndarray) -> Batch:
        """Inputs at ``at[:, :-1]``, targets at ``at[:, 1:]`` (corpus positions, (B, T + 1))."""
        corpus = load_corpus(cfg.corpus)
        n, inputs = len(at), at[:, :-1]  # (B, T)
        return Batch(
            inputs=as_long(corpus.ids[inputs]), targets=as_long(corpus.ids[at[:, 1:]]),
            mask=torch.ones(n, cfg.length, dtype=torch.bool),
            features={k: as_long(v[inputs]) for k, v in corpus.features.items()},
            info={"start": as_long(start)},
        )

    def _metrics(self, outputs: torch.Tensor, batch: Batch) -> dict[str, float]:
        metrics = super()._metrics(outputs, batch)
        metrics["bits_per_char"] = metrics["loss"] / math.log(2)
        return metrics

    def _labels(self) -> list[str]:
        return [{"\n": "\\n", "\t": "\\t"}.get(c, c) for c in load_corpus(self.config.corpus).chars]
