"""The interpretable-cells study (Karpathy, Johnson & Fei-Fei 2015): units that track a task's features.

    analysis.py   score every unit of every hook against every feature, with nulls, probes, a causal check
    scores.py     AUC, correlation, mutual information, saturation, probes on plain arrays
    figures.py    score heatmap, saturation scatter, probe bars, text coloured by a unit
    claims.py     ``cells.charlm`` and ``cells.saturation``
    NOTES.md      what was measured, and the settings tried
"""
from analyses.base import forward
from analyses.cells.analysis import (
                                               CellsResult,
                                               analyze,
                                               analyze_run,
                                               causal_check,
                                               collect,
)

__all__ = ["CellsResult", "analyze", "analyze_run", "causal_check", "collect"]

# Before 0.2 the claims lived in this module's namespace.
__getattr__ = forward(__name__, dict.fromkeys(["charlm_cells", "charlm_saturation", "charlm_result",
                                               "train_charlm"], "analyses.cells.claims"))
