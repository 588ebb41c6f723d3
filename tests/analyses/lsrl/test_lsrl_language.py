"""The primitives against their defining equations, the interpreter's two backends, and bad input."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import sympy
import torch

from analyses.lsrl.backends import exact_equal
from analyses.lsrl.graph import (Affine, Concat, Forward, Input, LinState, Linear, Multiplicative, ReLU, ReLUState,
                                 toposort)
from analyses.lsrl.program import Program
from lsrl_helpers import as_fraction, random_inputs, run_both  # noqa: F401

X = random_inputs(0, 4, 7)                                        # (B, T, 3)
A2 = [[1, -2, 0], [Fraction(1, 2), 0, 3]]


def _check(prog, expected):
    num, sym = run_both(prog, X)
    np.testing.assert_allclose(num, expected, atol=1e-12)
    assert exact_equal(sym, as_fraction(expected))


def test_linear_is_A_x_plus_b():
    x = Input(3)
    A, b = np.array(A2, dtype=float), np.array([1.0, -1.0])
    _check(Program(x, Linear(x, A2, [1, -1])), X @ A.T + b)


def test_concat_stacks_and_affine_sums_linear_maps():
    x = Input(3)
    y = Linear(x, A2)
    _check(Program(x, Concat([x, y])), np.concatenate([X, X @ np.array(A2, dtype=float).T], -1))
    _check(Program(x, Affine([x, y], [np.eye(3)[:2], 2 * np.eye(2)], [1, 1])),
           X[..., :2] + 2 * X @ np.array(A2, dtype=float).T + 1)


def test_relu_and_multiplicative_gate():
    x = Input(3)
    _check(Program(x, ReLU(x)), np.maximum(X, 0))
    _check(Program(x, Multiplicative(Concat([x[0:2], x[1:3]]))), X[..., 0:2] * X[..., 1:3])


def test_linstate_is_the_linear_recurrence_from_its_initial_state():
    x = Input(3)
    A, B, bias, init = [[Fraction(1, 2), 1], [0, -1]], A2, [1, 0], [2, -1]
    s = LinState(x, A, B, bias, init)
    An, Bn = np.array(A, dtype=float), np.array(B, dtype=float)
    ref, h = [], np.tile(np.array([2.0, -1.0]), (X.shape[0], 1))
    for t in range(X.shape[1]):
        h = h @ An.T + X[:, t] @ Bn.T + np.array([1.0, 0.0])
        ref.append(h)
    _check(Program(x, s), np.stack(ref, 1))


def test_relustate_is_the_elman_cell():
    x = Input(3)
    A, B = [[0, -1], [1, Fraction(1, 2)]], A2
    s = ReLUState(x, A, B, [0, -1], [1, 0])
    An, Bn = np.array(A, dtype=float), np.array(B, dtype=float)
    ref, h = [], np.tile(np.array([1.0, 0.0]), (X.shape[0], 1))
    for t in range(X.shape[1]):
        h = np.maximum(h @ An.T + X[:, t] @ Bn.T + np.array([0.0, -1.0]), 0)
        ref.append(h)
    _check(Program(x, s), np.stack(ref, 1))


def test_scalar_weights_broadcast_and_a_counter_counts():
    x = Input(1)
    bits = torch.randint(0, 2, (3, 9, 1)).double()
    c = Program(x, LinState(x, A=1, B=1)).run(bits)
    torch.testing.assert_close(c, bits.cumsum(1))


def test_operators_build_linear_blocks():
    x = Input(3)
    a, b = x[0:2], x[1:3]
    _check(Program(x, {"sum": a + b, "diff": a - b, "scaled": 3 * a / 2, "shift": 1 - a, "neg": -b, "last": x[-1]}),
           np.concatenate([X[..., 0:2] + X[..., 1:3], X[..., 0:2] - X[..., 1:3], 1.5 * X[..., 0:2], 1 - X[..., 0:2],
                           -X[..., 1:3], X[..., 2:3]], -1))


def test_outputs_are_labelled_and_trace_records_every_block():
    x = Input(1)
    c = LinState(x, 1, 1, name="ones")
    prog = Program(x, {"ones": c, "pair": Concat([c, x])})
    assert prog.output_labels == ["ones", "pair[0]", "pair[1]"]
    _, trace = prog.run(torch.ones(2, 4, 1), trace=True)
    assert trace["ones"].shape == (2, 4, 1) and "x" in trace
    assert prog.state_size() == 1 and prog.count()["linstate"] == 1


def test_unnamed_blocks_get_short_unique_names():
    x = Input(1)
    prog = Program(x, ReLU(ReLU(x) + ReLU(x)))
    names = [n.name for n in prog.nodes]
    assert len(set(names)) == len(names) and "relu1" in names


def test_floats_are_taken_at_their_exact_value():
    x = Input(1)
    _, sym = run_both(Program(x, Linear(x, [[0.5]], [0.25])), np.ones((1, 1, 1)))
    assert sym[0, 0, 0] == Fraction(3, 4)


# -- bad input: a clear error naming the block -------------------------------------------------

def test_dimension_error_names_the_block():
    x = Input(3)
    with pytest.raises(ValueError, match="'?proj'?.*A has shape 2x2"):
        Linear(x, [[1, 2], [3, 4]], name="proj")
    with pytest.raises(ValueError, match="state.*B has shape"):
        LinState(x, [[1, 0], [0, 1]], [[1, 2]], name="state")
    with pytest.raises(ValueError, match="dimensions differ"):
        x + Input(2)
    with pytest.raises(ValueError, match="gate.*even input dimension"):
        Multiplicative(x, name="gate")


def test_type_errors_name_the_block():
    x = Input(2)
    with pytest.raises(TypeError, match="lin.*LSRL nodes"):
        Linear("x", [[1]], name="lin")
    with pytest.raises(ValueError, match="w.*real numbers"):
        Linear(x, [[sympy.I, 0]], name="w")
    with pytest.raises(ValueError, match="w2.*numbers"):
        Linear(x, [["a", 1]], name="w2")
    with pytest.raises(TypeError, match="Multiplicative"):
        x * x


def test_a_cycle_is_rejected_naming_a_block_on_it():
    x = Input(1)
    loop = Forward(1, name="loop")
    y = ReLU(loop + x, name="y")
    loop.bind(y)
    with pytest.raises(ValueError, match="cycle.*'y'"):
        Program(x, y)
    with pytest.raises(ValueError, match="cycle"):
        toposort([y])


def test_forward_placeholders_wire_graphs_in_any_order_and_must_be_bound():
    x = Input(1)
    later = Forward(1, name="later")
    y = ReLU(later)
    with pytest.raises(ValueError, match="later.*never bound"):
        Program(x, y)
    later.bind(x - 1)
    out = Program(x, y).run(torch.full((1, 2, 1), 3.0))
    assert out.flatten().tolist() == [2.0, 2.0]
    with pytest.raises(ValueError, match="dimension"):
        Forward(2, name="f").bind(x)


def test_a_second_input_and_broken_promises_are_rejected():
    x, z = Input(1), Input(1, name="z")
    with pytest.raises(ValueError, match="'z' is a second Input"):
        Program(x, x + z)
    m = Multiplicative(Concat([x, x]), name="gated", binary_gate=True)
    with pytest.raises(ValueError, match="gated.*binary_gate"):
        Program(x, m).run(torch.full((1, 1, 1), 0.5))
    s = ReLUState(x, 0, 1, name="onehot", binary=True)
    with pytest.raises(ValueError, match="onehot.*binary"):
        Program(x, s).run(torch.full((1, 1, 1), 2.0), backend="symbolic")


def test_interpreter_checks_input_shape():
    x = Input(2)
    with pytest.raises(ValueError, match=r"\(B, T, 2\)"):
        Program(x, x).run(torch.zeros(1, 3, 1))
