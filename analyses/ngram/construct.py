"""An in-context bigram predictor built by hand inside ``hawk`` (capacity check).

The claim ``regular.icll`` asks whether a trained recurrent model beats the in-context bigram.
This module shows that the architecture can at least *express* it, with the weights set by hand
(the mechanism of Akyürek et al.'s "n-gram heads", written as Zucchet et al.'s bilinear gated
RNN; compare :mod:`analyses.attention.construct`). The model is ``hawk`` with
``gates="linear"``, ``decay="fixed"``, ``normalize=False``, two layers, hidden >= 380::

    layer 1   cur units   h = onehot(x_t)                          (Λ = 0)
              prev units  h = onehot(x_t) + ρ h_{t-1}              (Λ = ρ)
              y1 = [onehot(x_t), (prev - cur) / ρ]  = [onehot(x_t), onehot(x_{t-1}) + O(ρ)]
    layer 2   neuron (p, c), Λ = 1:  h += y1[prev p] * y1[cur c]    counts of the pair p -> c
              output gate y1[cur p] picks the row of the current token; W_out sends (p, c) to c
              unigram neuron c, Λ = 1: h += y1[cur c], read with weight ε (breaks ties)

so the logit of c at position t is count(x_t -> c) + ε count(c) + O(ρ): its greedy letter is the
in-context bigram's most frequent continuation of the current token (the unigram's where that
row is still empty). With Griffin's short convolution (``conv``) one layer suffices: the
convolution hands layer 2's counters their [onehot(x_t), onehot(x_{t-1})] directly, exactly. ``|`` is a token like the letters, so the pairs (|, first letter) count the
string starts, as the bigram baseline's padded history does (see ``_ngram_counts``).
"""
from __future__ import annotations

import torch

import probe
from tasks.dfa import N_LETTERS

N_SYMBOLS = N_LETTERS + 1           # letters and "|": what is counted and predicted
N_TOKENS = N_LETTERS + 2            # with the pad
MIN_HIDDEN = N_SYMBOLS * N_SYMBOLS + N_SYMBOLS  # 361 pair counters + 19 unigram counters


def _count_pairs(layer, prev: int, cur: int, query: int, tie: float) -> None:
    """Make ``layer`` (gates linear, Λ free) count the pairs (previous p, current c) of its input,
    whose coordinates ``prev + p`` and ``cur + c`` are the two one-hots, and read the row of the
    current token (gate input coordinates ``query + p``) into output coordinate c."""
    S = N_SYMBOLS
    pc = torch.cartesian_prod(torch.arange(S), torch.arange(S))   # (361, 2) pairs (p, c)
    pair, uni = torch.arange(S * S), S * S + torch.arange(S)
    layer.Lambda[: S * S + S] = 1.0                                # accumulators
    layer.W_gx[pair, prev + pc[:, 0]] = 1.0                        # gate: the previous token is p
    layer.W_x[pair, cur + pc[:, 1]] = 1.0                          # input: the current token is c
    layer.W_go[pair, query + pc[:, 0]] = 1.0                       # read where the current token is p
    layer.W_out[pc[:, 1], pair] = 1.0                              # ... into coordinate c
    layer.b_gx[uni] = 1.0                                          # unigram counts, read with weight tie
    layer.W_x[uni, cur + torch.arange(S)] = 1.0
    layer.b_go[uni] = 1.0
    layer.W_out[torch.arange(S), uni] = tie


def bigram_hawk(task, hidden: int = 384, conv: bool = False, rho: float = 1e-6, tie: float = 1e-3):
    """A float64 hawk whose greedy letter is the in-context bigram's.

    Parameters
    ----------
    task : the ``regular`` task (for its vocabulary)
    hidden : width of the layers, at least 380
    conv : False: two layers, no convolution (layer 1 carries the previous token, see above);
        True: one layer with ``conv=2``, whose convolution hands the pair counters
        [onehot(x_t), onehot(x_{t-1})] directly (the embedding writes each token into two
        channels, and the convolution delays the second copy by one step)
    rho : decay of the two-layer model's previous-token units; the x_{t-2}, x_{t-3}, ... leak is O(rho)
    tie : weight of the unigram counts that break ties between equal pair counts; it must stay
        below 1 / (tokens in a context) so that it never overrules a pair count, and rho well
        below it
    """
    if getattr(task, "name", None) != "regular":
        raise ValueError(f"bigram_hawk needs the regular task; got {getattr(task, 'name', task)!r}")
    if hidden < MIN_HIDDEN:
        raise ValueError(f"bigram_hawk needs hidden >= {MIN_HIDDEN} (19 x 19 pair counters + 19); got {hidden}")
    extra = {"conv": 2} if conv else {}
    model = probe.models.make("hawk", task, hidden=hidden, layers=1 if conv else 2, gates="linear",
                              decay="fixed", normalize=False, **extra).double()
    V = N_TOKENS
    tok = torch.arange(V)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.embed.W_E[tok, tok] = 1.0                            # x_t = onehot(token) in R^hidden
        if conv:
            model.embed.W_E[tok, V + tok] = 1.0                    # ... and a second copy
            one = model.layers[0]
            one.W_conv[0, tok] = 1.0                               # u_t = [onehot(x_t), onehot(x_{t-1})]
            one.W_conv[1, V + tok] = 1.0
            _count_pairs(one, prev=V, cur=0, query=0, tie=tie)
        else:
            cur, prev = tok, V + tok                               # layer-1 units and y1 coordinates
            one = model.layers[0]
            one.Lambda[prev] = rho                                 # cur units keep Λ = 0
            one.b_gx[: 2 * V] = 1.0                                # input gate 1: h gets W_x x
            one.W_x[cur, tok] = 1.0
            one.W_x[prev, tok] = 1.0
            one.b_go[:] = 1.0                                      # output gate 1: y1 = W_out h
            one.W_out[cur, cur] = 1.0
            one.W_out[prev, prev] = 1.0 / rho
            one.W_out[prev, cur] = -1.0 / rho
            _count_pairs(model.layers[1], prev=V, cur=0, query=0, tie=tie)
        S = N_SYMBOLS
        model.readout.W_U[torch.arange(S), torch.arange(S)] = 1.0  # logits = counts
        model.readout.b_U[S] = -1e4                                # the pad is never predicted
    return model


__all__ = ["MIN_HIDDEN", "bigram_hawk"]
