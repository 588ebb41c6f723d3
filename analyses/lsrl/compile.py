"""The front door: compile a program into a ``probe.models`` model of a chosen architecture.

    c = compile(prog, "elman")                  # or "linear", "lstm", "gru", "hawk"
    y = c(inputs)                               # (B, T, d_output) through the torch model
    logits, cache = c.model.run_with_cache(c.inputs(inputs))     # hooks work as on trained models
    c.state_size, c.chain.widths, c.unit_labels

Pipeline: :func:`~analyses.lsrl.analysis.analyse` (ranges over ``horizon`` steps),
:func:`~analyses.lsrl.harden.harden` (constructions that keep their precision on the target; listed
in ``c.constructions``), :func:`~analyses.lsrl.chain.linearise` (fold, absorb, schedule, route pass-through
units), :func:`~analyses.lsrl.chain.zero_init` for every target but elman (whose h0 is learned),
then one exporter call per stage. The model has one layer per stage, all of the widest stage's
width (narrower layers are padded with units that stay 0), ``embedding="onehot"`` so the first
layer reads the program's input directly, and the program's output as its linear readout.

``input_kind="tokens"`` makes a token model: the program's Input must then be the one-hot token
(dimension = vocabulary). ``linear`` and ``hawk`` have no bias in their input map; for vector
inputs the model gets one extra input channel held at 1, which :meth:`Compiled.inputs` appends.
For the exact targets (linear, elman, hawk) :meth:`Compiled.exact` runs the exported weights'
own equations in exact arithmetic. Every compilation carries ``c.bound``
(:mod:`analyses.lsrl.bound`), a worst-case bound on |model - program| over the Input's declared
range and ``horizon`` steps; above ``tolerance`` (default 1e-6) compile refuses, naming the block.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import math

import numpy as np
import sympy
import torch

import probe
from analyses.lsrl.backends import backend as make_backend
from analyses.lsrl.backends import float_array, run_steps
from analyses.lsrl.chain import Chain, linearise, zero_init
from analyses.lsrl.export import EXACT_BUILDERS, InputSpec, LayerPlan, first_spec
from analyses.lsrl.export_gated import GATED_BUILDERS, GATES
from analyses.lsrl.program import Program

TARGETS = ("linear", "elman", "lstm", "gru", "hawk")
ARCH_PARAMS = {"linear": {"scan": "loop"}, "elman": {"nonlinearity": "relu", "h0": "learned"},
               "lstm": {}, "gru": {}, "hawk": {"gates": "linear", "normalize": False, "decay": "fixed"}}
_AXES = {"W": "hh", "U": "hx", "b": "h", "h0": "h", "W_x": "hx", "W_gx": "hx", "b_gx": "h", "Lambda": "h",
         "W_go": "hx", "b_go": "h", "W_out": "hh"}


def _pad(M, axes: str, H: int, m: int) -> np.ndarray:
    A = M if isinstance(M, np.ndarray) else float_array(M)
    A = A.reshape(A.shape[0], -1) if len(axes) == 2 else A.reshape(-1)
    shape = tuple(H if a == "h" else m for a in axes)
    out = np.zeros(shape)
    out[tuple(slice(0, s) for s in A.shape)] = A
    return out


def _layer_tensors(target: str, plan: LayerPlan, H: int, m: int) -> dict[str, np.ndarray]:
    if target in EXACT_BUILDERS:
        return {k: _pad(v, _AXES[k], H, m) for k, v in plan.params.items()}
    g = plan.gates
    out = {"W_ih": np.concatenate([_pad(g[k]["x"], "hx", H, m) for k in GATES[target]]),
           "W_hh": np.concatenate([_pad(g[k]["h"], "hh", H, m) for k in GATES[target]]),
           "b_ih": np.concatenate([_pad(g[k]["b"], "h", H, m) for k in GATES[target]])}
    out["b_hh"] = (np.concatenate([_pad(g[k]["bh"], "h", H, m) for k in GATES[target]]) if target == "gru"
                   else np.zeros_like(out["b_ih"]))
    return out


@dataclass
class Compiled:
    """A program compiled to one architecture; see the module docstring."""

    program: Program
    target: str
    chain: Chain
    plans: list[LayerPlan]
    model: Any
    input_kind: str
    const_channel: bool
    readout: tuple                       # (W_U, b_U), exact for exact targets
    options: dict = field(default_factory=dict)
    source: Any = None                   # the program as given (``program`` is it after harden)
    bound: Any = None                    # the compile-time error bound (analyses.lsrl.bound.Bound)
    constructions: list = field(default_factory=list)   # what harden changed, one line each

    @property
    def exact_target(self) -> bool:
        return self.target in EXACT_BUILDERS

    @property
    def hidden(self) -> int:
        return self.model.config["hidden"]

    @property
    def state_size(self) -> int:
        """Numbers the model carries between steps (all layers, padded width; LSTM counts h and c)."""
        return self.model.state_size()

    @property
    def units(self) -> list[int]:
        """Units each layer really uses (before padding to the widest)."""
        return [p.hidden for p in self.plans]

    @property
    def unit_labels(self) -> list[list[str]]:
        return [p.labels for p in self.plans]

    def inputs(self, x) -> torch.Tensor:
        """Model inputs for program inputs x (B, T, d_input): token ids, or vectors (+ the constant 1)."""
        x = torch.as_tensor(np.asarray(x, dtype=np.float64) if not torch.is_tensor(x) else x)
        if self.input_kind == "tokens":
            return x.argmax(-1)                                                   # (B, T)
        x = x.to(next(self.model.parameters()).dtype)
        if self.const_channel:
            x = torch.cat([x, torch.ones_like(x[..., :1])], -1)                   # (B, T, d_input + 1)
        return x

    @torch.no_grad()
    def __call__(self, x) -> torch.Tensor:
        """Program outputs (B, T, d_output) computed by the model."""
        return self.model(self.inputs(x))

    def save(self, path) -> Path:
        """Write the program, the compile options and the weights to the folder ``path``
        (``compiled.json`` and ``weights.safetensors``); :func:`load_compiled` reads them back."""
        from probe._io import save_tensors, write_json
        from analyses.lsrl.serial import program_to_json
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        write_json(path / "compiled.json", {"format": "probe.lsrl.compiled/1", "target": self.target,
                                            "call": self.options["call"],
                                            "program": program_to_json(self.source or self.program)})
        save_tensors(path / "weights.safetensors", dict(self.model.state_dict()), {"target": self.target})
        return path

    def exact(self) -> "ExactModel":
        """The exported layers' equations in exact arithmetic (linear, elman and hawk only)."""
        if not self.exact_target:
            raise ValueError(f"target {self.target!r} uses sigmoid/tanh; only linear, elman and hawk run exactly")
        return ExactModel(self)

    @torch.no_grad()
    def channels(self, x) -> list[np.ndarray]:
        """Every stage's channel values (program variables) per layer, (B, T, n_stage), read from hooks."""
        _, cache = self.model.run_with_cache(self.inputs(x))
        out = []
        for i, (plan, stage) in enumerate(zip(self.plans, self.chain.stages)):
            h = cache[f"layers.{i}.hook_h"].double().numpy()[..., :plan.hidden]     # (B, T, H_i)
            D = plan.out.D if isinstance(plan.out.D, np.ndarray) else float_array(plan.out.D)
            d = plan.out.d if isinstance(plan.out.d, np.ndarray) else float_array(plan.out.d)
            off = float_array(stage.offset).reshape(-1)
            out.append(h @ D.T + d.reshape(-1) + off)                             # (B, T, n)
        return out


class ExactModel:
    """Exact step-by-step run of an exported linear / elman / hawk model (Interpreter protocol)."""

    def __init__(self, c: Compiled, backend: str = "symbolic"):
        self.c, self.be = c, make_backend(backend)
        self.decay = [sympy.ImmutableSparseMatrix.diag(*list(p.params["Lambda"])) if c.target == "hawk" else None
                      for p in c.plans]                                   # Λ as a matrix, built once

    def initial(self, B: int) -> list:
        init = []
        for p in self.c.plans:
            h0 = p.params.get("h0")
            init.append(self.be.const(h0, B) if h0 is not None else self.be.const(sympy.zeros(p.hidden, 1), B))
        return init

    def repeat(self, state, k):
        return [self.be.repeat(v, k) for v in state]

    def step(self, state, x):
        be, new = self.be, []
        if self.c.const_channel:
            x = be.cat([x, be.const(sympy.ones(1, 1), x.shape[0])])
        for p, h, lam in zip(self.c.plans, state, self.decay):
            P = p.params
            if self.c.target == "linear":
                h = be.affine(h, P["W"]) + be.affine(x, P["U"])
            elif self.c.target == "elman":
                h = be.relu(be.affine(h, P["W"]) + be.affine(x, P["U"], P["b"]))
            else:
                h = be.affine(h, lam) + be.mul(be.affine(x, P["W_gx"], P["b_gx"]), be.affine(x, P["W_x"]))
                x_next = be.affine(be.mul(be.affine(x, P["W_go"], P["b_go"]), h), P["W_out"])
            new.append(h)
            x = x_next if self.c.target == "hawk" else h
        return new, be.affine(x, *self.c.readout)

    def run(self, inputs):
        return run_steps(self, inputs)                                              # (B, T, d_output)


DEFAULT_TOLERANCE = 1e-6
DEFAULT_HORIZON = 1000


def _unit_eps(target: str, stage, ur, dtype: torch.dtype) -> np.ndarray:
    """Small-signal scale per unit: ε Y = sqrt(u) (the tanh's cubic error then sits at the round-off),
    or u^(1/3) for a gru ReLU / gate pair, whose read-out also cancels ±1 terms (error u / ε)."""
    from analyses.lsrl.bound import unit_roundoff
    u = unit_roundoff(dtype)
    pair = np.array([target == "gru" and (k == "mul" or (k == "relu" and not stage.binary[r]))
                     for r, k in enumerate(stage.kind)])
    delta = np.where(pair, u ** (1 / 3), math.sqrt(u))
    Y = np.where(np.isfinite(ur.Y), np.maximum(ur.Y, 1.0), 1.0)
    return delta / Y


def compile(program: Program, target: Literal["linear", "elman", "lstm", "gru", "hawk"],
            input_kind: Literal["vectors", "tokens"] = "vectors", dtype: torch.dtype = torch.float64,
            eps: Optional[float] = None, margin: float = 1e-12, sat: float = 1000.0,
            tolerance: Optional[float] = DEFAULT_TOLERANCE, horizon: int = DEFAULT_HORIZON,
            harden: bool = True) -> Compiled:
    """Compile ``program`` into a ``probe.models`` model of architecture ``target``.

    Parameters
    ----------
    program : the LSRL program.
    target : one of linear, elman, lstm, gru, hawk.
    input_kind : "vectors" (inputs (B, T, d_input)) or "tokens" (the Input is a one-hot token).
    dtype : the model's dtype (float64 by default; float32 to measure precision).
    eps : small-signal scale of lstm / gru (see :mod:`analyses.lsrl.export_gated`). Default: one per
        unit, from the largest value the unit carries over the horizon (ε Y = sqrt(u), u^(1/3) for a
        gru pair); a number sets every unit.
    margin : width of the ReLU gates' transition on lstm / gru (each ReLU adds at most this much error).
    sat : the bias that pins a constant gate (σ(±1000) is exactly 0 or 1).
    tolerance : refuse the compilation when the compile-time bound on the output error
        (:mod:`analyses.lsrl.bound`, over the Input's declared range and ``horizon`` steps)
        exceeds this; default 1e-6; ``None`` compiles whatever the bound.
    horizon : the longest input the bound (and the per-unit ε) covers; default 1000.
    harden : replace sugar constructions by equivalent ones that keep their precision on the
        target (:mod:`analyses.lsrl.harden`); the changes are listed in ``Compiled.constructions``.

    Raises ``ValueError`` naming the block when ``target`` cannot express it, and naming the block
    and the bound when the bound exceeds ``tolerance``.
    """
    from analyses.lsrl.analysis import analyse
    from analyses.lsrl.bound import error_bound, input_magnitude, stage_ranges, unit_roundoff
    from analyses.lsrl.harden import harden as harden_program
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; valid choices: {', '.join(TARGETS)}")
    if input_kind not in ("vectors", "tokens"):
        raise ValueError(f"input_kind must be vectors or tokens, got {input_kind!r}")
    if not isinstance(program, Program):
        raise TypeError(f"compile needs a Program, got {type(program).__name__}")
    if tolerance is not None and not (isinstance(tolerance, (int, float)) and tolerance > 0):
        raise ValueError(f"tolerance must be a positive number or None, got {tolerance!r}")
    source = program
    info = analyse(program, horizon)
    constructions: list[str] = []
    if harden:
        for _ in range(4):                        # a rewrite can reveal more (a shift counter has a grid)
            hardened, done = harden_program(program, target, info)
            if not done:
                break
            constructions += done
            program, info = hardened, analyse(hardened, horizon)
    chain = linearise(program)
    if target != "elman":
        chain = zero_init(chain)
    ranges = [stage_ranges(st, program, info) for st in chain.stages]
    if target in GATED_BUILDERS:
        eps_units = ([_unit_eps(target, st, ur, dtype) for st, ur in zip(chain.stages, ranges)] if eps is None
                     else [np.full(st.n, float(eps)) for st in chain.stages])
    else:
        eps_units = [np.zeros(st.n) for st in chain.stages]
    tokens = input_kind == "tokens"
    spec: InputSpec = first_spec(program.d_input, tokens, const=target in ("linear", "hawk"))
    m0, plans = spec.m, []
    for stage, ev in zip(chain.stages, eps_units):
        if target in EXACT_BUILDERS:
            plan = EXACT_BUILDERS[target](stage, spec)
        else:
            plan = GATED_BUILDERS[target](stage, spec, eps=ev, margin=margin, sat=sat)
        plans.append(plan)
        spec = plan.out
    if target in EXACT_BUILDERS:
        W_U = sympy.ImmutableSparseMatrix(chain.W_out * spec.D)
        b_U = sympy.ImmutableSparseMatrix(chain.W_out * spec.d + chain.b_out)
    else:
        W_out = float_array(chain.W_out)
        W_U, b_U = W_out @ spec.D, W_out @ spec.d.reshape(-1) + float_array(chain.b_out).reshape(-1)
    H = max(p.hidden for p in plans)
    dims = ({"input_kind": "tokens", "vocab_size": m0, "d_output": program.d_output} if tokens else
            {"input_kind": "vectors", "d_input": m0, "d_output": program.d_output})
    model = probe.models.make(target, dims, hidden=H, layers=len(plans), embedding="onehot",
                              **ARCH_PARAMS[target]).to(dtype)
    with torch.no_grad():
        for i, (layer, plan) in enumerate(zip(model.layers, plans)):
            for name, value in _layer_tensors(target, plan, H, m0 if i == 0 else H).items():
                getattr(layer, name).copy_(torch.as_tensor(value, dtype=dtype))
        W_Uf = W_U if isinstance(W_U, np.ndarray) else float_array(W_U)                # (d_output, H_last)
        b_Uf = b_U if isinstance(b_U, np.ndarray) else float_array(b_U)
        model.readout.W_U.copy_(torch.as_tensor(np.pad(W_Uf, ((0, 0), (0, H - W_Uf.shape[1]))), dtype=dtype))
        model.readout.b_U.copy_(torch.as_tensor(b_Uf.reshape(-1), dtype=dtype))
    model.eval()
    bound = error_bound(chain, program, info, target, unit_roundoff(dtype), eps_units, margin, horizon,
                        input_magnitude(program))
    if tolerance is not None and not bound.value <= tolerance:
        node, at = bound.culprit(tolerance)
        why = (" (declare the Input's low and high: the bound covers only declared ranges)"
               if not np.isfinite(input_magnitude(program)).all() else "")
        raise ValueError(f"compile {source.name!r} to {target!r}: output error bound {bound.value:.3g} exceeds "
                         f"tolerance {tolerance:g} over {horizon} steps; block '{node}' already carries error "
                         f"{at:.3g}{why}; pass tolerance=None to compile anyway")
    c = Compiled(program, target, chain, plans, model, input_kind, target in ("linear", "hawk") and not tokens,
                 (W_U, b_U), {"eps": eps, "margin": margin, "sat": sat, "dtype": str(dtype),
                              "call": {"input_kind": input_kind, "dtype": str(dtype), "eps": eps, "margin": margin,
                                       "sat": sat, "tolerance": tolerance, "horizon": horizon, "harden": harden}})
    c.source, c.bound, c.constructions = source, bound, constructions
    return c


def load_compiled(path) -> Compiled:
    """A compiled model written by :meth:`Compiled.save`: the program is recompiled with the stored
    options (for the chain and read-outs) and the stored weights are put in, so outputs are
    bit-identical to the saved model's."""
    from probe._io import load_tensors, read_json
    from analyses.lsrl.serial import program_from_json
    path = Path(path)
    meta = read_json(path / "compiled.json")
    if meta.get("format") != "probe.lsrl.compiled/1":
        raise ValueError(f"{path}: not a compiled LSRL model (format {meta.get('format')!r})")
    call = dict(meta["call"])
    call["dtype"] = getattr(torch, call["dtype"].removeprefix("torch."))
    c = compile(program_from_json(meta["program"]), meta["target"], **call)
    tensors, _ = load_tensors(path / "weights.safetensors")
    state = c.model.state_dict()
    if set(tensors) != set(state) or any(tensors[k].shape != state[k].shape for k in state):
        raise ValueError(f"{path}: stored weights do not fit the recompiled {meta['target']} model")
    c.model.load_state_dict(tensors)
    return c


__all__ = ["ARCH_PARAMS", "DEFAULT_HORIZON", "DEFAULT_TOLERANCE", "Compiled", "ExactModel", "TARGETS", "compile", "load_compiled"]
