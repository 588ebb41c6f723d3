"""minGRU and minLSTM (Feng et al. 2024, arXiv 2410.01201): scans equal the step-by-step definition.

References: the paper's §3 equations and appendix B listings (g, log_g, the log-space scan
``parallel_scan_log``); the same formulas in lucidrains/minGRU-pytorch (minGRU.py, minLSTM.py),
read with the search tools. Our log scan takes a given initial state by superposition
(exp(a*) h0) where the paper takes log(h0): the tests check both agree for h0 > 0.
"""
import pytest
import torch
import torch.nn.functional as F

import probe
import tasks
from probe.models import make
from probe.models.mingru import g, log_g, log_scan

TOKENS = {"input_kind": "tokens", "vocab_size": 5, "d_output": 3}
ARCHS = ["mingru", "minlstm"]
GATES = {"mingru": ["hook_z", "hook_h_tilde"], "minlstm": ["hook_f", "hook_i", "hook_h_tilde"]}
T, STEP = 12, 4


def tokens(B=3, T=T, seed=0):
    return torch.randint(0, 5, (B, T), generator=torch.Generator().manual_seed(seed))


def model_for(arch, **kw):
    return make(arch, TOKENS, hidden=6, seed=2, **kw).double()


def paper_forward(model, x, h=None, edit=lambda name, t, v: v):
    """The paper's sequential definition, from the model's weights: logits (B, T, K), final h."""
    L, e = model.layers[0], model.embed.W_E[x]                                 # (B, T, E)
    h = torch.zeros(x.shape[0], L.hidden, dtype=torch.float64) if h is None else h
    ys = []
    for t in range(x.shape[1]):
        et = e[:, t]
        h_tilde = edit("hook_h_tilde", t, g(et @ L.W_h.T + L.b_h))
        if model.arch == "mingru":
            z = edit("hook_z", t, torch.sigmoid(et @ L.W_z.T + L.b_z))
            a, b = 1 - z, z
        else:
            f, i = torch.sigmoid(et @ L.W_f.T + L.b_f), torch.sigmoid(et @ L.W_i.T + L.b_i)
            a, b = edit("hook_f", t, f / (f + i)), edit("hook_i", t, i / (f + i))
        h = edit("hook_h", t, a * h + b * h_tilde)
        ys.append(h @ model.readout.W_U.T + model.readout.b_U)
    return torch.stack(ys, 1), h


def test_g_is_continuous_positive_and_log_g_is_its_log():
    x = torch.linspace(-30, 30, 6001, dtype=torch.float64)
    assert (g(x) > 0).all()
    torch.testing.assert_close(log_g(x), torch.log(g(x)), atol=0, rtol=1e-9)  # softplus is x past 20
    assert g(torch.tensor(0.0)) == 0.5 and abs(float(g(torch.tensor(-1e-9))) - 0.5) < 1e-9
    torch.testing.assert_close(g(torch.tensor([2.0, -2.0])), torch.tensor([2.5, torch.sigmoid(torch.tensor(-2.0))]))


def test_log_scan_equals_the_sequential_recurrence_and_the_papers_log_h0_form():
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 2000, 5, generator=gen, dtype=torch.float64) * 0.2 + 0.8   # decays in (0.8, 1)
    b = torch.rand(2, 3, 2000, 5, generator=gen, dtype=torch.float64)
    h0 = torch.randn(2, 3, 5, generator=gen, dtype=torch.float64)                   # any sign
    want, h = [], h0
    for t in range(a.shape[-2]):
        h = a[..., t, :] * h + b[..., t, :]
        want.append(h)
    want = torch.stack(want, -2)
    torch.testing.assert_close(log_scan(a.log(), b.log(), h0), want, atol=1e-10, rtol=1e-10)
    # the paper's listing puts log(h0) first in the values and pads log a with a zero
    pos = h0.abs() + 0.1
    a_star = F.pad(torch.cumsum(a.log(), -2), (0, 0, 1, 0))
    paper = torch.exp(a_star + torch.logcumsumexp(torch.cat([pos.log().unsqueeze(-2), b.log()], -2) - a_star, -2))
    torch.testing.assert_close(log_scan(a.log(), b.log(), pos), paper[..., 1:, :], atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("scan", ["log", "linear"])
def test_scans_equal_the_papers_step_by_step_definition(arch, scan):
    model = model_for(arch, scan=scan)
    x = tokens(B=4, T=300)
    want, h_last = paper_forward(model, x)
    torch.testing.assert_close(model(x), want, atol=1e-10, rtol=0)
    layer, emb = model.layers[0], model.embed.W_E[x].unsqueeze(0)
    torch.testing.assert_close(layer(emb)[0], layer(emb, fused=False)[0], atol=1e-10, rtol=0)
    # continuing from a given state of either sign equals running on (superposition, not log h0)
    h0 = torch.randn(4, 6, dtype=torch.float64)
    out, finals = model(x, state=[h0], return_state=True)
    want, h_last = paper_forward(model, x, h0)
    torch.testing.assert_close(out, want, atol=1e-10, rtol=0)
    torch.testing.assert_close(finals[0], h_last, atol=1e-10, rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_log_scan_gradients_equal_the_step_by_step_gradients(arch):
    model = model_for(arch)
    x, targets = tokens(T=40), tokens(T=40, seed=1) % 3
    model(x, return_type="loss", targets=targets).backward()
    fast = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    logits, _ = paper_forward(model, x)
    F.cross_entropy(logits.flatten(0, 1), targets.flatten()).backward()
    for want, p in zip([p.grad for p in model.parameters()], fast, strict=True):
        torch.testing.assert_close(p, want, atol=1e-10, rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_hooks_ensembles_and_cache(arch):
    ens = make(arch, TOKENS, hidden=8, layers=2, members=3, seed=5)
    x = tokens()
    out, cache = ens.run_with_cache(x)
    for i in range(2):
        for name in ["hook_h", *GATES[arch]]:
            assert cache[f"layers.{i}.{name}"].shape == (3, 3, T, 8)
    for i in range(3):
        torch.testing.assert_close(ens.member(i)(x), out[i], atol=1e-5, rtol=1e-5)
    assert ens.member(0).state_size() == 16
    clean = ens(x)
    assert torch.equal(ens.run_with_hooks(x, fwd_hooks=[(lambda n: True, lambda v, hook: v.clone())]), clean)
    targets = tokens(seed=1) % 3
    loss = ens(x, return_type="loss", targets=targets)
    cached_loss, cache = ens.run_with_cache(x, return_type="loss", targets=targets, incl_bwd=True)
    assert torch.equal(cached_loss, loss)                   # gradient hooks change no value either
    assert {f"{n}_grad" for n in ens.hook_dict} <= set(cache.keys())


@pytest.mark.parametrize("arch", ARCHS)
def test_every_hook_edit_equals_the_hand_edited_definition(arch):
    model, x = model_for(arch), tokens()
    clean = model(x)
    for name in ["hook_h", *GATES[arch]]:
        fn = probe.set_to(-0.75)            # negative: the log scan cannot take it, the fallback must
        edited, _ = probe.intervene(model, x, [probe.Edit(f"layers.0.{name}", STEP, fn)])

        def edit(n, t, v, name=name):
            return torch.full_like(v, -0.75) if (n, t) == (name, STEP) else v
        want, _ = paper_forward(model, x, edit=edit)
        torch.testing.assert_close(edited, want, atol=1e-10, rtol=0, msg=name)
        assert torch.equal(edited[:, :STEP], clean[:, :STEP]), name
        assert (edited[:, STEP + 1:] - clean[:, STEP + 1:]).abs().max() > 1e-4, name


@pytest.mark.parametrize("arch", ARCHS)
def test_gradient_hooks_see_the_total_derivative(arch):
    model, x = model_for(arch), tokens()
    targets = tokens(seed=1) % 3
    names = ["hook_h", *GATES[arch]]
    leaves = {}

    def tap(n, t, v):
        leaves[n, t] = torch.zeros_like(v, requires_grad=True)
        return v + leaves[n, t]

    logits, _ = paper_forward(model, x, edit=tap)
    F.cross_entropy(logits.flatten(0, 1), targets.flatten()).backward()
    _, cache = model.run_with_cache(x, return_type="loss", targets=targets, incl_bwd=True,
                                    names_filter=[f"layers.0.{n}" for n in names])
    for n in names:
        want = torch.stack([leaves[n, t].grad for t in range(T)], 1)
        torch.testing.assert_close(cache[f"layers.0.{n}_grad"], want, atol=1e-12, rtol=1e-10, msg=n)


def test_bad_scan_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"scan.*'cumsum'.*log, linear"):
        make("mingru", TOKENS, scan="cumsum")


@pytest.mark.parametrize("arch", ARCHS)
def test_learns_integration(tmp_path, arch):
    # a tiny task within reach: the running sum of white noise is a linear recurrence. (Parity is
    # not: decays in (0, 1) cannot flip a sign; Grazzi et al. 2024, as for Hawk in test_train.)
    task = tasks.make("integration", length=32)
    model = make(arch, task, hidden=16, members=2, seed=0)
    run = probe.train(task, model, store=tmp_path, progress=False, steps=150, batch_size=32, lr=1e-2,
                      eval_splits=["train"], eval_n=64)
    loss = run.curve("train.loss")[1]
    assert loss[-1] < 0.3 * loss[0], loss
