"""Hooks on states and gates: the value a hook returns is what the recurrence carries forward.

A TransformerLens hook sees a whole activation, ``hook(x, hook)`` with x (B, T, D), and the model
goes on with what it returns. Inside a recurrence the value at step t feeds step t+1, so an edit
at step 3 must reach step 4. :func:`run_layer` gives trajectory hooks exactly that meaning,
without giving up the layer's fast whole-trajectory path:

1. run the layer fast from the current step to the end (no edits);
2. call each hooked point's forward hooks on a copy of its whole trajectory: steps already
   decided hold the values the hooks were given for them, later steps what the recurrence
   produces from here with no further edit;
3. find the earliest step at which a hook's return value differs from what it was given; if
   none, keep the run and stop;
4. otherwise redo that step with the reference cell (:meth:`Layer.step`): points computed before
   the first changed one keep the fast run's values, the changed ones take the hooks' values,
   and a later point of the step whose input changed (n after an edit of r) is handed to its
   hooks again; then go back to 1 from the next step.

So hooks that return None, or their input unchanged (caching, printing), cost one call and
leave the fast run as it was, bit for bit; an edit at k steps costs k re-runs of the rest of the
sequence and k+1 calls of every hook on the layer. The results are exact for causal hooks (the
value returned for step t depends on steps <= t), which is every step-addressed edit. An
:class:`probe.Edit` is such a hook (see :func:`probe.interventions.step_hook`), so
``probe.intervene`` and ``run_with_hooks`` share this one mechanism and agree bit for bit.

Gradient hooks see the total derivative of the loss with respect to a point's value, through
the recurrence as well as the readout: a zero "tap" enters every value on the way
(:class:`Join`, or inside the fused backward of GRU and LSTM), and the taps' gradient, complete
once every step's contribution is in, is handed to the backward hooks. They observe only: what
a backward hook returns is not fed back.
"""
from __future__ import annotations

import warnings
from typing import Optional

import torch
from torch import Tensor
from transformer_lens.hook_points import HookPoint


class Join(torch.autograd.Function):
    """``Join(value, tap, convert=None)`` is ``value``; its gradient g reaches ``value`` and, as
    ``convert(g)``, ``tap``.

    A tap of zeros joined into a value receives the gradient of that value; ``Join(v.detach(),
    w)`` is v with the gradient of w.
    """

    @staticmethod
    def forward(ctx, value, tap, convert=None):
        ctx.convert = convert
        return value.clone()

    @staticmethod
    def backward(ctx, g):
        return g, (g if ctx.convert is None else ctx.convert(g)), None


class _Keep(torch.autograd.Function):
    """A run's view of the taps (M, B, T', D) whose gradient stops after the first ``keep[0]``
    steps: the run's later values are dropped or, at an edited step, replaced, and the gradient
    of a replaced value is not the gradient of the value the model goes on with."""

    @staticmethod
    def forward(ctx, tap, keep: list):
        ctx.keep = keep
        return tap.view_as(tap)

    @staticmethod
    def backward(ctx, g):
        g = g.clone()
        g[:, :, ctx.keep[0]:] = 0
        return g, None


def at(prep, name: str, t: int, axis: int) -> Tensor:
    """Step ``t`` of the trajectory ``prep.<name>`` along ``axis``, from one ``unbind`` per forward
    (indexing each step would cost a zero-filled copy of the whole trajectory in the backward)."""
    steps = prep.__dict__.setdefault("steps", {})
    if name not in steps:
        steps[name] = getattr(prep, name).unbind(axis)
    return steps[name][t]


def has_forward_hooks(hp: HookPoint) -> bool:
    return bool(hp._forward_hooks or hp._forward_pre_hooks)


def has_backward_hooks(hp: HookPoint) -> bool:
    return bool(hp._backward_hooks or hp._backward_pre_hooks)


def face(v: Tensor, ensemble: bool) -> Tensor:
    """Internal layout (M, B, ...) -> what hooks see: (B, ...) for a plain model."""
    return v if ensemble else v[0]


def unface(v: Tensor, ensemble: bool) -> Tensor:
    return v if ensemble else v.unsqueeze(0)


def fire_forward(hp: HookPoint, x: Tensor) -> Tensor:
    """Call ``hp``'s forward hooks on ``x`` as ``hp(x)`` would, but without the module call (which
    would also attach its backward hooks to a value that is not the one the model goes on with)."""
    for fn in list(hp._forward_pre_hooks.values()):
        out = fn(hp, (x,))
        if out is not None:
            x = out[0] if isinstance(out, tuple) else out
    for key, fn in list(hp._forward_hooks.items()):
        out = fn(hp, (x,), {}, x) if key in hp._forward_hooks_with_kwargs else fn(hp, (x,), x)
        if out is not None:
            x = out
    return x


def fire_backward(hp: HookPoint, g: Tensor) -> None:
    """Call ``hp``'s backward hooks with the gradient ``g`` of its value, as the module would."""
    for fn in list(hp._backward_pre_hooks.values()):
        fn(hp, (g,))
    for fn in list(hp._backward_hooks.values()):
        if fn(hp, (g,), (g,)) is not None:
            warnings.warn(f"a backward hook on {hp.name} returned a value: gradient hooks on recurrent "
                          f"states and gates observe only, the returned gradient is not used", stacklevel=2)


def _hooked(hp: HookPoint, x: Tensor, ens: bool) -> Tensor:
    """The forward hooks' value of trajectory ``x`` (M, B, T, D), checked for its shape."""
    y = fire_forward(hp, face(x, ens).clone())
    if not isinstance(y, Tensor) or y.shape != face(x, ens).shape:
        got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise ValueError(f"a forward hook on {hp.name} must return None or a tensor of shape "
                         f"{tuple(face(x, ens).shape)}, got {got}")
    return unface(y.to(x), ens)


def _first_change(y: Tensor, x: Tensor, start: int) -> Optional[int]:
    """First step >= start at which y differs from x (NaN equals NaN); both (M, B, T, D)."""
    y, x = y[:, :, start:], x[:, :, start:]
    differs = (y != x) & ~(y.isnan() & x.isnan())
    steps = differs.transpose(2, -1).flatten(end_dim=-2).any(0).nonzero()
    return None if steps.numel() == 0 else start + int(steps[0])


def run_layer(layer, prep, fused: bool = True) -> dict[str, Tensor]:
    """The trajectory (M, B, T, D) of every recurrent point of ``layer`` as the model carries it.

    ``layer`` provides ``points`` (its recurrent hook names in the order a step computes them),
    ``run(prep, state, start, taps)`` (the fast path from ``start``), ``step(prep, state, t,
    visit)`` (one reference step, each point's value passed through ``visit(point, value)``) and
    ``state_at(values, i)``; ``prep`` holds ``T``, the initial ``state`` and the layer's inputs.
    ``fused=False`` replaces the fast path by the reference steps (:func:`loop`).
    """
    T, ens = prep.T, layer.ensemble
    run = layer.run if fused else lambda *args: loop(layer, *args)
    hps = {p: getattr(layer, p) for p in layer.points}
    hooked = [p for p in layer.points if has_forward_hooks(hps[p])]
    taps = {}
    if torch.is_grad_enabled():
        for p in layer.points:
            if has_backward_hooks(hps[p]):
                taps[p] = torch.zeros(prep.M, prep.B, T, layer.width(p), dtype=layer.dtype, device=layer.device,
                                      requires_grad=True)
                taps[p].register_hook(lambda g, hp=hps[p]: fire_backward(hp, face(g, ens)))
    if not hooked:
        return run(prep, prep.state, 0, taps or None)

    raw = {p: [] for p in layer.points}        # values the hooks were given, step-decided pieces
    kept = {p: [] for p in layer.points}       # values the model went on with
    state, start = prep.state, 0
    while True:
        keep = [T - start]                     # steps of this run the model keeps, known below
        run_taps = {p: _Keep.apply(tap[:, :, start:], keep) for p, tap in taps.items()}
        seg = run(prep, state, start, run_taps or None) if start < T else None
        pieces = {p: raw[p] + ([seg[p]] if seg else []) for p in hooked}
        given = {p: v[0] if len(v) == 1 else torch.cat(v, 2) for p, v in pieces.items()}   # (M, B, T, D)
        got = {p: _hooked(hps[p], given[p], ens) for p in hooked}
        changes = [c for c in (_first_change(got[p], given[p], start) for p in hooked) if c is not None]
        t = min(changes, default=T)
        keep[0] = t - start
        for p in layer.points:
            if start < t:
                raw[p].append(seg[p][:, :, :t - start])
                kept[p].append(got[p][:, :, start:t] if p in got else seg[p][:, :, :t - start])
        if t == T:
            break
        before = state if t == start else layer.state_at(seg, t - 1 - start)
        edited = [False]                       # whether a point of step t has changed yet

        def visit(p: str, v: Tensor, t: int = t, got: dict = got, given: dict = given, seg: dict = seg) -> Tensor:
            """The value the model goes on with at step t for point p, given its raw value v (M, B, D)."""
            if not edited[0] and seg is not None:
                v = seg[p][:, :, t - start]    # nothing upstream changed: the fast run's value
            raw[p].append(v.unsqueeze(2))
            if p in got:
                if torch.equal(v, given[p][:, :, t]):
                    v = got[p][:, :, t]
                else:                          # an earlier point of this step changed v: ask again
                    again = given[p].clone()
                    again[:, :, t] = v
                    v = _hooked(hps[p], again, ens)[:, :, t]
                edited[0] = edited[0] or not torch.equal(v, given[p][:, :, t])
            if p in taps:
                v = Join.apply(v, taps[p][:, :, t])
            kept[p].append(v.unsqueeze(2))
            return v

        state, start = layer.step(prep, before, t, visit), t + 1
    return {p: torch.cat(kept[p], 2) for p in layer.points}


def loop(layer, prep, state, start: int = 0, taps: Optional[dict] = None) -> dict[str, Tensor]:
    """Steps ``start..T-1`` one by one through :meth:`Layer.step`: the fast path of layers whose
    steps are cheap (Elman, linear) and the reference the fused paths are tested against."""
    out = {p: [] for p in layer.points}
    taps = {p: tap.unbind(2) for p, tap in (taps or {}).items()}                    # one node, not T
    for t in range(start, prep.T):
        def visit(p: str, v: Tensor, t: int = t) -> Tensor:
            if p in taps:
                v = Join.apply(v, taps[p][t - start])
            out[p].append(v)
            return v
        state = layer.step(prep, state, t, visit)
    return {p: torch.stack(v, 2) for p, v in out.items()}                           # (M, B, T, D)
