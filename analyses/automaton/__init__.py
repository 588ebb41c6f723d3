"""The parity study (van Rossem & Saxe, ICML 2025): finite automata read off trained RNNs.

    analysis.py   prefix states, the extracted automaton, its dynamics over a run's checkpoints
    automata.py   grouping, Moore minimisation and equivalence on plain arrays
    figures.py    state-count dynamics, the automaton as a graph, PCA panels
    claims.py     ``parity.infinite_generalization`` and ``parity.automaton``
    NOTES.md      what was measured, and how the settings were chosen
"""
from analyses.base import forward
from analyses.automaton import automata
from analyses.automaton.analysis import (
                                         MAX_ENUMERATED_LEN,
                                         SUPPORTED_TASKS,
                                         AutomatonResult,
                                         analyze,
                                         analyze_run,
                                         automaton_accuracy,
                                         long_batch,
                                         member_accuracies,
                                         prefix_states,
                                         true_automaton,
)

__all__ = ["MAX_ENUMERATED_LEN", "SUPPORTED_TASKS", "AutomatonResult", "analyze", "analyze_run", "automata",
           "automaton_accuracy", "long_batch", "member_accuracies", "prefix_states", "true_automaton"]

# Before 0.2 the claims lived in this module's namespace.
__getattr__ = forward(__name__, dict.fromkeys(
    ["infinite_generalization", "long_accuracy", "parity_automaton", "train_parity"], "analyses.automaton.claims"))
