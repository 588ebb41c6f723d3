"""The rotated-subspace swap of :mod:`probe.das`: an orthogonal rotation of a site's space and an
assignment of rotated dimensions to causal variables (learned by Gumbel-softmax, or fixed blocks)."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils import parametrizations


def gumbel_softmax(logits: Tensor, tau: float, generator: torch.Generator, hard: bool = True) -> Tensor:
    """Gumbel-softmax samples over the last axis from a seeded generator (straight-through if hard)."""
    u = torch.rand(logits.shape, generator=generator).to(logits).clamp(1e-10, 1 - 1e-7)
    y = F.softmax((logits - torch.log(-torch.log(u))) / tau, -1)
    if not hard:
        return y
    one = F.one_hot(y.argmax(-1), y.shape[-1]).to(y)
    return one - y.detach() + y


class _Weight(nn.Module):
    def __init__(self, init: Tensor):
        super().__init__()
        self.weight = nn.Parameter(init)


def block_assignment(width: int, n_variables: int, size: Optional[int] = None) -> Tensor:
    """(D, K+1) one-hot rows: variable k owns rotated dimensions [k·s, (k+1)·s), the rest "rest"."""
    size = width // n_variables if size is None else size
    if size < 1 or size * n_variables > width:
        raise ValueError(f"{n_variables} variables of {size} dimensions do not fit in width {width}; "
                         f"valid sizes: 1..{width // n_variables}")
    owner = torch.full((width,), n_variables)
    owner[:size * n_variables] = torch.arange(n_variables).repeat_interleave(size)
    return F.one_hot(owner, n_variables + 1).float()


class RotatedSwap(nn.Module):
    """Swap the rotated dimensions assigned to chosen variables from a source into a base.

    Parameters
    ----------
    width : D, the site's width.
    n_variables : K; the assignment has K+1 columns, the last one "rest" (never swapped).
    generator : seeds the initial rotation (a random orthogonal matrix) and the logits.
    orthogonal_map : passed to ``torch.nn.utils.parametrizations.orthogonal`` ("matrix_exp",
        "cayley" or "householder").
    assignment : "gumbel" (learned logits (D, K+1)) or "fixed" (:func:`block_assignment` with
        ``size`` dimensions per variable; only the rotation is learned).
    """

    def __init__(self, width: int, n_variables: int, generator: torch.Generator, orthogonal_map: str = "matrix_exp",
                 assignment: str = "gumbel", size: Optional[int] = None):
        super().__init__()
        if assignment not in ("gumbel", "fixed"):
            raise ValueError(f"unknown assignment {assignment!r}; valid: gumbel, fixed")
        q, r = torch.linalg.qr(torch.randn(width, width, generator=generator))
        self.rotation = parametrizations.orthogonal(_Weight(q * torch.sign(torch.diagonal(r))),
                                                    orthogonal_map=orthogonal_map)
        self.logits = nn.Parameter(0.01 * torch.randn(width, n_variables + 1, generator=generator))  # (D, K+1)
        if assignment == "fixed":
            self.logits.requires_grad_(False)
            with torch.no_grad():  # argmax of these logits is the block assignment
                self.logits.copy_(block_assignment(width, n_variables, size))
        self.learned = assignment == "gumbel"

    @property
    def R(self) -> Tensor:
        """The rotation (D, D); rotated coordinates are ``R @ h``."""
        return self.rotation.weight

    def assignment(self, tau: Optional[float] = None, generator: Optional[torch.Generator] = None) -> Tensor:
        """(D, K+1) one-hot rows: a Gumbel-softmax sample when ``tau`` is given, else the argmax."""
        if tau is None or not self.learned:
            return F.one_hot(self.logits.argmax(-1), self.logits.shape[-1]).to(self.logits)
        return gumbel_softmax(self.logits, tau, generator)

    def forward(self, base: Tensor, source: Tensor, variables: Tensor, assignment: Tensor) -> Tensor:
        """base, source (B, D); variables (B, K) bool; assignment (D, K+1) -> (B, D)."""
        R = self.R
        rb, rs = base @ R.T, source @ R.T                                           # (B, D)
        m = variables.to(rb) @ assignment[:, :-1].T                                 # (B, D) in [0, 1]
        return (rb + m * (rs - rb)) @ R                                             # (B, D)
