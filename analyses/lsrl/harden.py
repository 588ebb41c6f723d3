"""Constructions that keep their precision at the official defaults (step scale 1000, big = 1e10).

:func:`harden` rewrites a program before it is compiled, replacing a sugar construction by an
equivalent one wherever :mod:`analyses.lsrl.analysis` proves the two agree on every input the
program declares (its Input's range and grid); it returns the new program and what it changed:

    ifelse_mul, condition provably 0 or 1:
        elman            -> ifelse by ReLUs with big = max|t|, |f| + 1 (an Elman RNN has no gate)
    ifelse by ReLUs, condition provably 0 or 1:
        lstm, gru, hawk  -> ifelse_mul (one gate; a condition's small error no longer meets big)
        elman            -> the same ReLUs with big lowered to max|t|, |f| + 1 (the smallest big
                            that still closes a branch, so the condition's rounding is amplified
                            by a few units, not by 1e10)
    mod_counter by rotation (the official construction), every target:
                         -> the shift counter (the same phases; a permutation of a one-hot state,
                            exact in rationals, where the rotation's error grows and its read-out
                            thresholds dot products)
    step / and_, input provably outside (0, 1/scale) (so the output is 0 or 1):
        lstm, gru        -> an Indicator (one saturated gate, no value scaled by the step scale)
        elman            -> an Indicator as relu(s x) - relu(s x - 1) (exact on the grid, where the
                            official relu(s x) - s relu(x - 1/s) rounds 1/s)

Everything else is copied unchanged. The rewritten program is equivalent in exact arithmetic on
the declared inputs (the tests check it against the interpreter on random ones).
"""
from __future__ import annotations

import math

import sympy

from analyses.lsrl import graph as g
from analyses.lsrl import sugar as S
from analyses.lsrl.analysis import Range
from analyses.lsrl.program import Program

MUL_TARGETS = ("lstm", "gru", "hawk")
SWITCH_TARGETS = ("elman", "lstm", "gru")


def _clone(n: g.Node, ins: list) -> g.Node:
    if isinstance(n, g.Input):
        return n
    if isinstance(n, g.Linear):
        return g.Linear(ins[0], n.A, n.b, name=n.name)
    if isinstance(n, g.Affine):
        return g.Affine(ins, n.As, n.b, name=n.name)
    if isinstance(n, g.Concat):
        return g.Concat(ins, name=n.name)
    if isinstance(n, g.ReLU):
        return g.ReLU(ins[0], name=n.name)
    if isinstance(n, g.Indicator):
        return g.Indicator(ins[0], name=n.name)
    if isinstance(n, g.Multiplicative):
        return g.Multiplicative(ins[0], name=n.name, binary_gate=n.binary_gate)
    if isinstance(n, g.ReLUState):
        return g.ReLUState(ins[0], n.A, n.B, n.bias, n.init, name=n.name, binary=n.binary)
    if isinstance(n, g.LinState):
        return g.LinState(ins[0], n.A, n.B, n.bias, n.init, name=n.name)
    raise ValueError(f"{n.name}: unknown block kind {type(n).__name__}")


def _binary(info: dict, node) -> bool:
    r: Range = info.get(node)
    return r is not None and all(r.binary(i) for i in range(node.dim))


def _switchable(info: dict, z, s) -> bool:
    """Whether s z never lies in (0, 1): z on a grid q with s q >= 1."""
    r: Range = info.get(z)
    s = sympy.sympify(s)
    if r is None or not s.is_Rational:
        return False
    return all(q is not None and (q == 0 or q * sympy.Rational(s) >= 1) for q in r.q)


def harden(program: Program, target: str, info: dict) -> tuple[Program, list[str]]:
    """The program with the constructions above replaced for ``target``; and one line per change."""
    new: dict = {}
    done: list[str] = []
    for n in program.nodes:
        ins = [new[s] for s in g.sources(n)]
        tag_if, tag_clamp = getattr(n, "ifelse", None), getattr(n, "clamp", None)
        out = None
        if tag_if is not None and tag_if["cond"] in new and _binary(info, tag_if["cond"]) and \
                (tag_if.get("step_of") is None or _binary(info, tag_if["step_of"])):
            c = new[tag_if["cond"]]
            t, f = (None if tag_if[k] is None else new.get(tag_if[k], False) for k in ("t", "f"))
            gate = tag_if.get("gate", False)
            if t is not False and f is not False and not (gate and target != "elman"):
                if target in MUL_TARGETS:
                    out = S.ifelse_mul(c, t, f)
                    done.append(f"{n.name}: ifelse by ReLUs -> ifelse_mul (condition '{tag_if['cond'].name}' "
                                "is 0 or 1)")
                elif target == "elman":
                    vals = [info[tag_if[k]].mag.max() for k in ("t", "f") if tag_if[k] is not None]
                    bound = max(vals) if vals else 0.0
                    if math.isfinite(bound) and (gate or bound + 1 < float(tag_if["big"])):
                        L = sympy.Integer(math.ceil(bound) + 1)
                        out = S.ifelse(c, t, f, big=L)
                        done.append(f"{n.name}: " + ("ifelse_mul -> ifelse by ReLUs with" if gate else
                                                     f"ifelse by ReLUs: big {tag_if['big']} ->") +
                                    f" big {L} (|t|, |f| <= {bound:g}; condition '{tag_if['cond'].name}' is 0 or 1)")
        tag_mod = getattr(n, "modcounter", None)
        if out is None and tag_mod is not None and tag_mod["method"] == "rotation" and tag_mod["anchor"] in new:
            out = S.mod_counter(new[tag_mod["anchor"]], tag_mod["n"], "shift", tag_mod["onehot"], name=n.name,
                                first=tag_mod["first"])
            done.append(f"{n.name}: rotation mod counter -> shift counter (the same phases, exact in rationals: "
                        "no irrational weights, no thresholded dot products)")
        if out is None and tag_clamp is not None and target in SWITCH_TARGETS and tag_clamp[0] in new \
                and _switchable(info, tag_clamp[0], tag_clamp[1]):
            z = new[tag_clamp[0]]
            out = g.Indicator(z * tag_clamp[1] if tag_clamp[1] != 1 else z, name=f"{n.name}:switch")
            done.append(f"{n.name}: step of scale {tag_clamp[1]} -> a switch clamp(s x, 0, 1), one saturated gate on lstm / gru (its input is a "
                        f"multiple of {info[tag_clamp[0]].q[0]})")
        if out is None:
            out = _clone(n, ins)
            for key in ("clamp", "ifelse", "modcounter"):
                tag = getattr(n, key, None)
                if tag is None:
                    continue
                if key == "clamp" and tag[0] in new:
                    out.clamp = (new[tag[0]], tag[1])
                elif key == "ifelse" and tag["cond"] in new:
                    out.ifelse = {k: (new.get(v) if isinstance(v, g.Node) else v) for k, v in tag.items()}
                elif key == "modcounter" and tag["anchor"] in new:
                    out.modcounter = dict(tag, anchor=new[tag["anchor"]])
        elif out.dim != n.dim:
            raise AssertionError(f"{n.name}: rewrite changed the dimension")
        new[n] = out
    prog = Program(program.input, new[program.output], name=program.name)
    prog.output_labels = list(program.output_labels)
    return prog, done


__all__ = ["MUL_TARGETS", "SWITCH_TARGETS", "harden"]
