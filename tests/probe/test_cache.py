"""The TransformerLens cache API on probe models: ActivationCache methods, pos_slice, return_type."""
import re

import pytest
import torch
import torch.nn.functional as F
from transformer_lens import ActivationCache

import probe
import tasks
from probe.models import make
from probe.models.hooked import RecurrentCache, act_name

TOKENS = {"input_kind": "tokens", "vocab_size": 5, "d_output": 3}
VECTORS = {"input_kind": "vectors", "d_input": 4, "d_output": 2}
ARCHS = ["gru", "lstm", "elman", "linear", "lru", "hawk"]


def tokens(B=4, T=7, seed=0):
    return torch.randint(0, 5, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("members", [1, 3])
def test_pos_slice_takes_the_time_axis_of_every_hook(arch, members):
    model = make(arch, TOKENS, hidden=6, layers=2, members=members)
    x = tokens()
    _, full = model.run_with_cache(x)
    _, last = model.run_with_cache(x, pos_slice=-1)
    _, pair = model.run_with_cache(x, pos_slice=(1, 3))
    lead = (members, 4) if members > 1 else (4,)
    assert set(last.keys()) == set(model.hook_dict)
    for name in model.hook_dict:                     # hook_z (GRU's update gate) included
        assert last[name].shape == (*lead, 1, full[name].shape[-1]), name
        assert torch.equal(last[name], full[name][..., -1:, :]), name
        assert torch.equal(pair[name], full[name][..., 1:3, :]), name


@pytest.mark.parametrize("members", [1, 3])
def test_remove_batch_dim_removes_the_batch_axis_not_the_member_axis(members):
    model = make("gru", TOKENS, hidden=6, members=members)
    x = tokens(B=1)
    _, full = model.run_with_cache(x)
    _, one = model.run_with_cache(x, remove_batch_dim=True)
    _, last = model.run_with_cache(x, remove_batch_dim=True, pos_slice=-1)
    lead = (members,) if members > 1 else ()
    assert not one.has_batch_dim
    for name in model.hook_dict:
        assert one[name].shape == (*lead, 7, full[name].shape[-1]), name
        assert torch.equal(one[name], full[name].squeeze(1 if members > 1 else 0)), name
        assert last[name].shape == (*lead, 1, full[name].shape[-1]), name
    assert torch.equal(full.remove_batch_dim()["layers.0.hook_z"], one["layers.0.hook_z"])
    with pytest.raises(ValueError, match="batch of 1"):
        model.run_with_cache(tokens(B=2), remove_batch_dim=True)
    with pytest.raises(ValueError, match="holds 2"):
        model.run_with_cache(tokens(B=2))[1].remove_batch_dim()


def test_cache_is_an_activation_cache_with_probe_shorthand():
    model = make("lstm", TOKENS, hidden=6, layers=3)
    out, cache = model.run_with_cache(tokens())
    assert isinstance(cache, ActivationCache) and isinstance(cache, RecurrentCache)
    assert model.cfg.n_layers == 3 and model.cfg.d_model == 6 and model.cfg.d_vocab == 5
    assert cache["h", 0] is cache["layers.0.hook_h"] is cache["h0"]
    assert cache["c", -1] is cache["layers.2.hook_c"]
    assert cache["embed"] is cache["hook_embed"] and cache["logits"] is cache["hook_logits"]
    assert torch.equal(cache["logits"], out)
    stacked = cache.stack_activation("h")
    assert torch.equal(stacked, torch.stack([cache[f"layers.{i}.hook_h"] for i in range(3)]))
    assert torch.equal(cache.stack_activation("f", layer=2), torch.stack([cache["f", 0], cache["f", 1]]))
    with pytest.raises(KeyError, match="layers.0.hook_q"):
        cache["q", 0]
    with pytest.raises(NotImplementedError, match="residual stream"):
        cache.accumulated_resid()
    assert act_name("gate_x1") == "layers.1.hook_gate_x" and act_name("h_grad", 0) == "layers.0.hook_h_grad"


@pytest.mark.parametrize("members", [1, 3])
def test_batch_slices_and_members(members):
    model = make("gru", TOKENS, hidden=6, members=members)
    x = tokens()
    _, cache = model.run_with_cache(x)
    ax = 1 if members > 1 else 0
    two = cache.apply_slice_to_batch_dim((1, 3))
    one = cache.apply_slice_to_batch_dim(2)
    assert isinstance(two, RecurrentCache) and two.has_batch_dim and not one.has_batch_dim
    for name in model.hook_dict:
        assert torch.equal(two[name], cache[name].narrow(ax, 1, 2)), name
        assert torch.equal(one[name], cache[name].select(ax, 2)), name
    if members > 1:
        _, single = model.member(1).run_with_cache(x)
        for name in model.hook_dict:
            torch.testing.assert_close(cache.member(1)[name], single[name], atol=1e-6, rtol=1e-6)
    else:
        with pytest.raises(ValueError, match="member axis"):
            cache.member(0)


def test_intervene_returns_the_same_cache_type():
    model = make("gru", TOKENS, hidden=6)
    _, cache = probe.intervene(model, tokens(), [probe.Edit("layers.0.hook_h", 2, probe.zero_ablate())])
    assert isinstance(cache, RecurrentCache)
    assert torch.equal(cache["h", 0][:, 2], torch.zeros(4, 6))


def test_return_type_loss_is_the_task_loss():
    task = tasks.make("parity")
    batch = task.sample(n=5, seed=0)
    model = make("gru", task, hidden=6, members=2).double()
    logits = model(batch.inputs)
    per_member = [F.cross_entropy(logits[i][batch.mask], batch.targets[batch.mask]) for i in range(2)]
    loss = model(batch, return_type="loss")
    torch.testing.assert_close(loss, sum(per_member))     # members' losses add, as in training
    assert torch.equal(model(batch.inputs, return_type="loss", targets=batch.targets, mask=batch.mask), loss)
    both_logits, both_loss = model(batch, return_type="both")
    assert torch.equal(both_logits, logits) and torch.equal(both_loss, loss)
    assert model(batch, return_type=None) is None
    single = model.member(0)
    unmasked = single(batch.inputs, return_type="loss", targets=batch.targets)
    torch.testing.assert_close(unmasked, F.cross_entropy(logits[0].flatten(0, 1), batch.targets.flatten()))
    vec = make("elman", VECTORS, hidden=6).double()
    x, y = torch.randn(3, 5, 4, dtype=torch.float64), torch.randn(3, 5, 2, dtype=torch.float64)
    torch.testing.assert_close(vec(x, return_type="loss", targets=y), (vec(x) - y).pow(2).mean())
    with pytest.raises(ValueError, match="'logit'"):
        model(batch, return_type="logit")
    with pytest.raises(ValueError, match="targets"):
        model(batch.inputs, return_type="loss")
    with pytest.raises(ValueError, match=re.escape(str(tuple(batch.targets.shape)))):
        single(batch.inputs, return_type="loss", targets=batch.targets[:, :3])


def test_incl_bwd_caches_gradients_of_the_loss():
    task = tasks.make("parity")
    batch = task.sample(n=5, seed=0)
    model = make("lstm", task, hidden=6).double()
    loss, cache = model.run_with_cache(batch, return_type="loss", incl_bwd=True)
    assert loss.dim() == 0
    for name in model.hook_dict:
        assert cache[f"{name}_grad"].shape == cache[name].shape, name
    # the readout's gradient by hand: d loss / d logits
    logits = cache["hook_logits"].clone().requires_grad_()
    F.cross_entropy(logits[batch.mask], batch.targets[batch.mask]).backward()
    torch.testing.assert_close(cache["hook_logits_grad"], logits.grad)
    with pytest.raises(ValueError, match="scalar"):
        model.run_with_cache(batch.inputs, incl_bwd=True)


def test_hooks_context_permanent_hooks_and_reset():
    model = make("gru", TOKENS, hidden=6).double()
    x = tokens()
    double = ("layers.0.hook_z", lambda v, hook: v * 0.5)
    edited = model.run_with_hooks(x, fwd_hooks=[double])
    with model.hooks(fwd_hooks=[double]):
        assert torch.equal(model(x), edited)
    model.add_hook(*double, is_permanent=True)
    assert torch.equal(model(x), edited)
    model.reset_hooks()                                  # permanent hooks stay
    assert torch.equal(model(x), edited)
    model.reset_hooks(including_permanent=True)
    assert not torch.equal(model(x), edited)


def test_caching_hooks_are_called_once_and_edits_again_from_each_edited_step():
    model = make("gru", TOKENS, hidden=6)
    calls = {}

    def count(v, hook):
        calls[hook.name] = calls.get(hook.name, 0) + 1

    model.run_with_hooks(tokens(), fwd_hooks=[(lambda n: True, count)])
    assert set(calls.values()) == {1}
    calls.clear()
    model.run_with_hooks(tokens(), fwd_hooks=[("layers.0.hook_h", probe.step_hook({1: probe.zero_ablate(),
                                                                                     4: probe.zero_ablate()})),
                                              ("layers.0.hook_h", count)])
    assert calls == {"layers.0.hook_h": 3}              # the first run, then from steps 2 and 5
