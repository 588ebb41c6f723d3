"""LSRL: compile programs into the weights of recurrent models, and use them as ground truth.

Petrov et al. (NeurIPS 2024, arXiv 2406.01424) define LSRL, a small language whose programs
compile to fully recurrent models. This package builds it the whole way into ``probe.models``:

    from analyses.lsrl import Input, LinState, Program, compile, sugar as S
    x = Input(1, low=0, high=1)
    ones = LinState(x, A=1, B=1, name="ones")
    zeros = LinState(1 - x, A=1, B=1, name="zeros")
    prog = Program(x, {"more": S.larger(ones, zeros, scale=1)})      # "more ones than zeros so far"
    prog.run(bits)                                                    # reference interpreter, float64
    prog.run(bits, backend="symbolic")                                # exact
    c = compile(prog, "elman")                                        # a probe.models RecurrentModel
    c(bits); c.model.run_with_cache(c.inputs(bits))                   # hooks, analyses, explorer

Modules, bottom-up: :mod:`graph` (the blocks), :mod:`backends` (float64 torch / exact numbers),
:mod:`program` (Program and interpreter), :mod:`sugar`, :mod:`passes` (fold, absorb),
:mod:`chain` (linearise into one chain of layers, zero_init), :mod:`export` (linear, elman, hawk),
:mod:`export_gated` (lstm, gru), :mod:`analysis` (ranges and grids), :mod:`harden` (constructions
that hold at the official defaults), :mod:`bound` (the compile-time error bound), :mod:`compile`,
:mod:`serial` (save / load), :mod:`library` (programs, the official repository's among them), :mod:`checks`
(exactness and precision measurements), :mod:`study` (per-profile settings and the measurements
behind the claims), :mod:`figures`, :mod:`claims` (``lsrl.exact``, ``lsrl.ground_truth``).

LSRL is a study without an analysis of trained models: ``analyses.names()`` does not list it.
"""
from analyses.lsrl import sugar
from analyses.lsrl.chain import Chain, Stage, linearise, zero_init
from analyses.lsrl.compile import TARGETS, Compiled, compile
from analyses.lsrl.graph import (
                                 Affine,
                                 Concat,
                                 Forward,
                                 Input,
                                 Linear,
                                 LinState,
                                 Multiplicative,
                                 ReLU,
                                 ReLUState,
)
from analyses.lsrl.passes import absorb_linear, fold_linear, simplify
from analyses.lsrl.program import Interpreter, Program

__all__ = ["Affine", "Chain", "Compiled", "Concat", "Forward", "Input", "Interpreter", "LinState", "Linear",
           "Multiplicative", "Program", "ReLU", "ReLUState", "Stage", "TARGETS", "absorb_linear", "compile",
           "fold_linear", "linearise", "simplify", "sugar", "zero_init"]
