"""Parallel-in-time solves of trained RNNs (DEER, quasi-DEER; :mod:`probe.newton`).

    analysis.py   Newton iterations of a model's first layer against length and training step
    figures.py    iterations against length or step, one line per method
    claims.py     ``parallel.predictability``
    NOTES.md      what was measured
"""
from analyses.parallel.analysis import ParallelResult, analyze, analyze_run, count

__all__ = ["ParallelResult", "analyze", "analyze_run", "count"]
