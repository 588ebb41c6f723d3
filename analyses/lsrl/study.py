"""The measurements behind the ``lsrl.exact`` claim, as one JSON-able dict.

For every library program and every target: whether it compiles (else the exporter's reason),
the state size it needs, the largest numeric error against the float64 interpreter on all strings
up to the exhaustive length and on random strings of length 200, whether the symbolic backend
agrees exactly (interpreter = compiled chain = the exported weights' own equations, for the exact
targets), and the error as the length grows, in float64 and float32. Then the stability question:
the key-value memory written and read with multiplicative gates against the same memory built
from ReLU conditionals, with noise on the inputs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from typing import Optional, Sequence, Union

import torch

from analyses.base import renamed
from analyses.lsrl import checks
from analyses.lsrl.compile import TARGETS, compile
from analyses.lsrl.library import library
from probe.settings import Settings, profiles, setting, settings_for

TOLERANCE = 1e-9


@dataclass(frozen=True)
class LsrlSettings(Settings):
    """How thoroughly a profile checks the compiled programs."""

    random_len: int = setting(ge=1, doc="random strings of this length (all their prefixes are checked)")
    n_random: int = setting(ge=1)
    sym_budget: int = setting(ge=1, doc="symbolic check on all strings up to the longest L with k^L <= budget")
    sym_random: int = setting(ge=0, doc="exact check on this many random strings of length random_len too")
    lengths: tuple[int, ...] = setting(doc="precision against length")
    noise: float = setting(ge=0, doc="input noise for the gate comparison (lookup vs lookup_relu)")


SETTINGS = profiles(
    quick=LsrlSettings(200, 32, 256, 0, (10, 100, 1000), 1e-4),
    full=LsrlSettings(200, 64, 4096, 2, (10, 100, 1000, 10000), 1e-4),
)

__getattr__ = renamed(globals(), {"Profile": "LsrlSettings", "PROFILES": "SETTINGS"})


def _horizon(lp, prof: LsrlSettings) -> int:
    """The longest input a program is checked on (its own length for a structured prompt)."""
    return lp.horizon or max([prof.random_len, *prof.lengths])


def _row(name: str, lp, target: str, prof: LsrlSettings, cs: checks.Cases, seed: int, truth: list) -> dict:
    row = {"program": name, "target": target}
    H = _horizon(lp, prof)
    try:
        c = compile(lp.program, target, horizon=H, tolerance=None)
    except ValueError as e:
        return {**row, "supported": False, "reason": str(e)}
    num = checks.numeric_error(c, cs)
    L_sym = lp.max_exhaustive_len(prof.sym_budget)
    sym = checks.symbolic_check(c, lp, L_sym, prof.random_len if prof.sym_random else 0, prof.sym_random, seed,
                                truth=truth)
    margin = checks.relu_margin(c, cs.by_length[0][0])
    err_exact = checks.exact_error(c, lp, L_sym, truth=truth)
    return {**row, "supported": True, "layers": len(c.units), "units": c.units, "hidden": c.hidden,
            "state_size": c.state_size, "exhaustive_len": cs.strings.shape[1], "symbolic_len": L_sym,
            "error": max(num.values()), "error_exhaustive": num["exhaustive"], "error_random": num["random"],
            "bound": c.bound.value, "horizon": H, "constructions": list(c.constructions),
            "error_exact": err_exact,
            "symbolic_chain": sym["chain"], "symbolic_model": sym["model"],
            "relu_margin": margin if math.isfinite(margin) else None,
            "error_vs_length": checks.precision_vs_length(c, cs),
            "error_vs_length_f32": checks.precision_vs_length(compile(lp.program, target, dtype=torch.float32, tolerance=None,
                                                                      horizon=H), cs),
            "error_vs_length_noise": checks.precision_vs_length(c, cs, noisy=True) if cs.noisy else None}


GATE_PROGRAMS = ("lookup", "lookup_relu")      # the same memory, read by a gate or by ReLU conditionals


def measure(profile: Union[str, LsrlSettings] = "quick", programs: Optional[Sequence[str]] = None,
            targets: Sequence[str] = TARGETS, seed: int = 0) -> dict:
    """Every measurement of the claim; see the module docstring. ``profile``: "quick", "full"
    or any :class:`LsrlSettings`."""
    prof, rows = (profile if isinstance(profile, LsrlSettings) else settings_for(SETTINGS, profile)), []
    with checks.single_thread():
        for name, lp in library(programs).items():
            H = _horizon(lp, prof)
            cs = checks.cases(lp, lp.max_exhaustive_len(), min(prof.random_len, H), prof.n_random,
                              [L for L in prof.lengths if L <= H] or [H],
                              noise=prof.noise if name in GATE_PROGRAMS else 0.0, seed=seed)
            # the symbolic interpreter's outputs are every target's reference: computed once
            truth = checks.symbolic_truth(lp, lp.max_exhaustive_len(prof.sym_budget))
            rows += [_row(name, lp, t, prof, cs, seed, truth) for t in targets]
    gates = {f"{r['program']}/{r['target']}": r["error_vs_length_noise"] for r in rows
             if r["supported"] and r.get("error_vs_length_noise")}
    return {"profile": profile if isinstance(profile, str) else "custom", "tolerance": TOLERANCE, "lengths": list(prof.lengths), "rows": rows,
            "noise": prof.noise, "gate_stability": gates}


def precision_sweep(scales: Sequence[int] = (1, 10, 100, 1000), lengths: Sequence[int] = (10, 30, 100, 300, 1000),
                    targets: Sequence[str] = ("elman", "lstm", "gru"), n: int = 8, seed: int = 0) -> dict:
    """Measured error and compile-time bound of "more ones than zeros" (the official notebook's
    program) against the step scale (at the longest length) and against the length (at scale 1000),
    per target, as the official construction (``harden=False``) and as compiled (hardened).

    Returns {"scales", "lengths", "by_scale": {f"{target}/{construction}": {"error": [...], "bound": [...]}},
    "by_length": {...}}. Inputs are random bits; the reference is the exact output (the bound's
    reference), not the float64 interpreter, whose own rounding reaches 7e-12 at scale 1000.
    """
    from analyses.lsrl import sugar as S
    from analyses.lsrl.graph import Input, LinState
    from analyses.lsrl.program import Program
    rng = np.random.default_rng(seed)
    T = max(lengths)
    bits = torch.tensor(rng.integers(0, 2, (n, T, 1)).astype(float))

    def program(scale):
        x = Input(1, low=0, high=1, grid=1)
        return Program(x, S.larger(LinState(x, 1, 1), LinState(1 - x, 1, 1), scale=scale), name=f"more_{scale}")

    def exact(scale, x):                  # clamp(scale (ones - zeros), 0, 1): integers, exact in float64
        ones = x.cumsum(1)
        diff = 2 * ones - torch.arange(1, x.shape[1] + 1, dtype=x.dtype).view(1, -1, 1)
        return (scale * diff).clamp(0, 1)

    out: dict = {"scales": list(scales), "lengths": list(lengths), "by_scale": {}, "by_length": {}}
    with checks.single_thread():
        for target in targets:
            for hard in (False, True):
                key = f"{target}/{'hardened' if hard else 'official'}"
                row = out["by_scale"][key] = {"error": [], "bound": []}
                for scale in scales:
                    prog = program(scale)
                    c = compile(prog, target, horizon=T, tolerance=None, harden=hard)
                    row["error"].append(checks.max_error(c(bits), exact(scale, bits)))
                    row["bound"].append(c.bound.value)
                row = out["by_length"][key] = {"error": [], "bound": []}
                prog = program(scales[-1])
                for L in lengths:
                    c = compile(prog, target, horizon=L, tolerance=None, harden=hard)
                    row["error"].append(checks.max_error(c(bits[:, :L]), exact(scales[-1], bits[:, :L])))
                    row["bound"].append(c.bound.value)
    return out


def verdict(study: dict) -> tuple[dict, bool]:
    """The claim's measured summary and whether it holds.

    It holds when every program compiles to at least one target, every compiled pair is within
    the tolerance (1e-9) of the float64 interpreter on all strings up to the exhaustive length and
    on the random strings, within its compile-time bound of the exact (symbolic) outputs on the
    strings of the symbolic check, the chain agrees exactly with the interpreter (symbolic),
    and so do the exported weights of the exact targets (linear, elman, hawk).
    """
    tol = study["tolerance"]
    table, ok = {}, True
    by_program: dict[str, list] = {}
    for r in study["rows"]:
        by_program.setdefault(r["program"], []).append(r)
        if not r["supported"]:
            table.setdefault(r["program"], {})[r["target"]] = "unsupported"
            continue
        exact = r["symbolic_chain"] and r["symbolic_model"] is not False
        good = r["error"] <= tol and r.get("error_exact", 0.0) <= r.get("bound", math.inf) and exact
        ok &= good
        tag = ("exact" if r["symbolic_model"] else f"err {r['error']:.1e}") + f" (bound {r.get('bound', math.nan):.1e})"
        table.setdefault(r["program"], {})[r["target"]] = f"{tag}, state {r['state_size']}" + ("" if good else " FAIL")
    ok &= all(any(r["supported"] for r in rs) for rs in by_program.values())
    worst = {}
    for r in study["rows"]:
        if r["supported"] and len(r["error_vs_length"]) == len(study["lengths"]):
            worst[r["target"]] = [max(a, b) for a, b in zip(worst.get(r["target"], [0.0] * len(r["error_vs_length"])),
                                                          r["error_vs_length"])]
    gates = {k: v[-1] for k, v in study["gate_stability"].items()}
    L = study["lengths"][-1]
    measured = {"programs": table,
                f"max error vs length {study['lengths']} (float64)": {k: [float(f"{e:.2g}") for e in v]
                                                                     for k, v in worst.items()},
                f"input noise {study['noise']}: error at length {L}": {
                    k: float(f"{v:.2g}") for k, v in gates.items()}}
    return measured, bool(ok)


__all__ = ["GATE_PROGRAMS", "SETTINGS", "TOLERANCE", "LsrlSettings", "measure", "precision_sweep", "verdict"]
