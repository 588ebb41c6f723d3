"""The repetition study (Csordás et al. 2024): magnitude-coded ("onion") against linear storage.

    analysis.py   fit and score the unigram, bigram (DAS) and onion interventions on one model
    data.py       the interventions' examples, contributions and their geometric fit
    onion.py      the onion intervention
    handbuilt.py  copiers with a known code (one subspace per position, or an onion), for tests
    figures.py    accuracy per position, contributions on a log axis, one readout, accuracy vs size
    sweep.py      per-profile settings, the hidden-size sweep and its figure
    claims.py     ``repetition.onion_small`` and ``repetition.linear_large``
    NOTES.md      what was measured, and why the quick profile departs from the paper
"""
from analyses.base import forward
from analyses.magnitude.analysis import MagnitudeResult, analyze
from analyses.magnitude.sweep import size_figure

__all__ = ["MagnitudeResult", "analyze", "size_figure"]

# Before 0.2 the claims lived in this module's namespace.
__getattr__ = forward(__name__, dict.fromkeys(["linear_large", "onion_small"], "analyses.magnitude.claims"))
