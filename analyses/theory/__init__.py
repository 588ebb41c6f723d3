"""Theory: closed-form derivations in sympy, lambdified for the analyses that test them.

Not an analysis package (``analyses.names()`` skips it); each module derives the equations of one
paper's setting in code, so the algebra is checked by sympy rather than typed in by hand:

    integration   one-outlier loss and reduced learning dynamics of a linear RNN integrating
                  white noise (Bordelon, Cotler, Pehlevan & Zavatone-Veth, arXiv 2503.18754)
"""
