"""A program (one input, one output vector) and its reference interpreter.

    prog = Program(x, {"ones": c, "more": m})      # outputs are concatenated, labelled by name
    y = prog.run(inputs)                            # (B, T, d_out), torch float64
    y = prog.run(inputs, backend="symbolic")        # object array of exact numbers

The interpreter is the semantics everything else is checked against: it walks the graph in
topological order once per step, keeping the state of every LinState / ReLUState, exactly as the
paper's ``ForEach`` does. It also checks the promises blocks make (a binary gate is 0 or 1, a
binary ReLUState stays one-hot), so a program that breaks one fails loudly here rather than
silently on an exporter that relies on it.
"""
from __future__ import annotations

from typing import Mapping, Sequence, Union

from analyses.lsrl import graph as g
from analyses.lsrl.backends import backend as make_backend

Outputs = Union[g.Node, Sequence[g.Node], Mapping[str, g.Node]]


def _gather(out: Outputs) -> tuple[g.Node, list[str]]:
    """One output node and a label per output coordinate."""
    if isinstance(out, g.Node):
        node = g.resolve(out)
        names = [node.name] if node.dim == 1 else [f"{node.name}[{i}]" for i in range(node.dim)]
        return out, names
    items = list(out.items()) if isinstance(out, Mapping) else [(None, o) for o in out]
    if not items:
        raise ValueError("a program needs at least one output")
    labels = []
    for key, node in items:
        if not isinstance(node, g.Node):
            raise TypeError(f"output {key or ''} must be an LSRL node, got {type(node).__name__}")
        name = key or g.resolve(node).name
        labels += [name] if node.dim == 1 else [f"{name}[{i}]" for i in range(node.dim)]
    nodes = [n for _, n in items]
    return (nodes[0] if len(nodes) == 1 else g.Concat(nodes, name="output")), labels


class Program:
    """A validated LSRL program: ``inputs`` the Input node, ``output`` the output node.

    Attributes
    ----------
    nodes : list of every node the output depends on, in topological order (Forwards resolved)
    output_labels : list[str], one per output coordinate
    d_input, d_output : int
    """

    def __init__(self, inputs: g.Node, outputs: Outputs, name: str = "program"):
        if not isinstance(inputs, g.Input):
            raise TypeError(f"{name}: the first argument must be the program's Input node, got {type(inputs).__name__}")
        self.name = name
        self.input = inputs
        self.output, self.output_labels = _gather(outputs)
        self.nodes = g.toposort([self.output])
        for node in self.nodes:
            if isinstance(node, g.Input) and node is not inputs:
                raise ValueError(f"{name}: node '{node.name}' is a second Input; a program has exactly one")
        self._unique_names()
        self.output = g.resolve(self.output)
        self.d_input, self.d_output = inputs.dim, self.output.dim

    def _unique_names(self) -> None:
        """Unnamed blocks become kind + number (``relu3``); a repeated name gets ``#2``, ``#3``."""
        counts: dict[str, int] = {}
        for node in self.nodes:
            if not node.named:
                counts[node.kind] = counts.get(node.kind, 0) + 1
                node.name, node.named = f"{node.kind}{counts[node.kind]}", True
        seen: dict[str, int] = {}
        for node in self.nodes:
            if node.name in seen:
                seen[node.name] += 1
                node.name = f"{node.name}#{seen[node.name]}"
            seen.setdefault(node.name, 1)

    @property
    def variables(self) -> dict[str, g.Node]:
        """The nodes by name."""
        return {n.name: n for n in self.nodes}

    def count(self) -> dict[str, int]:
        """How many blocks of each kind the program has."""
        out: dict[str, int] = {}
        for n in self.nodes:
            out[n.kind] = out.get(n.kind, 0) + 1
        return out

    def state_size(self) -> int:
        """Numbers carried from step to step: the sum of the stateful blocks' dimensions."""
        return sum(n.dim for n in self.nodes if n.stateful)

    def parameter_count(self) -> int:
        """Weights of the program's blocks, counted as the official ``ForEach.parameter_count`` does:
        every entry of A and b of a Linear (and of an Affine's matrices), of A, B and bias of a
        LinState / ReLUState (not its initial state); Concat, ReLU and Multiplicative have none.
        (Saving and loading: :mod:`analyses.lsrl.serial`.)"""
        count = 0
        for n in self.nodes:
            if isinstance(n, g.Linear):
                count += n.A.rows * n.A.cols + n.b.rows
            elif isinstance(n, g.Affine):
                count += sum(A.rows * A.cols for A in n.As) + n.b.rows
            elif isinstance(n, g.LinState):
                count += n.A.rows * n.A.cols + n.B.rows * n.B.cols + n.bias.rows
        return count

    def interpreter(self, backend: str = "numeric", check: bool = True, **kw) -> "Interpreter":
        return Interpreter(self, backend, check=check, **kw)

    def run(self, inputs, backend: str = "numeric", trace: bool = False, check: bool = True):
        """Outputs (B, T, d_output) for inputs (B, T, d_input); with ``trace`` also every node's
        trajectory as {name: (B, T, dim)}."""
        return self.interpreter(backend, check=check).run(inputs, trace=trace)

    def __repr__(self) -> str:
        return f"<Program {self.name!r}: {self.d_input} -> {self.d_output}, {len(self.nodes)} blocks>"


class Interpreter:
    """Step-by-step evaluation of a program in one backend.

    ``initial(B)`` gives the state before the first input, ``step(state, x_t)`` the next state and
    the output (B, d_output); ``run`` loops over time. The state is a dict {node: (B, dim)}.
    """

    def __init__(self, program: Program, backend: str = "numeric", check: bool = True, **kw):
        self.program, self.check = program, check
        self.be = make_backend(backend, **kw)

    def initial(self, B: int) -> dict:
        return {n: self.be.const(n.init, B) for n in self.program.nodes if n.stateful}

    def repeat(self, state: dict, k: int) -> dict:
        return {n: self.be.repeat(v, k) for n, v in state.items()}

    def step(self, state: dict, x, record: bool = False):
        be, vals, new = self.be, {}, {}
        for n in self.program.nodes:
            ins = [vals[s] for s in g.sources(n)]
            if isinstance(n, g.Input):
                v = x
            elif isinstance(n, g.Linear):
                v = be.affine(ins[0], n.A, n.b)
            elif isinstance(n, g.Affine):
                v = be.affine(ins[0], n.As[0], n.b)
                for i, A in zip(ins[1:], n.As[1:]):
                    v = v + be.affine(i, A)
            elif isinstance(n, g.Concat):
                v = be.cat(ins)
            elif isinstance(n, g.ReLU):
                v = be.relu(ins[0])
            elif isinstance(n, g.Indicator):
                v = be.relu(ins[0]) - be.relu(ins[0] - 1)
            elif isinstance(n, g.Multiplicative):
                gate, val = ins[0][:, :n.dim], ins[0][:, n.dim:]
                if self.check and n.binary_gate and not be.is_binary(gate):
                    raise ValueError(f"{n.name}: binary_gate promised, but the gate took values other than 0 and 1")
                v = be.mul(gate, val)
            elif isinstance(n, g.LinState):                      # and ReLUState
                v = be.affine(state[n], n.A) + be.affine(ins[0], n.B, n.bias)
                if isinstance(n, g.ReLUState):
                    v = be.relu(v)
                    if self.check and n.binary and not be.is_binary(v):
                        raise ValueError(f"{n.name}: binary promised, but the state took values other than 0 and 1")
                new[n] = v
            elif isinstance(n, g.Forward):
                v = ins[0]
            else:
                raise ValueError(f"{n.name}: unknown block kind {type(n).__name__}")
            vals[n] = v
        out = vals[self.program.output]
        return (new, out, vals) if record else (new, out)

    def run(self, inputs, trace: bool = False):
        be = self.be
        x = be.asarray(inputs)
        if x.ndim != 3 or x.shape[-1] != self.program.d_input:
            raise ValueError(f"{self.program.name}: inputs must have shape (B, T, {self.program.d_input}), "
                             f"got {tuple(x.shape)}")
        state = self.initial(x.shape[0])
        outs, traj = [], {n.name: [] for n in self.program.nodes} if trace else None
        for t in range(x.shape[1]):
            state, y, vals = self.step(state, x[:, t], record=True)
            outs.append(y)
            if trace:
                for n, v in vals.items():
                    traj[n.name].append(v)
        y = be.stack(outs) if outs else x[:, :, :0]
        if not trace:
            return y                                                             # (B, T, d_output)
        return y, {k: be.stack(v) for k, v in traj.items() if v}


__all__ = ["Interpreter", "Program"]
