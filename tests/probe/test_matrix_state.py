"""Matrix-state recurrences (linattn, deltanet, mamba, based): kernels, hooks, interventions, learning.

The references here are written out from the papers' equations, step by step, from the model's
parameters. Where a semantic choice follows peer code it says so:

- linear attention / GLA: S_t = diag(α_t) S_{t-1} + k_t v_tᵀ, o_t = S_tᵀ q_t with q scaled by
  1/√d_key, and GLA's gate α = σ(W x + b)^(1/16) — flash-linear-attention ``fla/ops/gla/naive.py``
  (commit 0315a70) and ``fla/layers/gla.py`` (gate_logit_normalizer = 16);
- the gated delta rule: S_t = α_t S_{t-1} + k_t (β_t (v_t - α_t S_{t-1}ᵀ k_t))ᵀ —
  ``fla/ops/gated_delta_rule/naive.py`` (PFCCLab mirror, commit 32e22c7);
- Based's feature map φ(q)ᵀφ(k) = 1 + qᵀk/√d + (qᵀk)²/(2d) and its normalised readout
  y = φ(q)ᵀ Σ φ(k)vᵀ / (φ(q)ᵀ Σ φ(k) + ε) — Zoology ``zoology/mixers/based.py`` and
  ``feature_maps/taylor.py`` (commits 0a9c682, 0c59e61).
"""
import pytest
import torch
import torch.nn.functional as F

import probe
import tasks
from probe.models import make
from probe.models.chunked import (delta_rule_chunked, delta_rule_step, feature_map, linear_attention_chunked,
                                  linear_attention_step)

TOKENS = {"input_kind": "tokens", "vocab_size": 5, "d_output": 3}
D64 = torch.float64
CONFIGS = {
    "linattn": dict(),
    "linattn-gla": dict(decay="input", heads=2),
    "linattn-elu": dict(feature="elu", normalize=True, conv=3),
    "deltanet": dict(heads=2, conv=2),
    "deltanet-plain": dict(gate=False, conv=0),
    "based": dict(d_key=3),
    "mamba": dict(state_dim=3),
}


def tokens(B=3, T=11, seed=0):
    return torch.randint(0, 5, (B, T), generator=torch.Generator().manual_seed(seed))


def model_for(name, members=1, hidden=8, **kw):
    arch = name.split("-")[0]
    model = make(arch, TOKENS, hidden=hidden, members=members, seed=3, **{**CONFIGS[name], **kw}).double()
    for layer in model.layers:
        layer.chunk = 4                      # several chunks and a partial one at T = 11
    return model


def grads(out, params):
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(9), dtype=out.dtype)
    return torch.autograd.grad((out * w).sum(), params, retain_graph=True)


# -- kernels -----------------------------------------------------------------------------------

@pytest.mark.parametrize("T", [1, 7, 16, 33])
@pytest.mark.parametrize("decay", ["none", "per_key", "scalar", "per_key_steep"])
def test_linear_attention_chunked_equals_steps(T, decay):
    g = torch.Generator().manual_seed(T)
    N, K, V = 3, 4, 5
    q, k = (torch.randn(N, T, K, generator=g, dtype=D64, requires_grad=True) for _ in range(2))
    v = torch.randn(N, T, V, generator=g, dtype=D64, requires_grad=True)
    S0 = torch.randn(N, K, V, generator=g, dtype=D64, requires_grad=True)
    width = {"none": 0, "per_key": K, "scalar": 1, "per_key_steep": K}[decay]
    steep = 20 if decay == "per_key_steep" else 2        # 20: past MAX_SPLIT_EXPONENT within a chunk
    log_a = (-steep * torch.rand(N, T, width, generator=g, dtype=D64)).requires_grad_() if width else None
    inputs = [x for x in (q, k, v, log_a, S0) if x is not None]
    o1, s1 = linear_attention_step(q, k, v, log_a, S0)
    o2, s2 = linear_attention_chunked(q, k, v, log_a, S0, chunk=8)
    assert (o1 - o2).abs().max() < 1e-10 and (s1 - s2).abs().max() < 1e-10
    for a, b in zip(grads(torch.cat([o1.flatten(), s1.flatten()]), inputs),
                    grads(torch.cat([o2.flatten(), s2.flatten()]), inputs)):
        assert (a - b).abs().max() < 1e-10


@pytest.mark.parametrize("T", [1, 7, 16, 33])
@pytest.mark.parametrize("gated", [False, True])
def test_delta_rule_chunked_equals_steps(T, gated):
    g = torch.Generator().manual_seed(T)
    N, K, V = 3, 4, 5
    q, k = (torch.randn(N, T, K, generator=g, dtype=D64, requires_grad=True) for _ in range(2))
    v = torch.randn(N, T, V, generator=g, dtype=D64, requires_grad=True)
    beta = torch.rand(N, T, generator=g, dtype=D64, requires_grad=True)
    S0 = torch.randn(N, K, V, generator=g, dtype=D64, requires_grad=True)
    log_a = (-torch.rand(N, T, generator=g, dtype=D64)).requires_grad_() if gated else None
    inputs = [x for x in (q, k, v, beta, log_a, S0) if x is not None]
    kn = F.normalize(k, dim=-1)                          # unit keys: (I - β k kᵀ) is a contraction
    o1, s1 = delta_rule_step(q, kn, v, beta, log_a, S0)
    o2, s2 = delta_rule_chunked(q, kn, v, beta, log_a, S0, chunk=8)
    assert (o1 - o2).abs().max() < 1e-10 and (s1 - s2).abs().max() < 1e-10
    for a, b in zip(grads(torch.cat([o1.flatten(), s1.flatten()]), inputs),
                    grads(torch.cat([o2.flatten(), s2.flatten()]), inputs)):
        assert (a - b).abs().max() < 1e-10


def test_delta_rule_writes_the_value_at_its_key():
    """β = 1 and a unit key: after the step S_tᵀ k = v exactly, whatever S held (the delta rule
    replaces the value stored at k, where linear attention would add to it)."""
    g = torch.Generator().manual_seed(0)
    k = F.normalize(torch.randn(2, 1, 4, generator=g, dtype=D64), dim=-1)
    v = torch.randn(2, 1, 3, generator=g, dtype=D64)
    S0 = torch.randn(2, 4, 3, generator=g, dtype=D64)
    out, S = delta_rule_step(k, k, v, torch.ones(2, 1, dtype=D64), None, S0)
    torch.testing.assert_close(out[:, 0], v[:, 0], atol=1e-12, rtol=0)
    out, _ = linear_attention_step(k, k, v, None, S0)
    assert (out[:, 0] - v[:, 0]).abs().max() > 0.1


def test_taylor_feature_map_approximates_exp():
    """Based's map: φ(q)ᵀφ(k) = 1 + s + s²/2 with s = qᵀk/√d (Zoology ``TaylorExp``)."""
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 6, 5, generator=g, dtype=D64).unbind(0)
    s = (q * k).sum(-1) / 5 ** 0.5
    got = (feature_map("taylor", q) * feature_map("taylor", k)).sum(-1)
    torch.testing.assert_close(got, 1 + s + s * s / 2, atol=1e-12, rtol=0)


@pytest.mark.parametrize("decay", ["none", "per_key", "scalar", "delta"])
def test_flash_linear_attention_kernels_equal_ours_on_gpu(decay):
    """Where fla and a GPU are present the layers run fla's kernels: they must agree with ours."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("fla")
    from probe.models.chunked import fla_delta_rule, fla_linear_attention, use_fla
    g = torch.Generator().manual_seed(0)
    N, T, K, V = 4, 100, 32, 32
    q, k, v = (torch.randn(N, T, d, generator=g) for d in (K, K, V))
    S0 = torch.randn(N, K, V, generator=g)
    k = F.normalize(k, dim=-1)
    if decay == "delta":
        beta, log_a = torch.rand(N, T, generator=g), -0.1 * torch.rand(N, T, generator=g)
        args = (q, k, v, beta, log_a, S0)
        ours, theirs = delta_rule_chunked, fla_delta_rule
    else:
        width = {"none": 0, "per_key": K, "scalar": 1}[decay]
        log_a = -0.1 * torch.rand(N, T, width, generator=g) if width else None
        args = (q, k, v, log_a, S0)
        ours, theirs = linear_attention_chunked, fla_linear_attention
    cuda = [None if a is None else a.cuda() for a in args]
    assert use_fla(cuda[0])
    o1, s1 = ours(*(None if a is None else a.double() for a in args))
    o2, s2 = theirs(*cuda)
    torch.testing.assert_close(o2.double().cpu(), o1, atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(s2.double().cpu(), s1, atol=2e-3, rtol=2e-3)


# -- the layer against a hand-written recurrence -------------------------------------------------

def conv(L, e, W, b):
    """Depthwise causal convolution of e (B, T, D), tap j weighing e_{t-j}."""
    K, (B, T, _) = W.shape[0], e.shape
    padded = torch.cat([e.new_zeros(B, K - 1, e.shape[-1]), e], 1)
    return b + sum(W[j] * padded[:, K - 1 - j: K - 1 - j + T] for j in range(K))


def hand_forward(model, x, edit=lambda name, t, v: v):
    """Logits (B, T, K) of a one-layer model, step by step from its parameters; each hooked
    value v (B, ...) at step t goes on as ``edit(name, t, v)``."""
    L = model.layers[0]
    if model.arch == "mamba":
        return hand_mamba(model, x, edit)
    B, T = x.shape
    h, dk, dv = L.heads, L.d_key, L.d_value
    e = model.embed.W_E[x]                                                       # (B, T, E)
    if L.conv:
        e = conv(L, e, L.W_conv, L.b_conv)
    S = e.new_zeros(B, h, L.F, L.V)
    ys = []
    for t in range(T):
        u = e[:, t]
        q, k, v = (u @ W.T + b for W, b in ((L.W_q, L.b_q), (L.W_k, L.b_k), (L.W_v, L.b_v)))
        q, k, v = q.view(B, h, dk), k.view(B, h, dk), v.view(B, h, dv)
        if model.arch == "deltanet":                     # fla: unit q and k, q scaled by 1/√d_key
            q, k = q / q.norm(dim=-1, keepdim=True) / dk ** 0.5, k / k.norm(dim=-1, keepdim=True)
            beta = torch.sigmoid(u @ L.W_beta.T + L.b_beta)[..., None, None]      # (B, h, 1, 1)
            alpha = torch.exp(-L.A_log.exp() * F.softplus(u @ L.W_alpha.T + L.dt_bias)) if L.gate else \
                torch.ones(B, h, dtype=u.dtype)
            a = alpha[..., None, None]
            kk = k[..., :, None] * k[..., None, :]                               # (B, h, K, K)
            S = a * (torch.eye(dk, dtype=u.dtype) - beta * kk) @ S + beta * k[..., :, None] * v[..., None, :]
        else:
            if L.feature == "identity":
                q = q / dk ** 0.5
            q, k = feature_map(L.feature, q), feature_map(L.feature, k)
            if L.normalize:
                v = torch.cat([v, torch.ones_like(v[..., :1])], -1)
            if L.decay == "input":
                alpha = torch.sigmoid(u @ L.W_a.T + L.b_a) ** (1 / 16)
                S = S * alpha.view(B, h, dk, 1)
            S = S + k[..., :, None] * v[..., None, :]
        S = edit("layers.0.hook_S", t, S.reshape(B, -1)).view(B, h, L.F, L.V)
        o = torch.einsum("bhf,bhfv->bhv", q, S)
        if getattr(L, "normalize", False):
            o = o[..., :-1] / (o[..., -1:] + L.eps)
        ys.append(o.reshape(B, -1) @ L.W_out.T @ model.readout.W_U.T + model.readout.b_U)
    return torch.stack(ys, 1)


def hand_mamba(model, x, edit):
    """Mamba's selective scan written out (``mamba_simple.py``'s reference semantics)."""
    L = model.layers[0]
    B, T = x.shape
    e = model.embed.W_E[x]
    u_all = F.silu(conv(L, e @ L.W_x.T, L.W_conv, L.b_conv))                    # (B, T, D)
    A = -L.A_log.exp()                                                           # (D, N)
    S = e.new_zeros(B, L.hidden, L.N)
    ys = []
    for t in range(T):
        u = u_all[:, t]
        dt = F.softplus(u @ L.W_r.T @ L.W_dt.T + L.b_dt)                          # (B, D)
        Bt, Ct = u @ L.W_B.T, u @ L.W_C.T                                        # (B, N)
        S = torch.exp(dt[..., None] * A) * S + (dt * u)[..., None] * Bt[:, None, :]
        S = edit("layers.0.hook_S", t, S.reshape(B, -1)).view(B, L.hidden, L.N)
        y = (S * Ct[:, None, :]).sum(-1) + L.D_skip * u
        y = y * F.silu(e[:, t] @ L.W_z.T)
        ys.append(y @ L.W_out.T @ model.readout.W_U.T + model.readout.b_U)
    return torch.stack(ys, 1)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_model_is_the_hand_written_recurrence(name):
    model, x = model_for(name), tokens()
    torch.testing.assert_close(model(x), hand_forward(model, x), atol=1e-10, rtol=0)


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("step", [0, 4, 10])
def test_intervening_on_S_is_the_hand_edited_recurrence(name, step):
    model, x = model_for(name), tokens()
    fn = lambda S: 0.5 * S.flip(-1) + 0.25                                       # noqa: E731
    out, cache = probe.intervene(model, x, [probe.Edit("layers.0.hook_S", step=step, fn=fn)],
                                 names_filter=["layers.0.hook_S"])
    ref = hand_forward(model, x, lambda n, t, v: fn(v) if (n, t) == ("layers.0.hook_S", step) else v)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=0)
    assert torch.equal(out[:, :step], model(x)[:, :step])                        # earlier steps bit for bit
    assert (out[:, step:] - model(x)[:, step:]).abs().max() > 1e-3
    assert cache["layers.0.hook_S"].shape == (3, 11, model.layers[0].width("hook_S"))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_reference_steps_equal_the_chunked_path_values_and_gradients(name):
    model, x = model_for(name, members=2), tokens()
    layer = model.layers[0]
    e = model.embed(x, False, D64)
    params = list(layer.parameters())
    y1, s1 = layer(e)
    y2, s2 = layer(e, fused=False)
    torch.testing.assert_close(y1, y2, atol=1e-10, rtol=0)
    for a, b in zip(grads(y1, params), grads(y2, params)):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_S_is_cached_only_when_named_and_caching_changes_nothing(name):
    model, x = model_for(name, members=2), tokens()
    y = model(x)
    _, cache = model.run_with_cache(x)
    assert "layers.0.hook_S" not in cache and "layers.0.hook_h" in cache
    y2, cache = model.run_with_cache(x, names_filter=["layers.0.hook_S", "layers.0.hook_h"])
    assert torch.equal(y, y2)
    L = model.layers[0]
    S = cache["layers.0.hook_S"]
    assert S.shape == (2, 3, 11, L.width("hook_S"))
    # the last cached S is the final state the model returns
    _, finals = model(x, return_state=True)
    final = finals[0][0] if isinstance(finals[0], tuple) else finals[0]
    torch.testing.assert_close(S[:, :, -1], final.flatten(2), atol=1e-10, rtol=0)


def test_a_cache_of_S_too_big_for_memory_is_refused(monkeypatch):
    model, x = model_for("linattn", hidden=16), tokens(B=4, T=50)
    monkeypatch.setenv("PROBE_MEMORY_BYTES", str(100_000))
    with pytest.raises(ValueError, match=r"layers\.0\.hook_S .*4 rows x 50 steps x 256 numbers.*needs about"):
        model.run_with_cache(x, names_filter=["layers.0.hook_S"])
    model.run_with_cache(x)                                                      # without S it runs


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_state_continues_a_sequence(name):
    model, x = model_for(name, members=2), tokens(T=11)
    whole = model(x)
    first, state = model(x[:, :6], return_state=True)
    second = model(x[:, 6:], state=state)
    torch.testing.assert_close(torch.cat([first, second], 2), whole, atol=1e-10, rtol=0)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_ensemble_slices_equal_members(name):
    ens, x = model_for(name, members=3), tokens()
    out = ens(x)
    for i in range(3):
        torch.testing.assert_close(out[i], ens.member(i).double()(x), atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_gradient_hooks_on_S_see_the_total_derivative(name):
    model, x = model_for(name), tokens(T=7)
    batch_targets = torch.randint(0, 3, (3, 7), generator=torch.Generator().manual_seed(1))
    _, cache = model.run_with_cache(x, targets=batch_targets, return_type="loss", incl_bwd=True,
                                    names_filter=["layers.0.hook_S"])
    taps = [None] * 7

    def tap(n, t, v):
        taps[t] = torch.zeros_like(v, requires_grad=True)
        return v + taps[t]
    logits = hand_forward(model, x, tap)
    loss = F.cross_entropy(logits.reshape(-1, 3), batch_targets.reshape(-1))
    ref = torch.stack(torch.autograd.grad(loss, taps), 1)
    torch.testing.assert_close(cache["layers.0.hook_S_grad"], ref, atol=1e-10, rtol=0)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_state_size_counts_the_carried_numbers(name):
    model = model_for(name, hidden=8)
    L = model.layers[0]
    if model.arch == "mamba":                           # h (D, N) and the convolution's last K-1 inputs
        assert model.state_size() == L.width("hook_S") + (L.conv - 1) * 8 == 8 * 3 + 3 * 8
        return
    conv = (L.conv - 1) * L.d_in if L.conv else 0
    assert model.state_size() == L.width("hook_S") + conv
    feature = 1 + 3 + 9 if model.arch == "based" else L.d_key   # Based: 1 + d + d² features of d = 3
    assert L.width("hook_S") == L.heads * feature * (L.d_value + int(getattr(L, "normalize", False)))


def test_bad_heads_is_named():
    with pytest.raises(ValueError, match="hidden .8. must be a multiple of heads .3."):
        make("linattn", TOKENS, hidden=8, heads=3)
    with pytest.raises(ValueError, match="unknown linattn decay 'gla'"):
        make("linattn", TOKENS, hidden=8, decay="gla")


# -- learning ----------------------------------------------------------------------------------

def mqar_accuracy(arch, steps=300, lr=3e-3, **kw):
    """Accuracy on a 2-pair MQAR after ``steps`` AdamW steps (batch 64)."""
    task = tasks.make("recall", vocab_size=16, seq_len=16, num_pairs=2,  # probe's MQAR layout before 0.3
                      random_non_queries=False, echo_values=True, strict=False)
    torch.manual_seed(0)
    model = make(arch, task, hidden=32, seed=0, **kw)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    for step in range(steps):
        loss = model(task.sample(64, seed=step), return_type="loss")
        opt.zero_grad()
        loss.backward()
        opt.step()
    held_out = task.sample(512, seed=10**6)
    with torch.no_grad():
        return task.evaluate(model(held_out.inputs), held_out)["accuracy"]


@pytest.mark.parametrize("arch,kw,lr", [("linattn", dict(conv=2), 3e-3), ("deltanet", {}, 3e-3),
                                        ("based", dict(d_key=4), 3e-3),
                                        pytest.param("mamba", {}, 1e-2, marks=pytest.mark.slow)])
def test_learns_two_pair_mqar(arch, kw, lr):
    assert mqar_accuracy(arch, lr=lr, **kw) >= 0.9
