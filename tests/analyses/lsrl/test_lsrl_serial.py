"""Programs and compiled models saved and reloaded: the same program, bit-identical outputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from analyses.lsrl import sugar as S
from analyses.lsrl.compile import compile, load_compiled
from analyses.lsrl.graph import Input, LinState
from analyses.lsrl.library import library
from analyses.lsrl.program import Program
from analyses.lsrl.serial import (
    expr_from_json,
    expr_to_json,
    load_program,
    program_to_json,
    save_program,
)

RNG = np.random.default_rng(3)


@pytest.mark.parametrize("name", ["majority", "parity", "lookup", "mod_counter"])
def test_program_round_trips_exactly(name, tmp_path):
    lp = library([name])[name]
    path = save_program(lp.program, tmp_path / f"{name}.json")
    back = load_program(path)
    assert program_to_json(back) == program_to_json(lp.program)
    x = lp.sample(RNG, 4, 20)
    assert torch.equal(back.run(x), lp.program.run(x))
    assert back.parameter_count() == lp.program.parameter_count()


def test_irrational_weights_stay_exact(tmp_path):
    x = Input(1)
    prog = Program(x, S.mod_counter(x, 5, method="rotation"))
    back = load_program(save_program(prog, tmp_path / "rot.json"))
    assert program_to_json(back) == program_to_json(prog)
    y = back.run(np.zeros((1, 4, 1)), backend="symbolic")
    assert [int(v) for v in y[0, :, 0]] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="unknown function 'eval'"):
        expr_from_json(["eval", "1/2"])
    with pytest.raises(ValueError, match="bad exact number"):
        expr_from_json("one half")
    assert expr_from_json(expr_to_json(sympy_cos())) == sympy_cos()


def sympy_cos():
    import sympy
    return sympy.cos(2 * sympy.pi / 7) + sympy.sqrt(3) / 2


def test_parameter_count_matches_the_official_rule():
    # official ForEach.parameter_count: A and b of every Linear, A, B and bias of every LinState
    x = Input(1, low=0, high=1)
    ones = LinState(x, 1, 1)                                 # 1 + 1 + 1
    prog = Program(x, 2 * ones + 1)                          # two Linears (2 *, then + 1): 2 + 2
    assert prog.parameter_count() == 7
    from analyses.lsrl.graph import Concat, ReLU
    assert Program(x, ReLU(Concat([x, ones]))).parameter_count() == 3      # ReLU and Concat have none


@pytest.mark.parametrize("target", ["linear", "elman", "lstm", "gru", "hawk"])
def test_compiled_model_reloads_bit_identical(target, tmp_path):
    lp = library(["counter"])["counter"] if target in ("linear", "hawk") else library(["majority"])["majority"]
    c = compile(lp.program, target)
    c.save(tmp_path / target)
    back = load_compiled(tmp_path / target)
    x = lp.sample(RNG, 4, 30)
    assert torch.equal(back(x), c(x))
    for k, v in c.model.state_dict().items():
        assert torch.equal(back.model.state_dict()[k], v)
    (tmp_path / target / "compiled.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a compiled LSRL model"):
        load_compiled(tmp_path / target)
