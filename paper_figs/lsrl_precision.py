"""Precision of compiled LSRL programs against step scale and sequence length, per target
(Petrov et al., 2024), with the compile-time error bound drawn over the measured error.

    paper_figs.make("lsrl_precision", "figs_out")            # or: probe figs --only lsrl_precision

The main figure (``lsrl_precision``): the official "more ones than zeros" program, measured error
(markers) and compile-time bound (dotted) against the step scale and against the length, for
elman, lstm and gru, as the official construction and as hardened by the compiler. Then
(``lsrl_library``): every program of the LSRL library compiled to every architecture that can
express it, its largest error against the float64 interpreter at growing lengths in float64 (solid) and float32 (dashed);
right: a key-value memory read by a multiplicative gate against the same memory read by ReLU
conditionals, with input noise. Also written: the state-size table (``lsrl_support``) and the
compiled layer stack of the paper's "more ones than zeros" program on a GRU (``lsrl_stack``).
``profile="full"`` is the ``lsrl.exact`` claim's full study (up to length 10000); ``"quick"`` measures
up to length 1000 with lighter exactness checks (the figure shows only the error curves).
"""
from __future__ import annotations

from pathlib import Path

from paper_figs import Profile, save

NAME = "lsrl_precision"


def make(out_dir: str | Path = "figs_out", profile: Profile = "quick") -> list[Path]:
    """Measure, draw the three figures, write PNG, SVG and HTML; returns the paths."""
    from analyses.lsrl import checks, compile, figures, library, study

    prof = study.SETTINGS["full"] if profile == "full" else study.LsrlSettings(
        random_len=50, n_random=8, sym_budget=16, sym_random=0, lengths=(10, 100, 1000), noise=1e-4)
    with checks.single_thread():
        sweep = study.precision_sweep(lengths=(10, 30, 100, 300, 1000) if profile != "full" else
                                      (10, 30, 100, 300, 1000, 3000))
        s = study.measure(prof)
        gru = compile(library.majority().program, "gru")
    paths = save(figures.sweep_figure(sweep), out_dir, NAME, width=1100, height=500)
    paths += save(figures.precision_figure(s), out_dir, "lsrl_library", width=1050, height=520)
    paths += save(figures.support_figure(s), out_dir, "lsrl_support", width=900, height=420)
    paths += save(figures.stack_figure(gru), out_dir, "lsrl_stack", width=900, height=400)
    return paths
