"""Graph-to-graph compiler passes; each returns a new :class:`Program` with the same outputs.

1. :func:`fold_linear` fuses every run of Linear / Concat / Affine blocks into one ``Affine`` over
   the blocks that compute something (Input, ReLU, Multiplicative, LinState, ReLUState): after it,
   no linear map feeds another.
2. :func:`absorb_linear` moves the Affine in front of a LinState / ReLUState into its B and bias
   (s = A s + B (M x + c) + bias = A s + (B M) x + (B c + bias)); the state then reads a Concat of
   its sources directly.

:func:`simplify` runs both, as the paper's ``fold_same_type`` does. Turning the result into one
chain of layers is :func:`analyses.lsrl.chain.linearise`. Everything works on exact sympy
matrices, so the passes change no number.
"""
from __future__ import annotations

import sympy

from analyses.lsrl import graph as g
from analyses.lsrl.program import Program

OPS = (g.Input, g.ReLU, g.Indicator, g.Multiplicative, g.LinState)   # LinState covers ReLUState


def is_op(node: g.Node) -> bool:
    """Whether a block computes something (as opposed to a linear map or a Concat)."""
    return isinstance(node, OPS)


def _zeros(r: int, c: int):
    return sympy.ImmutableSparseMatrix.zeros(r, c)


def affine_expr(node: g.Node, memo: dict) -> tuple[dict, sympy.ImmutableSparseMatrix]:
    """``node`` as sum_k M_k u_k + c over op blocks u_k: ({u_k: M_k (dim, u_k.dim)}, c (dim, 1))."""
    node = g.resolve(node)
    if node in memo:
        return memo[node]
    if is_op(node):
        out = ({node: sympy.ImmutableSparseMatrix.eye(node.dim)}, _zeros(node.dim, 1))
    elif isinstance(node, g.Linear):
        terms, c = affine_expr(node.inputs[0], memo)
        out = ({u: node.A * M for u, M in terms.items()}, node.A * c + node.b)
    elif isinstance(node, g.Affine):
        terms, c = {}, node.b
        for x, A in zip(node.inputs, node.As):
            t, cx = affine_expr(x, memo)
            for u, M in t.items():
                terms[u] = terms[u] + A * M if u in terms else A * M
            c = c + A * cx
        out = (terms, c)
    elif isinstance(node, g.Concat):
        terms, cs, row = {}, [], 0
        for x in g.sources(node):
            t, cx = affine_expr(x, memo)
            for u, M in t.items():
                block = sympy.ImmutableSparseMatrix(node.dim, u.dim,
                                                    {(i + row, j): v for (i, j), v in M.todok().items()})
                terms[u] = terms[u] + block if u in terms else block
            cs.append(cx)
            row += x.dim
        out = (terms, sympy.ImmutableSparseMatrix.vstack(*cs))
    else:
        raise ValueError(f"{node.name}: unknown block kind {type(node).__name__}")
    terms = {u: sympy.ImmutableSparseMatrix(M) for u, M in out[0].items()}
    memo[node] = (terms, sympy.ImmutableSparseMatrix(out[1]))
    return memo[node]


def _as_affine(terms: dict, c, dim: int, name: str) -> g.Node:
    """An Affine block for sum M_k u_k + c, or u itself when the expression is just u."""
    if len(terms) == 1 and not any(c.todok().values()):
        (u, M), = terms.items()
        if M.shape == (u.dim, u.dim) and M == sympy.ImmutableSparseMatrix.eye(u.dim):
            return u
    if not terms:
        raise ValueError(f"{name}: reads no block at all (a constant with no input); anchor it with sugar.const(x, ...)")
    return g.Affine(list(terms), list(terms.values()), c, name=f"pre({name})")


def _copy(op: g.Node, new_input: g.Node | None) -> g.Node:
    if isinstance(op, g.Input):
        return op
    if isinstance(op, g.ReLUState):
        return g.ReLUState(new_input, op.A, op.B, op.bias, op.init, name=op.name, binary=op.binary)
    if isinstance(op, g.LinState):
        return g.LinState(new_input, op.A, op.B, op.bias, op.init, name=op.name)
    if isinstance(op, g.ReLU):
        return g.ReLU(new_input, name=op.name)
    if isinstance(op, g.Indicator):
        return g.Indicator(new_input, name=op.name)
    if isinstance(op, g.Multiplicative):
        return g.Multiplicative(new_input, name=op.name, binary_gate=op.binary_gate)
    raise ValueError(f"{op.name}: not an op block")


def _folded_input(op: g.Node, new: dict, memo: dict) -> g.Node:
    terms, c = affine_expr(op.inputs[0], memo)
    return _as_affine({new[u]: M for u, M in terms.items()}, c, op.inputs[0].dim, op.name)


def _rebuild(program: Program, make_op) -> Program:
    """A copy of ``program`` in which every op block is ``make_op(op, new_ops, memo)``."""
    memo, new = {}, {}
    for node in program.nodes:
        if isinstance(node, g.Input):
            new[node] = node
        elif is_op(node):
            new[node] = make_op(node, new, memo)
    terms, c = affine_expr(program.output, memo)
    out = _as_affine({new[u]: M for u, M in terms.items()}, c, program.output.dim, "output")
    prog = Program(program.input, out, name=program.name)
    prog.output_labels = list(program.output_labels)
    return prog


def fold_linear(program: Program) -> Program:
    """Fuse consecutive linear maps: every op block reads one Affine of op blocks (or one op block)."""
    return _rebuild(program, lambda op, new, memo: _copy(op, _folded_input(op, new, memo)))


def _absorbed(op: g.Node, new: dict, memo: dict) -> g.Node:
    if not isinstance(op, g.LinState):
        return _copy(op, _folded_input(op, new, memo))
    terms, c = affine_expr(op.inputs[0], memo)
    if not terms:
        raise ValueError(f"{op.name}: reads no block at all; anchor its input with sugar.const(x, ...)")
    srcs = list(terms)
    B = sympy.ImmutableSparseMatrix.hstack(*[op.B * terms[u] for u in srcs])
    x = new[srcs[0]] if len(srcs) == 1 else g.Concat([new[u] for u in srcs], name=f"in({op.name})")
    if isinstance(op, g.ReLUState):
        return g.ReLUState(x, op.A, B, op.bias + op.B * c, op.init, name=op.name, binary=op.binary)
    return g.LinState(x, op.A, B, op.bias + op.B * c, op.init, name=op.name)


def absorb_linear(program: Program) -> Program:
    """Absorb the linear map in front of each LinState / ReLUState into its B and bias."""
    return _rebuild(program, _absorbed)


def simplify(program: Program) -> Program:
    """fold_linear, then absorb_linear."""
    return absorb_linear(fold_linear(program))


__all__ = ["absorb_linear", "affine_expr", "fold_linear", "is_op", "simplify"]
