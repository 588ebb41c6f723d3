"""The in-context regular languages study (Akyürek et al., ICML 2024; RegBench): RNNs against n-gram predictors.

    analysis.py   one model against the in-context n-gram predictors and the DFA, over its checkpoints
    counts.py     in-context n-gram counts with the paper's backoff smoothing, TVD, legality
    measure.py    the model's distributions on held-out contexts, probes of the DFA state
    construct.py  a hawk whose hand-set weights are the in-context bigram
    figures.py    TVD by position, over training, one coloured context, the sweep
    sweep.py      per-profile settings, the sweep over architectures x training automata, the champion
    claims.py     ``regular.icll``
    NOTES.md      what each model reached, and the settings tried
"""
from analyses.base import forward
from analyses.ngram.analysis import NgramResult, analyze, analyze_run, over_training
from analyses.ngram.sweep import sweep_figures

__all__ = ["NgramResult", "analyze", "analyze_run", "over_training", "sweep_figures"]

# Before 0.2 the claim lived in this module's namespace.
__getattr__ = forward(__name__, {"icll": "analyses.ngram.claims"})
