"""Every exporter on every library program: the model's outputs are the interpreter's.

Numerically within 1e-6 (float64) on all strings up to length 8 (k^L <= 256 for larger alphabets)
and random strings of length 50; exactly (symbolic) for the chain and for the linear / elman /
hawk weights. Pairs a target cannot express raise ValueError naming the block.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from analyses.lsrl import checks, sugar as S
from analyses.lsrl.compile import TARGETS, compile
from analyses.lsrl.graph import Input, LinState, Multiplicative, Concat, ReLUState
from analyses.lsrl.library import library
from analyses.lsrl.program import Program

SUPPORTED = {                                     # program -> targets that can express it
    "counter": {"linear", "elman", "lstm", "gru", "hawk"},
    "majority": {"elman", "lstm", "gru"},
    "parity": {"elman", "lstm", "gru"},
    "mod_counter": {"linear", "elman", "lstm", "gru"},
    "dfa": {"elman", "lstm", "gru"},
    "lookup": {"lstm", "gru", "hawk"},
    "lookup_relu": {"elman", "lstm", "gru"},
}
BLOCKING = {"majority": "relu", "parity": "parity_pairs", "mod_counter": "mod_phase", "dfa": "dfa_pairs",
            "lookup": "outer", "lookup_relu": "outer"}
LIB = library()


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", list(SUPPORTED))
def test_exporter_reproduces_the_interpreter(name, target):
    lp = LIB[name]
    if target not in SUPPORTED[name]:
        with pytest.raises(ValueError, match=f"target '{target}' cannot take block '{BLOCKING[name]}"):
            compile(lp.program, target)
        return
    c = compile(lp.program, target)
    cs = checks.cases(lp, lp.max_exhaustive_len(budget=256, cap=8), random_len=50, n_random=8)
    err = checks.numeric_error(c, cs)
    assert max(err.values()) <= 1e-6, err
    sym = checks.symbolic_check(c, lp, lp.max_exhaustive_len(budget=32, cap=5))
    assert sym["chain"] is True
    assert sym["model"] is (True if target in ("linear", "elman", "hawk") else None)


def test_state_sizes_are_what_the_constructions_need():
    units = {t: compile(LIB["counter"].program, t).units for t in TARGETS}
    assert units == {"linear": [2], "elman": [1], "lstm": [1], "gru": [1], "hawk": [2]}   # + a constant unit
    assert compile(LIB["parity"].program, "elman").state_size == 5                # 2 states x 2 symbols + start
    assert compile(LIB["parity"].program, "lstm").state_size == 2 * 6            # h and c; + the started unit
    assert compile(LIB["majority"].program, "gru", harden=False).units == [2, 4]  # a ReLU is two GRU units
    assert compile(LIB["majority"].program, "gru").units == [2, 1]               # a 0/1 step is one switch


def test_compiled_models_work_with_hooks_like_trained_ones():
    lp = LIB["majority"]
    x = torch.tensor(lp.sample(np.random.default_rng(0), 2, 9))
    for target, hooks in (("elman", ["hook_pre"]), ("lstm", ["hook_i", "hook_f", "hook_c"]),
                          ("gru", ["hook_r", "hook_z", "hook_n"])):
        c = compile(lp.program, target)
        logits, cache = c.model.run_with_cache(c.inputs(x))
        torch.testing.assert_close(logits, lp.program.run(x), atol=1e-6, rtol=0)
        for i in range(len(c.units)):
            assert cache[f"layers.{i}.hook_h"].shape == (2, 9, c.hidden)
            for h in hooks:
                assert f"layers.{i}.{h}" in cache
    c = compile(lp.program, "lstm")
    ones = [i for i, lab in enumerate(c.unit_labels[0]) if lab == "ones"][0]
    _, cache = c.model.run_with_cache(c.inputs(x))
    assert bool((cache["layers.0.hook_f"][..., ones] == 1).all())               # the counter's forget gate is 1


def test_channels_read_program_variables_back_from_the_hidden_states():
    lp = LIB["majority"]
    x = torch.tensor(lp.sample(np.random.default_rng(0), 3, 12))
    _, trace = lp.program.run(x, trace=True)
    for target in ("elman", "lstm", "gru"):
        c = compile(lp.program, target)
        vals = c.channels(x)[0]
        labels = c.chain.stages[0].labels()
        for var in ("ones", "zeros"):
            np.testing.assert_allclose(vals[..., labels.index(var)], trace[var][..., 0].numpy(), atol=1e-6)


def test_token_models_and_float32():
    x = Input(3, name="token", low=0, high=1)
    prog = Program(x, {"ones": LinState(x[1], 1, 1, name="ones")})
    tokens = torch.randint(0, 3, (4, 20))
    onehot = torch.nn.functional.one_hot(tokens, 3).double()
    for target in TARGETS:
        c = compile(prog, target, input_kind="tokens")
        assert c.model.config["input_kind"] == "tokens"
        torch.testing.assert_close(c.model(tokens), prog.run(onehot), atol=1e-6, rtol=0)
        c32 = compile(prog, target, dtype=torch.float32, tolerance=None)
        assert c32(onehot).dtype == torch.float32
        assert checks.max_error(c32(onehot), prog.run(onehot)) < 1e-3


def test_paper_rotation_counter_compiles_where_relu_is_available():
    x = Input(1, low=0, high=1)
    prog = Program(x, S.mod_counter(x, 5, method="rotation"))
    bits = torch.zeros(2, 30, 1)
    for target in ("elman", "lstm", "gru"):
        c = compile(prog, target, harden=False, tolerance=None)
        assert checks.max_error(c(bits), prog.run(bits)) < 1e-6
        hardened = compile(prog, target)                      # the exact shift counter in its place
        assert any("rotation" in line for line in hardened.constructions)
        assert checks.max_error(hardened(bits), prog.run(bits)) < 1e-9
    with pytest.raises(ValueError, match="not all real"):
        compile(prog, "hawk", harden=False)


def test_unsupported_operations_name_the_block():
    x = Input(1, low=-3, high=3)
    jordan = Program(x, LinState(x, [[1, 1], [0, 1]], [[0], [1]], name="ramp"))
    with pytest.raises(ValueError, match="'ramp'.*not diagonalisable"):
        compile(jordan, "hawk")
    assert checks.max_error(compile(jordan, "linear", horizon=100)(torch.ones(1, 5, 1)), jordan.run(torch.ones(1, 5, 1))) == 0
    counting = Program(x, ReLUState(x, 1, 1, name="climb"))
    with pytest.raises(ValueError, match="'gru' cannot take block 'climb' \\(ReLUState\\)"):
        compile(counting, "gru")
    product = Program(x, Multiplicative(Concat([x, x]), name="square"))
    for target in ("lstm", "gru"):
        with pytest.raises(ValueError, match=f"'{target}' cannot take block 'square'.*binary_gate"):
            compile(product, target)
    assert checks.max_error(compile(product, "hawk")(torch.full((1, 3, 1), 3.0)), torch.full((1, 3, 1), 9.0)) == 0
    with pytest.raises(ValueError, match="unknown target"):
        compile(counting, "transformer")
