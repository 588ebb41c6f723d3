"""Hooks as a TransformerLens user writes them: edits feed the recurrence, caches change nothing.

The reference is :func:`hand_forward`, each architecture's equations written out here step by
step from the model's parameters, with every hooked value passed through ``edit``.
"""
import pytest
import torch
import torch.nn.functional as F

import probe
from probe.models import make

TOKENS = {"input_kind": "tokens", "vocab_size": 5, "d_output": 3}
ARCHS = ["gru", "lstm", "elman", "linear", "lru", "hawk"]
LAYER_HOOKS = {
    "gru": ["hook_r", "hook_z", "hook_n", "hook_h"],
    "lstm": ["hook_i", "hook_f", "hook_g", "hook_o", "hook_c", "hook_h"],
    "elman": ["hook_pre", "hook_h"],
    "linear": ["hook_pre", "hook_h"],
    "lru": ["hook_a", "hook_b", "hook_h"],
    "hawk": ["hook_a", "hook_gate_x", "hook_h", "hook_gate_out"],
}
T, STEP = 8, 3


def tokens(B=3, T=T, seed=0):
    return torch.randint(0, 5, (B, T), generator=torch.Generator().manual_seed(seed))


def model_for(arch, dtype=torch.float64, **kw):
    extra = {"elman": dict(h0="ones"), "hawk": dict(decay="input")}.get(arch, {})
    return make(arch, TOKENS, hidden=6, seed=2, **extra, **kw).to(dtype)


def all_hooks(arch):
    return ["hook_embed", *(f"layers.0.{h}" for h in LAYER_HOOKS[arch]), "hook_logits"]


def hand_forward(model, x, edit=lambda name, t, v: v):
    """A plain one-layer model's logits (B, T, K), written out step by step; every hooked value v
    (B, D) at step t goes on as ``edit(name, t, v)``."""
    L, arch = model.layers[0], model.arch
    B, T_ = x.shape
    e = [edit("hook_embed", t, model.embed.W_E[x[:, t]]) for t in range(T_)]
    ed = lambda name, t, v: edit(f"layers.0.{name}", t, v)  # noqa: E731
    sig = torch.sigmoid
    h = torch.zeros(B, L.hidden, dtype=model.readout.W_U.dtype)
    c = torch.zeros_like(h)
    if arch == "elman":
        h = torch.ones_like(h)
    if arch == "lru":
        h = torch.zeros(B, L.N, dtype=torch.complex128)
    ys = []
    for t in range(T_):
        if arch == "gru":
            gi, gh = e[t] @ L.W_ih.T + L.b_ih, h @ L.W_hh.T + L.b_hh
            H = L.hidden
            r = ed("hook_r", t, sig(gi[:, :H] + gh[:, :H]))
            z = ed("hook_z", t, sig(gi[:, H:2 * H] + gh[:, H:2 * H]))
            n = ed("hook_n", t, torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:]))
            h = y = ed("hook_h", t, (1 - z) * n + z * h)
        elif arch == "lstm":
            p = e[t] @ L.W_ih.T + L.b_ih + h @ L.W_hh.T + L.b_hh
            pi, pf, pg, po = p.chunk(4, -1)
            i, f = ed("hook_i", t, sig(pi)), ed("hook_f", t, sig(pf))
            g, o = ed("hook_g", t, torch.tanh(pg)), ed("hook_o", t, sig(po))
            c = ed("hook_c", t, f * c + i * g)
            h = y = ed("hook_h", t, o * torch.tanh(c))
        elif arch in ("elman", "linear"):
            pre = h @ L.W.T + e[t] @ L.U.T + (L.b if arch == "elman" else 0)
            pre = ed("hook_pre", t, pre)
            h = y = ed("hook_h", t, torch.tanh(pre) if arch == "elman" else pre)
        elif arch == "lru":
            lam = torch.exp(torch.complex(-torch.exp(L.nu_log), torch.exp(L.theta_log)))
            a = ed("hook_a", t, lam.expand(B, L.N))
            b = ed("hook_b", t, torch.exp(L.gamma_log) * torch.complex(e[t] @ L.B_re.T, e[t] @ L.B_im.T))
            hr = ed("hook_h", t, torch.view_as_real(a * h + b).permute(0, 2, 1).flatten(1))  # [Re, Im]
            h = torch.complex(hr[:, :L.N], hr[:, L.N:])
            y = F.gelu(hr[:, :L.N] @ L.C_re.T - hr[:, L.N:] @ L.C_im.T + e[t] @ L.D.T)
        else:  # hawk
            rr = sig(e[t] @ L.W_r.T + L.b_r)
            a = ed("hook_a", t, sig(L.Lambda) ** (L.c * rr))
            gx = ed("hook_gate_x", t, sig(e[t] @ L.W_gx.T + L.b_gx))
            h = ed("hook_h", t, a * h + gx * (e[t] @ L.W_x.T) * torch.sqrt(1 - a * a))
            go = ed("hook_gate_out", t, F.gelu(e[t] @ L.W_go.T + L.b_go))
            y = (go * h) @ L.W_out.T
        ys.append(edit("hook_logits", t, y @ model.readout.W_U.T + model.readout.b_U))
    return torch.stack(ys, 1)


def zero_step(x, hook):
    """What a TransformerLens user writes first: zero one position, in place."""
    x[..., STEP, :] = 0
    return x


def zero_at(name, step=STEP):
    return lambda n, t, v: torch.zeros_like(v) if (n, t) == (name, step) else v


@pytest.mark.parametrize("arch", ARCHS)
def test_hand_forward_is_the_model(arch):
    model, x = model_for(arch), tokens()
    torch.testing.assert_close(model(x), hand_forward(model, x), atol=1e-12, rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_zeroing_each_hook_point_acts_as_a_hand_edited_forward(arch):
    model, x = model_for(arch), tokens()
    clean = model(x)
    for name in all_hooks(arch):
        edited = model.run_with_hooks(x, fwd_hooks=[(name, zero_step)])
        torch.testing.assert_close(edited, hand_forward(model, x, zero_at(name)), atol=1e-12, rtol=0, msg=name)
        assert torch.equal(edited[:, :STEP], clean[:, :STEP]), name
        assert (edited[:, STEP:] - clean[:, STEP:]).abs().max() > 1e-6, name
        if name not in ("hook_logits", "layers.0.hook_gate_out"):   # these feed no later step
            assert (edited[:, STEP + 1:] - clean[:, STEP + 1:]).abs().max() > 1e-6, name


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("members", [1, 2])
def test_hook_edits_equal_intervene_bit_for_bit(arch, members):
    model, x = model_for(arch, dtype=torch.float32, layers=2, members=members), tokens()
    names = [n for n in model.hook_dict if n != "hook_logits"]
    for name in names:
        out, cache = model.run_with_cache(x)  # warm, and a clean reference
        with model.hooks(fwd_hooks=[(name, zero_step)]):
            hooked, hooked_cache = model.run_with_cache(x)
        edited, edited_cache = probe.intervene(model, x, [probe.Edit(name, STEP, probe.zero_ablate())])
        assert torch.equal(hooked, edited), name
        assert hooked_cache.keys() == edited_cache.keys()
        for key in edited_cache:
            assert torch.equal(hooked_cache[key], edited_cache[key]), (name, key)
        assert torch.equal(edited[..., :STEP, :], out[..., :STEP, :]), name


@pytest.mark.parametrize("arch", ["gru", "lstm", "lru"])
def test_an_edit_at_every_step_feeds_every_next_step(arch):
    model, x = model_for(arch), tokens()
    halve = lambda n, t, v: v * 0.5 if n == "layers.0.hook_h" else v  # noqa: E731
    out = model.run_with_hooks(x, fwd_hooks=[("layers.0.hook_h", lambda v, hook: v * 0.5)])
    torch.testing.assert_close(out, hand_forward(model, x, halve), atol=1e-12, rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("members", [1, 3])
def test_caching_and_no_op_hooks_never_change_outputs(arch, members):
    model, x = model_for(arch, dtype=torch.float32, layers=2, members=members), tokens(B=4, T=13)
    clean = model(x)
    every = lambda name: True  # noqa: E731
    variants = {
        "cache": lambda: model.run_with_cache(x)[0],
        "none": lambda: model.run_with_hooks(x, fwd_hooks=[(every, lambda v, hook: None)]),
        "same": lambda: model.run_with_hooks(x, fwd_hooks=[(every, lambda v, hook: v)]),
        "copy": lambda: model.run_with_hooks(x, fwd_hooks=[(every, lambda v, hook: v.clone())]),
        "pos_slice": lambda: model.run_with_cache(x, pos_slice=-1)[0],
    }
    for kind, run in variants.items():
        assert torch.equal(run(), clean), kind
    targets = tokens(B=4, T=13, seed=1) % 3
    loss = model(x, return_type="loss", targets=targets)
    cached_loss, cache = model.run_with_cache(x, return_type="loss", targets=targets, incl_bwd=True)
    assert torch.equal(cached_loss, loss)
    assert {f"{n}_grad" for n in model.hook_dict} <= set(cache.keys())


@pytest.mark.parametrize("arch", ARCHS)
def test_gradient_hooks_see_the_total_derivative(arch):
    # the hand reference: a zero added to each hooked value; its gradient is the loss's total
    # derivative with respect to that value, through the readout and every later step
    model, x = model_for(arch), tokens()
    targets = tokens(seed=1) % 3
    names = [f"layers.0.{h}" for h in LAYER_HOOKS[arch]]
    leaves = {}

    def tap(name, t, v):
        if name not in names:
            return v
        leaves[name, t] = torch.zeros_like(v, requires_grad=True)
        return v + leaves[name, t]

    hand = hand_forward(model, x, tap)
    F.cross_entropy(hand.flatten(0, 1), targets.flatten()).backward()
    _, cache = model.run_with_cache(x, return_type="loss", targets=targets, incl_bwd=True, names_filter=names)
    for name in names:
        want = torch.stack([leaves[name, t].grad for t in range(T)], 1)
        if want.is_complex() and name.endswith("hook_h"):
            want = torch.cat([want.real, want.imag], -1)  # LRU's hook_h is [Re h, Im h]
        torch.testing.assert_close(cache[f"{name}_grad"], want, atol=1e-12, rtol=0, msg=name)


@pytest.mark.parametrize("arch", ["gru", "lstm", "elman", "lru"])
def test_gradient_hooks_with_an_edit_in_the_recurrence(arch):
    model, x = model_for(arch), tokens()
    targets = tokens(seed=1) % 3
    name = "layers.0.hook_h"
    leaves = {}

    def edit_and_tap(n, t, v):
        if n != name:
            return v
        leaves[t] = torch.zeros_like(v, requires_grad=True)
        return (v * 2 if t == STEP else v) + leaves[t]

    hand = hand_forward(model, x, edit_and_tap)
    F.cross_entropy(hand.flatten(0, 1), targets.flatten()).backward()
    hand_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    with model.hooks(fwd_hooks=[(name, probe.step_hook({STEP: probe.scale(2.0)}))]):
        _, cache = model.run_with_cache(x, return_type="loss", targets=targets, incl_bwd=True, names_filter=[name])
    torch.testing.assert_close(cache[f"{name}_grad"], torch.stack([leaves[t].grad for t in range(T)], 1),
                               atol=1e-12, rtol=0)
    for want, p in zip(hand_grads, model.parameters()):   # and the weights learn through the edit
        torch.testing.assert_close(p.grad, want, atol=1e-12, rtol=0)


def test_a_hook_returning_the_wrong_shape_is_named():
    model = model_for("gru")
    with pytest.raises(ValueError, match=r"layers.0.hook_h.*\(3, 8, 6\).*\(3, 6\)"):
        model.run_with_hooks(tokens(), fwd_hooks=[("layers.0.hook_h", lambda v, hook: v[:, 0])])


@pytest.mark.parametrize("arch", ARCHS)
def test_no_op_hooks_change_nothing_with_vector_and_one_hot_inputs(arch):
    # one-hot and vector inputs reach an ensemble broadcast over members (a zero stride)
    vectors = {"input_kind": "vectors", "d_input": 4, "d_output": 2}
    x = torch.randn(3, 9, 4, generator=torch.Generator().manual_seed(0))
    for task, inputs in ((vectors, x), (TOKENS, tokens())):
        model = make(arch, task, hidden=6, members=3, embedding="onehot")
        clean = model(inputs)
        assert torch.equal(model.run_with_cache(inputs)[0], clean)
        assert torch.equal(model.run_with_hooks(inputs, fwd_hooks=[(lambda n: True, lambda v, hook: v.clone())]), clean)


@pytest.mark.parametrize("arch", ARCHS)
def test_a_layer_called_alone_takes_step_edits_and_the_reference_path(arch):
    model, x = model_for(arch, dtype=torch.float32), tokens()
    layer, emb = model.layers[0], model.embed.W_E[x].unsqueeze(0)         # (1, B, T, E)
    steps = {STEP: probe.zero_ablate()}
    with model.hooks(fwd_hooks=[("layers.0.hook_h", probe.step_hook(steps))]):
        want, _ = layer(emb)
    got, _ = layer(emb, None, {"hook_h": steps})
    assert torch.equal(got, want)
    assert not layer.hook_h._forward_hooks                                 # the edit's hook is gone
    torch.testing.assert_close(layer(emb)[0], layer(emb, fused=False)[0], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("arch", ["gru", "lstm"])
def test_an_edit_leaves_what_its_step_computed_before_it_as_it_was(arch):
    # the points before hook_h keep the fast run's values: the reference step recomputing them
    # could round differently (a BLAS matmul's last bit may depend on memory alignment)
    model, x = make(arch, TOKENS, hidden=7, members=3, seed=1, embedding="onehot"), tokens()
    _, clean = model.run_with_cache(x)
    _, edited = probe.intervene(model, x, [probe.Edit("layers.0.hook_h", STEP, probe.scale(2.0))])
    for name in LAYER_HOOKS[arch][:-1]:                                    # every point before hook_h
        key = f"layers.0.{name}"
        assert torch.equal(edited[key][..., :STEP + 1, :], clean[key][..., :STEP + 1, :]), name
    assert torch.equal(edited["layers.0.hook_h"][..., STEP, :], 2 * clean["layers.0.hook_h"][..., STEP, :])
