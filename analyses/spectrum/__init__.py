"""The integration study (Bordelon et al. 2025): recurrent spectra over training, and the outlier theory.

    analysis.py            eigenvalues of each layer's recurrent map over a run: bulk, outliers, fixed points
    fixed_point_search.py  fixed and slow points of a recurrent map (Sussillo & Barak 2013)
    figures.py             the complex plane per checkpoint, outliers over training, fixed points
    training.py            exact-expected-loss gradient descent of a linear RNN on white-noise integration
    theory.py              the one-outlier theory and its reduced dynamics, derived in sympy
    claims.py              ``integration.outlier_eigenvalue`` and ``integration.theory_match``
    NOTES.md               what was measured
"""
from analyses.spectrum.analysis import (
                                        SpectrumResult,
                                        analyze,
                                        analyze_run,
                                        bulk_and_outliers,
                                        complex_lists,
                                        fixed_points,
                                        init_radius,
                                        layer_eigvals,
                                        layer_inputs,
                                        step_function,
)

__all__ = ["SpectrumResult", "analyze", "analyze_run", "bulk_and_outliers", "complex_lists", "fixed_points",
           "init_radius", "layer_eigvals", "layer_inputs", "step_function"]
