"""The memory study (Zoology; Just Read Twice): recall against state size, and the order of two sets.

    analysis.py    accuracy per split, recall by lag, membership probes by set size, for one model
    accounting.py  state size in numbers carried per step, and the width that gives it
    probes.py      recall by lag and membership probes
    readout.py     stored pairs read back out of a matrix state (S_t k against v) as the context grows
    figures.py     the frontier, the asymmetry, probes against set size, recall by lag
    plans.py       per-profile settings, training, the sweeps and their figures
    claims.py      ``recall.state_frontier``, ``recall.delta_rule`` and ``disjointness.order_asymmetry``
    NOTES.md       what was measured, and four searches for the order asymmetry
"""
from analyses.base import forward
from analyses.memory.accounting import hidden_for, member_accuracy, state_size
from analyses.memory.analysis import MemoryResult, analyze
from analyses.memory.plans import (
           asymmetry_figure,
           frontier_figure,
           probe_curves,
           probe_figure,
)
from analyses.memory.probes import membership_probe
from analyses.memory.readout import pair_readout, readout_layers

__all__ = ["MemoryResult", "analyze", "asymmetry_figure", "frontier_figure", "hidden_for", "member_accuracy",
           "membership_probe", "pair_readout", "probe_curves", "probe_figure", "readout_layers", "state_size"]

# Before 0.2 the claims lived in this module's namespace.
__getattr__ = forward(__name__, dict.fromkeys(["order_asymmetry", "state_frontier"], "analyses.memory.claims"))
