"""The attention study (Zucchet et al., ICML 2024): gated linear RNNs implement and discover attention.

    analysis.py   recover the attention layer of a trained bilinear hawk and score it
    layer.py      linear self-attention, its tensor, the references and the one-step-GD loss
    construct.py  the exact construction in a hawk, neuron counts, the sympy identity
    recover.py    accumulators, canonical neurons and the recovered tensor
    figures.py    eigenvalues, tensor scatter, loss against width
    study.py      per-profile settings and the training behind the claims and the size figure
    claims.py     ``attention.construction_exact`` and ``attention.discovered``
    NOTES.md      what was measured
"""
from analyses.base import forward
from analyses.attention.analysis import (
           HAWK_OPTIONS,
           AttentionResult,
           analyze,
           model_loss,
)
from analyses.attention.construct import (
           Neurons,
           construct,
           construction_neurons,
           neuron_counts,
           symbolic_check,
)
from analyses.attention.layer import (
           LinearAttention,
           apply_tensor,
           random_attention,
           reference_attention,
)
from analyses.attention.recover import Recovery, recover
from analyses.attention.study import SETTINGS, AttentionSettings, make_task, study

__all__ = ["AttentionResult", "AttentionSettings", "HAWK_OPTIONS", "LinearAttention", "Neurons", "Recovery",
           "SETTINGS", "analyze", "apply_tensor", "construct", "construction_neurons", "make_task", "model_loss",
           "neuron_counts", "random_attention", "recover", "reference_attention", "study", "symbolic_check"]

# Before 0.2 the claims lived in this module's namespace, and the settings were PROFILES.
__getattr__ = forward(__name__, {"construction_exact": "analyses.attention.claims",
                                 "discovered": "analyses.attention.claims",
                                 "PROFILES": "analyses.attention.study:SETTINGS"})
