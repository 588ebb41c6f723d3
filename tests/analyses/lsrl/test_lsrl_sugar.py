"""Every sugar function against its defining equation, in both backends."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from analyses.lsrl import sugar as S
from analyses.lsrl.backends import exact_equal
from analyses.lsrl.graph import Input
from analyses.lsrl.program import Program
from lsrl_helpers import as_fraction, run_both  # noqa: F401

RNG = np.random.default_rng(1)
GRID = RNG.integers(-3, 4, (6, 8, 2)).astype(float)                  # integers: scale-1 comparisons are exact
FINE = RNG.integers(-3000, 3001, (6, 8, 2)) / 1000.0                  # multiples of 1/1000
BITS = RNG.integers(0, 2, (6, 8, 2)).astype(float)


def _check(build, inputs, expected, symbolic=True):
    x = Input(2)
    prog = Program(x, build(x[0], x[1]))
    num, sym = run_both(prog, inputs) if symbolic else (prog.run(torch.tensor(inputs)).numpy(), None)
    np.testing.assert_allclose(num, expected, atol=1e-9)
    if symbolic:
        assert exact_equal(sym, as_fraction(expected))


a, b = GRID[..., :1], GRID[..., 1:]
fa, fb = FINE[..., :1], FINE[..., 1:]
c, d = BITS[..., :1], BITS[..., 1:]


def test_step_is_clamped_ramp():
    _check(lambda x, y: S.step(x, scale=1000), FINE, np.clip(1000 * fa, 0, 1))
    _check(lambda x, y: S.step(x, scale=1), GRID, (a >= 1).astype(float))


def test_bump_is_one_between_the_bounds():
    _check(lambda x, y: S.bump(x, -1, 2, scale=1), GRID, ((a >= 0) & (a <= 2)).astype(float))
    _check(lambda x, y: S.bump(x, y, y + 2, scale=1), GRID, ((a - b >= 1) & (a - b <= 2)).astype(float))


def test_comparisons():
    _check(lambda x, y: S.larger(x, y, scale=1), GRID, (a > b).astype(float))
    _check(lambda x, y: S.smaller(x, y, scale=1), GRID, (a < b).astype(float))
    _check(lambda x, y: S.larger(x, y), FINE, (fa > fb).astype(float))
    _check(lambda x, y: S.eq(x, y, scale=1), GRID, (a == b).astype(float))
    _check(lambda x, y: S.neq(x, y, scale=1), GRID, (a != b).astype(float))
    _check(lambda x, y: S.eq(x, 2, scale=1), GRID, (a == 2).astype(float))


def test_boolean_connectives():
    _check(lambda x, y: S.not_(x), BITS, 1 - c)
    _check(lambda x, y: S.and_(x, y), BITS, c * d)
    _check(lambda x, y: S.or_(x, y), BITS, np.maximum(c, d))


@pytest.mark.parametrize("ifelse", [S.ifelse, S.ifelse_mul], ids=["relu", "mul"])
def test_ifelse_selects_by_a_binary_condition(ifelse):
    x = Input(3)
    vals = np.concatenate([BITS[..., :1], GRID], -1)                      # condition, t, f
    prog = Program(x, {"both": ifelse(x[0], x[1], x[2]), "t_only": ifelse(x[0], x[1], None),
                       "f_only": ifelse(x[0], None, x[2]), "const": ifelse(x[0], 5, -7)})
    cnd, t, f = vals[..., :1], vals[..., 1:2], vals[..., 2:3]
    expected = np.concatenate([cnd * t + (1 - cnd) * f, cnd * t, (1 - cnd) * f, cnd * 5 - (1 - cnd) * 7], -1)
    num, sym = run_both(prog, vals)
    np.testing.assert_allclose(num, expected)
    assert exact_equal(sym, as_fraction(expected))


def test_ifelse_by_relu_needs_values_within_big():
    x = Input(3)
    prog = Program(x, S.ifelse(x[0], x[1], x[2], big=10))
    assert prog.run(torch.tensor([[[1.0, 3.0, 5.0]]])).item() == 3.0
    assert prog.run(torch.tensor([[[1.0, 3.0, 50.0]]])).item() != 3.0     # |f| > big leaks into the closed branch


def test_relu_identity_passes_values_of_either_sign():
    _check(lambda x, y: S.relu_identity(x), FINE, fa)


def test_const_ignores_its_anchor():
    _check(lambda x, y: S.const(x, [2, -1]), GRID, np.broadcast_to([2.0, -1.0], GRID.shape[:2] + (2,)))


@pytest.mark.parametrize("method", ["shift", "rotation"])
def test_mod_counter_counts_steps_mod_n(method):
    x = Input(1)
    T, T_exact = 12, 12 if method == "shift" else 4     # exact arithmetic with nested radicals swells
    prog = Program(x, {"mod": S.mod_counter(x, 5, method=method), "phase": S.mod_counter(x, 5, method, onehot=True),
                       "old": S.mod_counter(x, 5, method, first=1)})
    t = np.arange(1, T + 1)
    num = prog.run(torch.zeros(1, T, 1, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(num[0, :, 0], (t - 1) % 5, atol=1e-9)            # official phase: 0 first
    np.testing.assert_allclose(num[0, :, 1:6], np.eye(5)[(t - 1) % 5], atol=1e-9)
    np.testing.assert_allclose(num[0, :, 6], t % 5, atol=1e-9)                  # first=1: the old phase
    sym = prog.run(np.zeros((1, T_exact, 1)), backend="symbolic")
    assert exact_equal(sym[..., :1], as_fraction(((t[:T_exact] - 1) % 5).reshape(1, T_exact, 1).astype(float)))


@pytest.mark.parametrize("method", ["shift", "rotation"])
def test_mod_counter_matches_the_official_test(method):
    # the official tests/test_sugar.py::test_modulo_counter: divisors 1, 2, 3, 5, 20 over 50 zero
    # inputs give islice(cycle(range(divisor)), 50) (AleksandarPetrov/LSRL @ 2675cd14a400033e115c97ab7a289dd6a0b252df)
    x = Input(1)
    for n in (1, 2, 3, 5, 20):
        out = Program(x, S.mod_counter(x, n, method=method)).run(torch.zeros(1, 50, 1, dtype=torch.float64))
        np.testing.assert_allclose(out[0, :, 0].numpy(), np.arange(50) % n, atol=1e-9, err_msg=f"n={n}")


def test_ifelse_step_and_ifeq_follow_the_official_definitions():
    x = Input(3)
    cond = RNG.choice([0.0, 0.2, 0.45, 0.55, 0.9, 1.0], (6, 8, 1))
    vals = np.concatenate([cond, GRID], -1)
    prog = Program(x, {"step": S.ifelse_step(x[0], x[1], x[2]), "t": S.ifelse_step(x[0], x[1], None),
                       "f": S.ifelse_step(x[0], None, x[2])})
    on, t, f = (cond > 0.5).astype(float), vals[..., 1:2], vals[..., 2:3]
    expected = np.concatenate([on * t + (1 - on) * f, on * t, (1 - on) * f], -1)
    num, sym = run_both(prog, vals)
    np.testing.assert_allclose(num, expected)
    assert exact_equal(sym, as_fraction(expected))
    _check(lambda a_, b_: S.ifeq(a_, b_, a_ + b_, a_ - b_, scale=1), GRID, np.where(a == b, a + b, a - b))
    _check(lambda a_, b_: S.ifeq(a_, 2, 7, None), GRID, np.where(a == 2, 7.0, 0.0))


def test_sugar_rejects_bad_arguments():
    x = Input(1)
    with pytest.raises(ValueError, match="scale must be positive"):
        S.step(x, scale=0)
    with pytest.raises(ValueError, match="n must be an integer >= 1, got 0"):
        S.mod_counter(x, 0)
    with pytest.raises(ValueError, match="first must be an integer"):
        S.mod_counter(x, 3, first=0.5)
    with pytest.raises(ValueError, match="give t, f or both"):
        S.ifelse_step(x, None, None)
    with pytest.raises(ValueError, match="unknown method"):
        S.mod_counter(x, 3, method="spin")
    with pytest.raises(ValueError, match="give t, f or both"):
        S.ifelse(x, None, None)
    with pytest.raises(ValueError, match="cannot broadcast"):
        S.ifelse(Input(2), Input(3), None)
