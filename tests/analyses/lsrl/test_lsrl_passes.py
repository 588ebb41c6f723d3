"""Each compiler pass preserves the program's outputs on random inputs (float64 and exactly)."""
from __future__ import annotations

import pytest
import torch

from analyses.lsrl import graph as g
from analyses.lsrl.backends import exact_equal
from analyses.lsrl.chain import ChainEvaluator, linearise, zero_init
from analyses.lsrl.passes import absorb_linear, fold_linear, is_op, simplify
from lsrl_helpers import as_fraction, random_inputs, random_program  # noqa: F401

SEEDS = range(6)


def _same(prog, other_run, T: int = 6):
    x = random_inputs(7, 5, T)
    ref = prog.run(torch.tensor(x))
    torch.testing.assert_close(other_run(torch.tensor(x), "numeric"), ref, atol=1e-9, rtol=1e-9)
    xs = as_fraction(x[:2, :4])
    assert exact_equal(other_run(xs, "symbolic"), prog.run(xs, backend="symbolic"))


@pytest.mark.parametrize("seed", SEEDS)
def test_fold_linear_preserves_outputs_and_leaves_no_linear_chains(seed):
    prog = random_program(seed)
    folded = fold_linear(prog)
    _same(prog, lambda x, be: folded.run(x, backend=be))
    for node in folded.nodes:
        assert not isinstance(node, (g.Linear, g.Concat))
        if isinstance(node, g.Affine):
            assert all(is_op(i) for i in node.inputs)


@pytest.mark.parametrize("seed", SEEDS)
def test_absorb_linear_preserves_outputs_and_states_read_op_blocks(seed):
    prog = random_program(seed)
    absorbed = absorb_linear(fold_linear(prog))
    _same(prog, lambda x, be: absorbed.run(x, backend=be))
    for node in absorbed.nodes:
        if isinstance(node, g.LinState):
            src = node.inputs[0]
            assert is_op(src) or (isinstance(src, g.Concat) and all(is_op(i) for i in src.inputs))
    assert simplify(prog).count() == absorbed.count()


@pytest.mark.parametrize("seed", SEEDS)
def test_linearise_preserves_outputs_and_reads_only_the_previous_stage(seed):
    prog = random_program(seed)
    chain = linearise(prog)
    _same(prog, lambda x, be: chain.run(x, backend=be))
    widths = [chain.d_input] + chain.widths
    for s, d_in in zip(chain.stages, widths):
        assert s.W.shape == (s.n, d_in) and s.A.shape == (s.n, s.n)
    for s in chain.stages:                                     # pass-through units copy one channel
        for r in range(s.n):
            if s.is_pass[r]:
                row = {j: v for (i, j), v in s.W.todok().items() if i == r}
                assert list(row.values()) == [1] and s.b[r, 0] == 0


@pytest.mark.parametrize("seed", SEEDS)
def test_zero_init_preserves_outputs_from_an_all_zero_state(seed):
    prog = random_program(seed)
    chain = zero_init(linearise(prog))
    _same(prog, lambda x, be: chain.run(x, backend=be))
    assert all(not any(s.init.todok().values()) for s in chain.stages)


@pytest.mark.parametrize("seed", SEEDS)
def test_unit_bounds_hold_on_random_inputs(seed):
    chain = linearise(random_program(seed))
    ev = ChainEvaluator(chain)
    x = torch.tensor(random_inputs(3, 16, 8))
    state = ev.initial(16)
    for t in range(x.shape[1]):
        state, _ = ev.step(state, x[:, t])
        for s, y in zip(chain.stages, state):
            lo = torch.tensor([b[0] for b in s.bounds], dtype=torch.float64)
            hi = torch.tensor([b[1] for b in s.bounds], dtype=torch.float64)
            assert bool(((y >= lo - 1e-9) & (y <= hi + 1e-9)).all())


def g_program(x, out):
    from analyses.lsrl.program import Program
    return Program(x, out)


def test_a_counter_compiles_to_one_stage_and_dead_code_is_dropped():
    x = g.Input(1)
    c = g.LinState(x, 1, 1, name="c")
    g.ReLU(c, name="unused")
    chain = linearise(g_program(x, c))
    assert chain.widths == [1] and chain.stages[0].node == ["c"]


def test_a_value_needed_later_is_routed_through_pass_units():
    x = g.Input(1)
    deep = g.ReLU(g.ReLU(g.ReLU(x)))
    chain = linearise(g_program(x, deep + x))
    assert chain.widths == [2, 2, 2]                          # relu_k and x (pass) at every depth
    assert [sum(s.is_pass) for s in chain.stages] == [1, 1, 1]
    torch.testing.assert_close(chain.run(torch.tensor([[[2.0], [-1.0]]])), torch.tensor([[[4.0], [-1.0]]],
                                                                                          dtype=torch.float64))


def test_affine_and_constant_programs_still_get_one_layer():
    from analyses.lsrl import sugar as S
    from analyses.lsrl.compile import TARGETS, compile
    x = g.Input(2, low=-2, high=2)
    xs = torch.tensor(random_inputs(1, 3, 5, d=2))
    for out in (2 * x + 1, S.const(x, [3])):
        prog = g_program(x, out)
        for target in TARGETS:
            c = compile(prog, target)
            assert len(c.units) == 1
            torch.testing.assert_close(c(xs), prog.run(xs), atol=1e-6, rtol=0)
