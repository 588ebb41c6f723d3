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
from typing import Optional, Sequence, Union

import torch

from analyses._moved import renamed
from analyses.lsrl import checks
from analyses.lsrl.compile import TARGETS, compile
from analyses.lsrl.library import library
from probe.settings import Settings, profiles, setting, settings_for

TOLERANCE = 1e-6


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


def _row(name: str, lp, target: str, prof: LsrlSettings, cs: checks.Cases, seed: int) -> dict:
    row = {"program": name, "target": target}
    try:
        c = compile(lp.program, target)
    except ValueError as e:
        return {**row, "supported": False, "reason": str(e)}
    num = checks.numeric_error(c, cs)
    L_sym = lp.max_exhaustive_len(prof.sym_budget)
    sym = checks.symbolic_check(c, lp, L_sym, prof.random_len if prof.sym_random else 0, prof.sym_random, seed)
    margin = checks.relu_margin(c, cs.by_length[0][0])
    return {**row, "supported": True, "layers": len(c.units), "units": c.units, "hidden": c.hidden,
            "state_size": c.state_size, "exhaustive_len": cs.strings.shape[1], "symbolic_len": L_sym,
            "error": max(num.values()), "error_exhaustive": num["exhaustive"], "error_random": num["random"],
            "symbolic_chain": sym["chain"], "symbolic_model": sym["model"],
            "relu_margin": margin if math.isfinite(margin) else None,
            "error_vs_length": checks.precision_vs_length(c, cs),
            "error_vs_length_f32": checks.precision_vs_length(compile(lp.program, target, dtype=torch.float32, tolerance=None), cs),
            "error_vs_length_noise": checks.precision_vs_length(c, cs, noisy=True) if cs.noisy else None}


GATE_PROGRAMS = ("lookup", "lookup_relu")      # the same memory, read by a gate or by ReLU conditionals


def measure(profile: Union[str, LsrlSettings] = "quick", programs: Optional[Sequence[str]] = None,
            targets: Sequence[str] = TARGETS, seed: int = 0) -> dict:
    """Every measurement of the claim; see the module docstring. ``profile``: "quick", "full"
    or any :class:`LsrlSettings`."""
    prof, rows = (profile if isinstance(profile, LsrlSettings) else settings_for(SETTINGS, profile)), []
    with checks.single_thread():
        for name, lp in library(programs).items():
            cs = checks.cases(lp, lp.max_exhaustive_len(), prof.random_len, prof.n_random, prof.lengths,
                              noise=prof.noise if name in GATE_PROGRAMS else 0.0, seed=seed)
            rows += [_row(name, lp, t, prof, cs, seed) for t in targets]
    gates = {f"{r['program']}/{r['target']}": r["error_vs_length_noise"] for r in rows
             if r["supported"] and r.get("error_vs_length_noise")}
    return {"profile": profile if isinstance(profile, str) else "custom", "tolerance": TOLERANCE, "lengths": list(prof.lengths), "rows": rows,
            "noise": prof.noise, "gate_stability": gates}


def verdict(study: dict) -> tuple[dict, bool]:
    """The claim's measured summary and whether it holds.

    It holds when every program compiles to at least one target, every compiled pair is within
    the tolerance on all strings up to the exhaustive length and on the random strings, the chain
    agrees exactly with the interpreter (symbolic), and so do the exported weights of the exact
    targets (linear, elman, hawk).
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
        good = r["error"] <= tol and exact
        ok &= good
        tag = "exact" if r["symbolic_model"] else f"err {r['error']:.1e}"
        table.setdefault(r["program"], {})[r["target"]] = f"{tag}, state {r['state_size']}" + ("" if good else " FAIL")
    ok &= all(any(r["supported"] for r in rs) for rs in by_program.values())
    worst = {}
    for r in study["rows"]:
        if r["supported"]:
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


__all__ = ["GATE_PROGRAMS", "LsrlSettings", "SETTINGS", "TOLERANCE", "measure", "verdict"]
