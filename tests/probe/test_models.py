"""Models: torch equivalence, hooks, ensembles, determinism, bad input."""
import pytest
import torch

import probe
from probe.models import make, names

TOKENS = {"input_kind": "tokens", "vocab_size": 5, "d_output": 3}
VECTORS = {"input_kind": "vectors", "d_input": 4, "d_output": 2}
GATES = {
    "gru": ["hook_r", "hook_z", "hook_n"],
    "lstm": ["hook_i", "hook_f", "hook_g", "hook_o", "hook_c"],
    "elman": ["hook_pre"],
    "linear": ["hook_pre"],
    "lru": ["hook_a", "hook_b"],
    "hawk": ["hook_a", "hook_gate_x", "hook_gate_out"],
}


def tokens(B=4, T=9, seed=0):
    return torch.randint(0, 5, (B, T), generator=torch.Generator().manual_seed(seed))


def test_names_cover_design():
    assert set(GATES) <= set(names())


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("layers", [1, 2])
def test_equals_torch_with_copied_weights(kind, layers):
    torch.manual_seed(0)
    ref = (torch.nn.GRU if kind == "gru" else torch.nn.LSTM)(4, 16, num_layers=layers, batch_first=True)
    ours = make(kind, VECTORS, hidden=16, layers=layers, embedding="onehot")
    with torch.no_grad():
        for i, layer in enumerate(ours.layers):
            for ours_name, ref_name in [("W_ih", "weight_ih"), ("W_hh", "weight_hh"), ("b_ih", "bias_ih"),
                                        ("b_hh", "bias_hh")]:
                getattr(layer, ours_name).copy_(getattr(ref, f"{ref_name}_l{i}"))
    x = torch.randn(3, 20, 4)
    ref_out, ref_state = ref(x)
    _, cache = ours.run_with_cache(x)
    torch.testing.assert_close(cache[f"layers.{layers - 1}.hook_h"], ref_out, atol=1e-5, rtol=0)
    _, finals = ours(x, return_state=True)
    ref_h = ref_state if kind == "gru" else ref_state[0]
    for i in range(layers):
        ours_h = finals[i] if kind == "gru" else finals[i][0]
        torch.testing.assert_close(ours_h, ref_h[i], atol=1e-5, rtol=0)
    if kind == "lstm":
        torch.testing.assert_close(finals[-1][1], ref_state[1][-1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", sorted(GATES))
def test_hooks_and_cache_shapes(arch):
    model = make(arch, TOKENS, hidden=8, layers=2)
    expected = {"hook_embed", "hook_logits"} | {f"layers.{i}.{h}" for i in range(2) for h in ["hook_h", *GATES[arch]]}
    assert expected <= set(model.hook_dict)
    logits, cache = model.run_with_cache(tokens(B=4, T=9))
    assert logits.shape == (4, 9, 3)
    for name in expected:
        assert cache[name].shape[:2] == (4, 9), name
        assert cache[name].dim() == 3, name
    width = model.layers[0].width("hook_h")
    assert cache["layers.0.hook_h"].shape == (4, 9, width)
    assert model.state_size() == sum(layer.state_size for layer in model.layers)


@pytest.mark.parametrize("arch", sorted(GATES))
def test_ensemble_slices_equal_members(arch):
    ens = make(arch, TOKENS, hidden=8, layers=2, members=3, seed=5)
    x = tokens()
    out, cache = ens.run_with_cache(x)
    assert out.shape == (3, 4, 9, 3)
    assert cache["layers.1.hook_h"].shape[:3] == (3, 4, 9)
    for i in range(3):
        single = ens.member(i)
        assert not single.is_ensemble
        torch.testing.assert_close(single(x), out[i], atol=1e-5, rtol=1e-5)
    # member 0 of an ensemble is the plain model of the same seed
    torch.testing.assert_close(make(arch, TOKENS, hidden=8, layers=2, seed=5)(x), out[0], atol=1e-5, rtol=1e-5)
    # per-member inputs: member i sees its own batch
    xs = torch.stack([tokens(seed=s) for s in range(3)])
    per = ens(xs)
    for i in range(3):
        torch.testing.assert_close(ens.member(i)(xs[i]), per[i], atol=1e-5, rtol=1e-5)
    # stacking the members back gives the same ensemble
    torch.testing.assert_close(probe.models.stack([ens.member(i) for i in range(3)])(x), out)


@pytest.mark.parametrize("arch", sorted(GATES))
def test_seed_determines_weights(arch):
    a, b = make(arch, TOKENS, hidden=8, seed=1), make(arch, TOKENS, hidden=8, seed=1)
    c = make(arch, TOKENS, hidden=8, seed=2)
    for (k, va), vb, vc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(va, vb), k
    assert any(not torch.equal(va, vc) for va, vc in zip(a.state_dict().values(), c.state_dict().values()))
    assert probe.models.from_config(a.config).state_dict().keys() == a.state_dict().keys()
    for k, v in probe.models.from_config(a.config).state_dict().items():
        assert torch.equal(v, a.state_dict()[k])


def test_vector_inputs_and_learned_h0():
    model = make("elman", VECTORS, hidden=6, nonlinearity="relu", gain=0.1, h0="learned")
    out = model(torch.randn(2, 5, 4))
    assert out.shape == (2, 5, 2)
    out.sum().backward()
    assert model.layers[0].h0.grad is not None and model.layers[0].h0.grad.abs().sum() > 0


def test_elman_paper_init_uses_ones_state():
    model = make("elman", TOKENS, hidden=6, nonlinearity="relu", h0="ones")
    _, cache = model.run_with_cache(tokens(T=1))
    pre = cache["layers.0.hook_pre"][:, 0]
    W, U = model.layers[0].W, model.layers[0].U
    expected = torch.ones(6) @ W.T + cache["hook_embed"][:, 0] @ U.T
    torch.testing.assert_close(pre, expected)


def test_linear_diagonal_path_equals_loop():
    model = make("linear", VECTORS, hidden=12, init_scale=0.9).double()
    x = torch.randn(3, 400, 4, dtype=torch.float64)
    loop = make("linear", VECTORS, hidden=12, init_scale=0.9, scan="loop").double()
    loop.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model(x), loop(x), atol=1e-8, rtol=1e-8)


def test_run_with_hooks_edit_of_state_reaches_readout():
    # zeroing the state at every step: the recurrence carries zeros and the readout reads them
    model = make("gru", TOKENS, hidden=8)
    x = tokens()
    clean = model(x)
    edited = model.run_with_hooks(x, fwd_hooks=[("layers.0.hook_h", lambda v, hook: v * 0)])
    torch.testing.assert_close(edited, model.readout(torch.zeros(1, 4, 9, 8))[0])
    assert not torch.allclose(clean, edited)


@pytest.mark.parametrize("bad, match", [
    (dict(arch="transformer"), "transformer"),
    (dict(hidden=0), "hidden"),
    (dict(layers=-1), "layers"),
    (dict(members=1.5), "members"),
    (dict(nonlinearity="sigmoid"), "sigmoid"),
    (dict(bogus=1), "bogus"),
    (dict(embedding="sparse"), "sparse"),
])
def test_bad_construction(bad, match):
    kwargs = dict(arch="elman", task_or_dims=TOKENS, hidden=8)
    kwargs.update(bad)
    with pytest.raises(ValueError, match=match):
        make(**kwargs)


def test_bad_inputs():
    model = make("gru", TOKENS, hidden=8)
    with pytest.raises(ValueError, match="float32"):
        model(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"\(2, 3, 4\)"):
        model(torch.zeros(2, 3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="0..4"):
        model(torch.full((2, 3), 7))
    vec = make("gru", VECTORS, hidden=8)
    with pytest.raises(ValueError, match=r"\(2, 3, 5\)"):
        vec(torch.zeros(2, 3, 5))


def assert_reference_equals_fused(arch, monkeypatch):
    """The fused recurrence against every step through the layer's reference ``step``."""
    from probe.models.recurrence import loop
    Layer_ = probe.models.ARCHITECTURES[arch]
    for hidden, members, dtype in [(8, 2, torch.float64), (5, 1, torch.float32), (13, 3, torch.float32)]:
        model = make(arch, TOKENS, hidden=hidden, layers=2, members=members).to(dtype)
        x = tokens()
        fused, cache = model.run_with_cache(x)
        fused.square().sum().backward()
        grads = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        with monkeypatch.context() as m:
            m.setattr(Layer_, "run", lambda self, prep, state, start, taps=None: loop(self, prep, state, start, taps))
            ref, ref_cache = model.run_with_cache(x)
            ref.square().sum().backward()
        tol = 1e-10 if dtype == torch.float64 else 1e-5
        torch.testing.assert_close(fused, ref, atol=tol, rtol=0)
        for name in cache:
            torch.testing.assert_close(cache[name], ref_cache[name], atol=tol, rtol=0, msg=name)
        for g_fused, p in zip(grads, model.parameters()):
            torch.testing.assert_close(g_fused, p.grad, atol=10 * tol, rtol=10 * tol)


def test_fused_gru_equals_reference_steps_values_and_gradients(monkeypatch):
    from probe.models.gru import _GRUScan
    g = torch.Generator().manual_seed(0)
    M, T, B, H = 2, 6, 3, 4
    args = [torch.randn(T, M, B, 3 * H, generator=g, dtype=torch.float64, requires_grad=True),
            torch.randn(M, B, H, generator=g, dtype=torch.float64, requires_grad=True),
            torch.randn(M, 3 * H, H, generator=g, dtype=torch.float64, requires_grad=True),
            torch.randn(M, 3 * H, generator=g, dtype=torch.float64, requires_grad=True)]
    assert torch.autograd.gradcheck(lambda *a: _GRUScan.apply(*a)[3], args)
    # gradients reaching the gates (a loss on a cached gate) are honoured too
    assert torch.autograd.gradcheck(lambda *a: sum(o.sin().sum() for o in _GRUScan.apply(*a)), args)
    # gi in another memory layout (the token lookup's (T, B, M, 3H)) gets its gradient in that layout
    gi_tbm = args[0].detach().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_()
    assert torch.autograd.gradcheck(lambda gi, *a: _GRUScan.apply(gi, *a)[3], [gi_tbm, *args[1:]])
    assert_reference_equals_fused("gru", monkeypatch)


def test_fused_lstm_equals_reference_steps_values_and_gradients(monkeypatch):
    from probe.models.lstm import _LSTMScan
    g = torch.Generator().manual_seed(1)
    M, T, B, H = 2, 6, 3, 4
    shapes = [(T, M, B, 4 * H), (M, B, H), (M, B, H), (M, 4 * H, H)]
    args = [torch.randn(s, generator=g, dtype=torch.float64, requires_grad=True) for s in shapes]
    assert torch.autograd.gradcheck(lambda *a: _LSTMScan.apply(*a)[2], args)
    assert torch.autograd.gradcheck(lambda *a: sum(o.sin().sum() for o in _LSTMScan.apply(*a)), args)
    assert_reference_equals_fused("lstm", monkeypatch)


def test_hawk_bilinear_fixed_decay_accumulates_products():
    model = make("hawk", VECTORS, hidden=3, embedding="onehot", gates="linear", normalize=False, decay="fixed").double()
    layer = model.layers[0]
    with torch.no_grad():
        layer.Lambda.fill_(1.0)                     # accumulators: h_t = sum_s (W_gx x_s) * (W_x x_s)
        for p in (layer.b_gx, layer.b_go):
            p.zero_()
    x = torch.randn(2, 7, 4, dtype=torch.float64)
    _, cache = model.run_with_cache(x)
    products = (x @ layer.W_gx.T) * (x @ layer.W_x.T)
    torch.testing.assert_close(cache["layers.0.hook_h"], products.cumsum(1))
    torch.testing.assert_close(cache["layers.0.hook_gate_out"], x @ layer.W_go.T)


@pytest.mark.parametrize("arch", ["gru", "lstm"])
def test_token_table_lookup_equals_embedding_then_input_map(arch):
    # shared token inputs take the per-token table lookup (base.Tokens); per-member inputs (the
    # same tokens for every member) embed first and then apply the input map
    model = make(arch, TOKENS, hidden=8, layers=2, members=3).double()
    x = tokens()
    fast = model(x)
    fast.square().sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    slow = model(x.expand(3, *x.shape))
    slow.square().sum().backward()
    torch.testing.assert_close(fast, slow, atol=1e-12, rtol=0)
    for g_fast, p in zip(grads, model.parameters()):
        torch.testing.assert_close(g_fast, p.grad, atol=1e-10, rtol=1e-10)


def test_hawk_conv_is_a_causal_depthwise_convolution_feeding_the_recurrence():
    # conv=K: u_t = b_c + sum_k W_c[k] * x_{t-k} replaces x_t in the recurrence branch only
    model = make("hawk", VECTORS, hidden=3, embedding="onehot", gates="linear", normalize=False, decay="fixed",
                 conv=3).double()
    layer = model.layers[0]
    x = torch.randn(2, 7, 4, dtype=torch.float64)
    _, cache = model.run_with_cache(x)
    padded = torch.cat([torch.zeros(2, 2, 4, dtype=x.dtype), x], 1)           # (B, K-1+T, d_in)
    u = layer.b_conv + sum(layer.W_conv[k] * padded[:, 2 - k: 9 - k] for k in range(3))
    torch.testing.assert_close(cache["layers.0.hook_conv"], u)
    a = layer.Lambda
    h, hs = torch.zeros(2, 3, dtype=x.dtype), []
    for t in range(7):
        h = a * h + (u[:, t] @ layer.W_gx.T + layer.b_gx) * (u[:, t] @ layer.W_x.T)
        hs.append(h)
    torch.testing.assert_close(cache["layers.0.hook_h"], torch.stack(hs, 1))
    torch.testing.assert_close(cache["layers.0.hook_gate_out"], x @ layer.W_go.T + layer.b_go)  # reads x_t
    assert layer.state_size == 3 + 2 * 4 and model.layers[0].width("hook_conv") == 4


def test_hawk_conv_state_continues_a_sequence_and_default_has_no_conv():
    model = make("hawk", TOKENS, hidden=8, layers=2, members=2, conv=4).double()
    x = tokens(T=11)
    whole = model(x)
    first, state = model(x[:, :6], return_state=True)
    second = model(x[:, 6:], state=state)
    torch.testing.assert_close(torch.cat([first, second], 2), whole)
    assert isinstance(state[0], tuple) and state[0][1].shape == (2, 4, 3, 8)   # (M, B, K-1, d_in)
    assert "layers.0.hook_conv" in model.hook_dict
    plain = make("hawk", TOKENS, hidden=8)
    assert "layers.0.hook_conv" not in plain.hook_dict and plain.state_size() == 8


def test_hawk_conv_step_edit_of_input_reaches_later_steps_only_through_the_window():
    model = make("hawk", TOKENS, hidden=8, conv=2).double()
    x = tokens(B=2, T=9)
    _, cache = model.run_with_cache(x)
    out, edited = probe.intervene(model, x, [probe.Edit("layers.0.hook_conv", 4, probe.zero_ablate())])
    assert torch.equal(edited["layers.0.hook_h"][:, :4], cache["layers.0.hook_h"][:, :4])
    assert not torch.allclose(edited["layers.0.hook_h"][:, 4:], cache["layers.0.hook_h"][:, 4:])
    assert torch.equal(edited["layers.0.hook_conv"][:, 5:], cache["layers.0.hook_conv"][:, 5:])


def test_hawk_bad_conv():
    with pytest.raises(ValueError, match="conv"):
        make("hawk", TOKENS, hidden=8, conv=-1)
