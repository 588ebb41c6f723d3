"""Save and load programs (JSON) and compiled models (JSON + safetensors); nothing is pickled.

    save_program(prog, "maj.json");  prog = load_program("maj.json")     # analyses.lsrl.serial
    c.save("maj_gru");               c = load_compiled("maj_gru")   # maj_gru/{compiled.json, weights.safetensors}

A program is stored block by block in topological order: kind, name, the indices of its inputs,
its exact matrices and flags. Every weight stays exact: a rational as the string "p/q", anything
else (cos(2π/5) of a rotation counter) as a small expression tree over a fixed set of sympy
functions, so loading evaluates nothing from the file. A compiled model is its program, the
options it was compiled with and its weights; loading recompiles the program (for the chain and
the read-outs) and then puts the stored weights in, so a reloaded model gives bit-identical outputs.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import sympy

from analyses.lsrl import graph as g
from analyses.lsrl.program import Program

FORMAT = "probe.lsrl.program/1"
_FUNCS = {"Add": sympy.Add, "Mul": sympy.Mul, "Pow": sympy.Pow, "cos": sympy.cos, "sin": sympy.sin,
          "tan": sympy.tan, "exp": sympy.exp, "log": sympy.log}
_CONSTS = {"pi": sympy.pi, "E": sympy.E}


def expr_to_json(v) -> str | list:
    """An exact number as JSON: "p/q" for a rational, else [function, args...] (see the module docstring)."""
    v = sympy.sympify(v)
    if v.is_Rational:
        return f"{v.p}/{v.q}"
    for name, c in _CONSTS.items():
        if v == c:
            return [name]
    name = type(v).__name__ if not isinstance(v, (sympy.Add, sympy.Mul, sympy.Pow)) else v.func.__name__
    if name not in _FUNCS:
        raise ValueError(f"cannot store the weight {v} (function {name}; storable: rationals, "
                         f"{', '.join(list(_FUNCS) + list(_CONSTS))})")
    return [name] + [expr_to_json(a) for a in v.args]


def expr_from_json(obj) -> sympy.Expr:
    if isinstance(obj, str):
        try:
            f = Fraction(obj)
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"bad exact number {obj!r} (expected 'p/q')") from None
        return sympy.Rational(f.numerator, f.denominator)
    if not isinstance(obj, list) or not obj or not isinstance(obj[0], str):
        raise ValueError(f"bad weight expression {obj!r}")
    if obj[0] in _CONSTS and len(obj) == 1:
        return _CONSTS[obj[0]]
    if obj[0] not in _FUNCS:
        raise ValueError(f"unknown function {obj[0]!r} in a stored weight; valid: {', '.join(_FUNCS)}")
    return _FUNCS[obj[0]](*[expr_from_json(a) for a in obj[1:]])


def _mat(M) -> dict:
    M = sympy.ImmutableSparseMatrix(M)
    return {"shape": [M.rows, M.cols], "entries": [[i, j, expr_to_json(v)] for (i, j), v in sorted(M.todok().items())
                                                    if v != 0]}


def _unmat(d: dict) -> sympy.ImmutableSparseMatrix:
    r, c = d["shape"]
    return sympy.ImmutableSparseMatrix(r, c, {(i, j): expr_from_json(v) for i, j, v in d["entries"]})


def program_to_json(prog: Program) -> dict:
    """The program as a JSON-able dict (exact weights)."""
    index = {n: k for k, n in enumerate(prog.nodes)}
    blocks = []
    for n in prog.nodes:
        b = {"kind": n.kind, "name": n.name, "inputs": [index[s] for s in g.sources(n)], "dim": n.dim}
        if isinstance(n, g.Input):
            b.update(low=None if n.low is None else expr_to_json(n.low),
                     high=None if n.high is None else expr_to_json(n.high),
                     grid=None if n.grid is None else expr_to_json(n.grid))
        elif isinstance(n, g.Linear):
            b.update(A=_mat(n.A), b=_mat(n.b))
        elif isinstance(n, g.Affine):
            b.update(As=[_mat(A) for A in n.As], b=_mat(n.b))
        elif isinstance(n, g.Multiplicative):
            b.update(binary_gate=n.binary_gate)
        elif isinstance(n, g.LinState):
            b.update(A=_mat(n.A), B=_mat(n.B), bias=_mat(n.bias), init=_mat(n.init))
            if isinstance(n, g.ReLUState):
                b.update(binary=n.binary)
        elif not isinstance(n, (g.Concat, g.ReLU, g.Indicator)):
            raise TypeError(f"{n.name}: cannot store block kind {type(n).__name__}")
        clamp, ifelse = getattr(n, "clamp", None), getattr(n, "ifelse", None)
        if clamp is not None and clamp[0] in index:
            b["clamp"] = [index[g.resolve(clamp[0])], expr_to_json(clamp[1])]
        if ifelse is not None and all(v is None or g.resolve(v) in index for v in ifelse.values()
                                      if isinstance(v, g.Node) or v is None):
            b["ifelse"] = {k: (v if k == "gate" else None if v is None else expr_to_json(v) if k == "big"
                               else index[g.resolve(v)]) for k, v in ifelse.items()}
        mod = getattr(n, "modcounter", None)
        if mod is not None and g.resolve(mod["anchor"]) in index:
            b["modcounter"] = dict(mod, anchor=index[g.resolve(mod["anchor"])])
        blocks.append(b)
    return {"format": FORMAT, "name": prog.name, "blocks": blocks, "output": index[prog.output],
            "output_labels": list(prog.output_labels)}


def program_from_json(d: dict) -> Program:
    """The program stored by :func:`program_to_json`."""
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise ValueError(f"not an LSRL program (format {d.get('format') if isinstance(d, dict) else d!r}; "
                         f"expected {FORMAT})")
    built: list[g.Node] = []
    for k, b in enumerate(d["blocks"]):
        ins = [built[i] for i in b["inputs"]]
        if any(i >= k for i in b["inputs"]):
            raise ValueError(f"block {b['name']!r} reads a later block: the stored order is not topological")
        kind, name = b["kind"], b["name"]
        if kind == "input":
            low, high = (None if b[k_] is None else expr_from_json(b[k_]) for k_ in ("low", "high"))
            grid = None if b.get("grid") is None else expr_from_json(b["grid"])
            node = g.Input(b["dim"], name=name, low=low, high=high, grid=grid)
        elif kind == "linear":
            node = g.Linear(ins[0], _unmat(b["A"]), _unmat(b["b"]), name=name)
        elif kind == "affine":
            node = g.Affine(ins, [_unmat(A) for A in b["As"]], _unmat(b["b"]), name=name)
        elif kind == "concat":
            node = g.Concat(ins, name=name)
        elif kind == "relu":
            node = g.ReLU(ins[0], name=name)
        elif kind == "ind":
            node = g.Indicator(ins[0], name=name)
        elif kind == "mul":
            node = g.Multiplicative(ins[0], name=name, binary_gate=b["binary_gate"])
        elif kind in ("linstate", "relustate"):
            args = (ins[0], _unmat(b["A"]), _unmat(b["B"]), _unmat(b["bias"]), _unmat(b["init"]))
            node = (g.ReLUState(*args, name=name, binary=b["binary"]) if kind == "relustate"
                    else g.LinState(*args, name=name))
        else:
            raise ValueError(f"unknown block kind {kind!r} in a stored program; valid: input, linear, affine, "
                             "concat, relu, ind, mul, linstate, relustate")
        if "clamp" in b:
            node.clamp = (built[b["clamp"][0]], expr_from_json(b["clamp"][1]))
        if "ifelse" in b:
            node.ifelse = {k: (v if k == "gate" else None if v is None else expr_from_json(v) if k == "big"
                               else built[v]) for k, v in b["ifelse"].items()}
        if "modcounter" in b:
            node.modcounter = dict(b["modcounter"], anchor=built[b["modcounter"]["anchor"]])
        built.append(node)
    inputs = [n for n in built if isinstance(n, g.Input)]
    if len(inputs) != 1:
        raise ValueError(f"a stored program needs exactly one input block, found {len(inputs)}")
    prog = Program(inputs[0], built[d["output"]], name=d["name"])
    prog.output_labels = list(d["output_labels"])
    return prog


def save_program(prog: Program, path) -> Path:
    """Write ``prog`` as JSON to ``path``."""
    from probe._io import write_json
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, program_to_json(prog))
    return path


def load_program(path) -> Program:
    """Read a program written by :func:`save_program`."""
    from probe._io import read_json
    return program_from_json(read_json(path))


def parameter_count(prog: Program) -> int:
    """The official ``ForEach.parameter_count`` (see :meth:`Program.parameter_count`)."""
    return prog.parameter_count()


__all__ = ["expr_from_json", "expr_to_json", "load_program", "parameter_count", "program_from_json",
           "program_to_json", "save_program"]
