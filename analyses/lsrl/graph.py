"""The LSRL language: a small typed graph of primitive blocks, built by Python calls.

LSRL (Petrov et al., NeurIPS 2024, arXiv 2406.01424) describes one step of a recurrent model as a
directed acyclic graph; the only memory is in its stateful blocks. The primitives (§3 of the paper)::

    x = Input(1)                          # x_t, a vector of dimension 1
    s = LinState(x, A=1, B=1)             # s_t = A s_{t-1} + B x_t + bias       (the only state)
    y = ReLU(Linear(s, [[1]], [-3]))      # y_t = max(0, s_t - 3)
    prog = Program(x, y)

    Linear(x, A, b)      A x + b                      Concat([x, y])   stacked vectors
    ReLU(x)              max(0, x) elementwise        Multiplicative(x) x[:n] * x[n:] (the gate)
    LinState(x, A, B, bias, init)                     s_t = A s_{t-1} + B x_t + bias, s_0 = init

One block goes beyond the paper: ``ReLUState`` (s_t = ReLU(A s_{t-1} + B x_t + bias)), the Elman
cell. A LinState's transition does not depend on its input, and no finite stack of such linear
recurrences with feedforward ReLUs and gates tracks a group-like automaton (parity, any DFA with a
cycle of odd permutations) at unbounded length (cf. Sarrof et al. 2024, Grazzi et al. 2024); the
DFA simulator of the program library needs the one nonlinear recurrence, and the exporters map it
to the architectures that have one (elman, lstm, gru). ``Affine`` (a sum of linear maps of several
nodes) is the compiler's folded form of Linear over Concat.

Weights are kept exactly, as sympy matrices: pass ints, ``Fraction`` or sympy numbers for exact
programs (a float is taken at its exact binary value). ``x + y``, ``x - y``, ``c * x``, ``x / c``,
``-x`` and ``x[i:j]`` build Linear/Concat blocks. ``Forward(dim)`` is a placeholder bound later
with ``.bind(node)``, so graphs can be wired in any order; a binding that closes a loop is a cycle
and :class:`Program` rejects it. Every error is a ``ValueError`` (``TypeError`` for a non-node
input) that names the node.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Iterable, Optional, Sequence, Union

import sympy

Matrixish = Union[int, float, Fraction, sympy.Basic, Sequence, "sympy.MatrixBase"]


def exact(value) -> sympy.Expr:
    """A number as an exact sympy number (floats at their exact binary value)."""
    if isinstance(value, sympy.Basic):
        return value
    if isinstance(value, bool):
        raise TypeError("a boolean is not a weight")
    if isinstance(value, Fraction):
        return sympy.Rational(value.numerator, value.denominator)
    if isinstance(value, int):
        return sympy.Integer(value)
    if isinstance(value, float):
        return sympy.Rational(value)
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:   # numpy / torch scalars
        return exact(value.item())
    raise TypeError(f"not a number: {value!r}")


def _matrix(value, rows: Optional[int], cols: Optional[int], what: str, node: str,
            scalar_is_identity: bool = True) -> sympy.ImmutableMatrix:
    """``value`` as an exact (rows, cols) matrix; a scalar is c*I (square) or a constant vector."""
    try:
        if hasattr(value, "tolist") and not isinstance(value, sympy.MatrixBase):
            value = value.tolist()                                         # numpy / torch
        if isinstance(value, sympy.MatrixBase):
            M = sympy.ImmutableMatrix(value)
        elif isinstance(value, (list, tuple)):
            if len(value) and isinstance(value[0], (list, tuple)):
                M = sympy.ImmutableMatrix([[exact(v) for v in row] for row in value])
            else:
                M = sympy.ImmutableMatrix([[exact(v)] for v in value])     # a vector: a column
        else:
            c = exact(value)
            if rows is None:
                raise ValueError(f"{node}: the size of {what} cannot be inferred from the scalar {value!r}")
            if cols is None or cols == 1 or not scalar_is_identity:
                M = sympy.ImmutableMatrix.ones(rows, cols or 1) * c
            elif rows != cols:
                raise ValueError(f"{node}: scalar {what} = {value!r} needs a square shape, got {rows}x{cols}")
            else:
                M = sympy.ImmutableMatrix.eye(rows) * c
    except (TypeError, sympy.SympifyError) as e:
        raise ValueError(f"{node}: {what} must hold numbers ({e})") from None
    M = sympy.ImmutableSparseMatrix(M)     # compiled matrices are sparse; keep products cheap
    bad = [v for v in M.todok().values() if not v.is_number or v.is_real is False]
    if bad:
        raise ValueError(f"{node}: {what} must hold real numbers, got {bad[:3]}")
    if (rows is not None and M.rows != rows) or (cols is not None and M.cols != cols):
        want = f"{rows if rows is not None else '?'}x{cols if cols is not None else '?'}"
        raise ValueError(f"{node}: {what} has shape {M.rows}x{M.cols}, expected {want}")
    return M


def _label(kind: str, name: Optional[str], inputs: Sequence["Node"]) -> str:
    if name:
        return name
    inner = ", ".join(i.name for i in inputs[:3]) + (", ..." if len(inputs) > 3 else "")
    return f"{kind}({inner})"


class Node:
    """One block of the graph. ``dim`` is the size of its value; ``inputs`` the blocks it reads."""

    kind = "node"
    stateful = False

    def __init__(self, inputs: Sequence["Node"], dim: int, name: Optional[str]):
        for i in inputs:
            if not isinstance(i, Node):
                raise TypeError(f"{_label(self.kind, name, [])}: inputs must be LSRL nodes, got {type(i).__name__}")
        self.inputs: tuple[Node, ...] = tuple(inputs)
        self.name = _label(self.kind, name, self.inputs)   # a descriptive name until a Program numbers it
        self.named = bool(name)
        if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
            raise ValueError(f"{self.name}: dimension must be a positive integer, got {dim!r}")
        self.dim = dim

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} dim={self.dim}>"

    # -- arithmetic sugar: every operator builds primitive blocks ------------------------------
    def _lin(self, A, b=None) -> "Linear":
        return Linear(self, A, b)

    def __add__(self, other):
        if isinstance(other, Node):
            _same_dim(self, other, "+")
            return Linear(Concat([self, other]), sympy.ImmutableSparseMatrix.hstack(_eye(self.dim), _eye(self.dim)))
        return self._lin(_eye(self.dim), _matrix(other, self.dim, 1, "the added constant", self.name))

    __radd__ = __add__

    def __neg__(self):
        return self._lin(-_eye(self.dim))

    def __sub__(self, other):
        if isinstance(other, Node):
            _same_dim(self, other, "-")
            return Linear(Concat([self, other]), sympy.ImmutableSparseMatrix.hstack(_eye(self.dim), -_eye(self.dim)))
        return self + (-_matrix(other, self.dim, 1, "the subtracted constant", self.name))

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, c):
        if isinstance(c, Node):
            raise TypeError(f"{self.name}: '*' scales by a number; multiply two nodes with Multiplicative(Concat([a, b]))")
        return self._lin(_eye(self.dim) * exact(c))

    __rmul__ = __mul__

    def __truediv__(self, c):
        c = exact(c)
        if c == 0:
            raise ValueError(f"{self.name}: division by zero")
        return self * (1 / c)

    def __getitem__(self, key):
        if isinstance(key, int):
            key = slice(key, key + 1) if key != -1 else slice(key, None)
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise ValueError(f"{self.name}: index with an int or a contiguous slice, got {key!r}")
        idx = list(range(self.dim))[key]
        if not idx:
            raise ValueError(f"{self.name}: slice {key} is empty for dimension {self.dim}")
        return self._lin(_eye(self.dim)[idx, :])


def _eye(n: int) -> sympy.ImmutableSparseMatrix:
    return sympy.ImmutableSparseMatrix.eye(n)


def _same_dim(a: Node, b: Node, op: str) -> None:
    if a.dim != b.dim:
        raise ValueError(f"'{a.name}' {op} '{b.name}': dimensions differ ({a.dim} vs {b.dim})")


class Input(Node):
    """The program's input x_t, a vector of ``dim`` numbers (a one-hot token for token tasks).

    ``low`` / ``high`` (numbers, one for all coordinates) bound the inputs the program is meant for
    (bits: ``low=0, high=1``); exporters use the bounds to spend fewer units (elman passes a
    value it can prove non-negative with one ReLU instead of two). ``nonneg=True`` is ``low=0``.
    ``grid`` (a positive number) promises every input is a multiple of it (1 for bits, tokens and
    integers); the compiler's analysis uses it to prove comparisons exactly 0 or 1.
    The interpreter checks none of these; they bound what the compile-time error bound covers.
    """

    kind = "input"

    def __init__(self, dim: int, name: Optional[str] = "x", nonneg: bool = False, low=None, high=None,
                 grid=None):
        super().__init__([], dim, name)
        self.grid = None if grid is None else exact(grid)
        if self.grid is not None and not (self.grid.is_Rational and self.grid > 0):
            raise ValueError(f"{self.name}: grid must be a positive rational number, got {grid!r}")
        self.low = exact(0) if nonneg and low is None else None if low is None else exact(low)
        self.high = None if high is None else exact(high)
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"{self.name}: low {low} > high {high}")

    @property
    def nonneg(self) -> bool:
        return self.low is not None and self.low >= 0


class Linear(Node):
    """y = A x + b; A (out, in), b (out,) or None."""

    kind = "linear"

    def __init__(self, x: Node, A: Matrixish, b: Optional[Matrixish] = None, name: Optional[str] = None):
        super().__init__([x], 1, name)
        self.A = _matrix(A, None, x.dim, "A", self.name) if not _is_scalar(A) else _matrix(A, x.dim, x.dim, "A", self.name)
        self.dim = self.A.rows
        self.b = _matrix(0 if b is None else b, self.dim, 1, "b", self.name)


class Affine(Node):
    """y = sum_k A_k x_k + b: Linear over a Concat, the compiler's folded form."""

    kind = "affine"

    def __init__(self, xs: Sequence[Node], As: Sequence[Matrixish], b: Optional[Matrixish] = None,
                 name: Optional[str] = None):
        super().__init__(list(xs), 1, name)
        if not xs:
            raise ValueError(f"{self.name}: Affine needs at least one input")
        if len(xs) != len(As):
            raise ValueError(f"{self.name}: {len(xs)} inputs but {len(As)} matrices")
        mats = [_matrix(A, None, x.dim, f"A[{k}]", self.name) for k, (x, A) in enumerate(zip(xs, As))]
        rows = {M.rows for M in mats}
        if len(rows) != 1:
            raise ValueError(f"{self.name}: the matrices have different numbers of rows {sorted(rows)}")
        self.As = tuple(mats)
        self.dim = rows.pop()
        self.b = _matrix(0 if b is None else b, self.dim, 1, "b", self.name)


class Concat(Node):
    """The inputs stacked into one vector."""

    kind = "concat"

    def __init__(self, xs: Sequence[Node], name: Optional[str] = None):
        xs = list(xs)
        if not xs:
            raise ValueError(f"{name or 'concat'}: Concat needs at least one input")
        super().__init__(xs, sum(x.dim if isinstance(x, Node) else 1 for x in xs), name)


class ReLU(Node):
    """max(0, x), elementwise."""

    kind = "relu"

    def __init__(self, x: Node, name: Optional[str] = None):
        super().__init__([x], x.dim if isinstance(x, Node) else 1, name)


class Indicator(Node):
    """clamp(x, 0, 1) for an x promised to lie in (-inf, 0] or [1, inf): the 0/1 switch [x >= 1].

    Not written by hand: the compiler puts it in place of a step whose input it proves stays off
    (0, 1) (see :mod:`analyses.lsrl.harden`), so that lstm and gru realise the switch with one
    saturated gate instead of two ReLUs carrying scale-sized values. The interpreter computes
    relu(x) - relu(x - 1), which is the clamp for every x.
    """

    kind = "ind"

    def __init__(self, x: Node, name: Optional[str] = None):
        super().__init__([x], x.dim if isinstance(x, Node) else 1, name)


class Multiplicative(Node):
    """The gate: x[:n] * x[n:] elementwise, for x of dimension 2n.

    ``binary_gate=True`` promises that the first half is 0 or 1 (a condition); the interpreter
    checks the promise, and the LSTM and GRU exporters, which realise the product with a
    saturated sigmoid gate, accept only such products.
    """

    kind = "mul"

    def __init__(self, x: Node, name: Optional[str] = None, binary_gate: bool = False):
        super().__init__([x], 1, name)
        if x.dim % 2:
            raise ValueError(f"{self.name}: Multiplicative needs an even input dimension, got {x.dim} from '{x.name}'")
        self.dim = x.dim // 2
        self.binary_gate = bool(binary_gate)


class LinState(Node):
    """s_t = A s_{t-1} + B x_t + bias with s_0 = init: the one stateful block of LSRL.

    ``A`` (n, n), ``B`` (n, x.dim), ``bias`` and ``init`` (n,). Scalars broadcast: ``A=1, B=1``
    on a 1-dimensional x is a counter. The block outputs s_t, the state after reading x_t.
    """

    kind = "linstate"
    stateful = True

    def __init__(self, x: Node, A: Matrixish, B: Matrixish, bias: Optional[Matrixish] = None,
                 init: Optional[Matrixish] = None, name: Optional[str] = None):
        super().__init__([x], 1, name)
        n = _state_size(A, B, bias, init, x.dim)
        self.A = _matrix(A, n, n, "A", self.name)
        self.B = _matrix(B, n, x.dim, "B", self.name)
        self.bias = _matrix(0 if bias is None else bias, n, 1, "bias", self.name)
        self.init = _matrix(0 if init is None else init, n, 1, "init", self.name)
        self.dim = n


class ReLUState(LinState):
    """s_t = ReLU(A s_{t-1} + B x_t + bias), s_0 = init: the Elman cell (beyond the paper; see above).

    ``binary=True`` promises every s_t is 0 or 1 with integer pre-activations (a one-hot automaton
    state); the interpreter checks it, and the GRU exporter needs it.
    """

    kind = "relustate"

    def __init__(self, x: Node, A: Matrixish, B: Matrixish, bias: Optional[Matrixish] = None,
                 init: Optional[Matrixish] = None, name: Optional[str] = None, binary: bool = False):
        super().__init__(x, A, B, bias, init, name)
        self.binary = bool(binary)


class Forward(Node):
    """A placeholder of dimension ``dim``, bound to a node later; programs see through it."""

    kind = "forward"

    def __init__(self, dim: int, name: Optional[str] = None):
        super().__init__([], dim, name or "forward")
        self.target: Optional[Node] = None

    def bind(self, node: Node) -> Node:
        if not isinstance(node, Node):
            raise TypeError(f"{self.name}: bind needs an LSRL node, got {type(node).__name__}")
        if node.dim != self.dim:
            raise ValueError(f"{self.name}: bound to '{node.name}' of dimension {node.dim}, expected {self.dim}")
        self.target = node
        self.inputs = (node,)
        return node


def _is_scalar(v) -> bool:
    if isinstance(v, (list, tuple, sympy.MatrixBase)):
        return False
    return getattr(v, "ndim", 0) == 0


def _state_size(A, B, bias, init, d_in: int) -> int:
    """The state dimension n: rows of the first non-scalar of A, B, bias, init; else x's dimension."""
    for what, v in (("A", A), ("B", B), ("bias", bias), ("init", init)):
        if v is not None and not _is_scalar(v):
            return _matrix(v, None, None, what, "LinState").rows
    return d_in


def resolve(node: Node) -> Node:
    """The node a chain of bound Forwards stands for; unbound -> ValueError naming it."""
    seen = set()
    while isinstance(node, Forward):
        if node.target is None:
            raise ValueError(f"{node.name}: Forward placeholder is never bound")
        if id(node) in seen:
            raise ValueError(f"{node.name}: cycle of Forward placeholders")
        seen.add(id(node))
        node = node.target
    return node


def sources(node: Node) -> tuple[Node, ...]:
    """The inputs of ``node`` with Forwards resolved."""
    return tuple(resolve(i) for i in node.inputs)


def toposort(outputs: Iterable[Node]) -> list[Node]:
    """Every node the outputs depend on, inputs first; a cycle -> ValueError naming a node on it."""
    order, state = [], {}                     # id -> 1 visiting, 2 done
    for root in outputs:
        stack = [(resolve(root), False)]
        while stack:
            node, done = stack.pop()
            key = id(node)
            if done:
                state[key] = 2
                order.append(node)
                continue
            if state.get(key) == 2:
                continue
            if state.get(key) == 1:
                continue
            state[key] = 1
            stack.append((node, True))
            for s in sources(node):
                if state.get(id(s)) == 1:
                    raise ValueError(f"cycle: '{s.name}' depends on itself (through '{node.name}')")
                if state.get(id(s)) != 2:
                    stack.append((s, False))
    return order


__all__ = ["Affine", "Concat", "Forward", "Indicator", "Input", "LinState", "Linear", "Multiplicative", "Node", "ReLU",
           "ReLUState", "exact", "resolve", "sources", "toposort"]
