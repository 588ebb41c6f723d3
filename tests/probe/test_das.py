"""Interchange interventions and DAS: built on probe.intervene, orthogonal throughout, and able to
find a subspace that is there."""
import pytest
import torch

import probe
import tasks
from probe import das
from probe.models import make

TOKENS = {"input_kind": "tokens", "vocab_size": 6, "d_output": 4}
T, STEP, HOOK = 9, 4, "layers.0.hook_h"



def inputs(seed=0, B=5, length=T):
    return torch.randint(0, 6, (B, length), generator=torch.Generator().manual_seed(seed))


def model_for(arch, **kw):
    return make(arch, TOKENS, hidden=8, seed=3, **kw).double()


@pytest.mark.parametrize("source_step", [None, 2])
def test_interchange_equals_intervene_with_the_source_state_patched_in(source_step):
    model = model_for("gru")
    base, source = inputs(0), inputs(1)
    out = das.interchange(model, base, source, HOOK, STEP, source_step=source_step)
    _, cache = model.run_with_cache(source)
    read = STEP if source_step is None else source_step
    ref, _ = probe.intervene(model, base, [probe.Edit(HOOK, STEP, probe.patch_from(cache[HOOK], read))])
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)


def test_interchange_of_some_units_leaves_the_others():
    model = model_for("gru")
    base, source = inputs(0), inputs(1)
    units = [0, 3, 5]
    out = das.interchange(model, base, source, HOOK, STEP, units=units)
    _, cache = model.run_with_cache(source)
    ref, _ = probe.intervene(model, base, [probe.Edit(HOOK, STEP, probe.patch_from(cache[HOOK], STEP), units=units)])
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)


def test_patching_the_source_state_into_an_identical_base_changes_nothing():
    model = model_for("gru")
    x = inputs(2)
    torch.testing.assert_close(das.interchange(model, x, x, HOOK, STEP), model(x), atol=1e-12, rtol=0)


@pytest.mark.parametrize("arch", ["gru", "elman", "linear", "hawk", "lru"])
def test_state_site_equals_the_hook_site_after_the_step(arch):
    # "state" runs prefix and suffix through the fused paths; the hook site is probe.intervene
    model = model_for(arch)
    x = inputs(3)
    fn = lambda v: 0.5 * v.flip(-1) + 0.1  # noqa: E731
    via_state = das.run_edited(model, x, das.STATE, STEP, fn)
    via_hook = das.run_edited(model, x, HOOK, STEP, fn)
    torch.testing.assert_close(via_state[:, STEP + 1:], via_hook[:, STEP + 1:], atol=1e-10, rtol=0)
    torch.testing.assert_close(via_state[:, :STEP], via_hook[:, :STEP], atol=1e-10, rtol=0)
    torch.testing.assert_close(das.read_value(model, x, das.STATE, STEP), das.read_value(model, x, HOOK, STEP))


def test_lstm_state_site_holds_h_then_c():
    model = model_for("lstm")
    x = inputs(4)
    assert das.value_width(model, das.STATE) == 16
    _, (h, c) = (lambda o: (o[0], o[1][0]))(model(x[:, :STEP + 1], return_state=True))
    torch.testing.assert_close(das.read_value(model, x, das.STATE, STEP), torch.cat([h, c], -1))

    def only_h(v):
        out = v.clone()
        out[:, :8] = 0.3
        return out
    via_state = das.run_edited(model, x, das.STATE, STEP, only_h)
    via_hook = das.run_edited(model, x, HOOK, STEP, probe.set_to(0.3))
    # the fused LSTM path and the step path agree to ~1e-9, not to the last bit
    torch.testing.assert_close(via_state[:, STEP + 1:], via_hook[:, STEP + 1:], atol=1e-8, rtol=0)


def test_gradients_reach_an_edit_through_the_state_site():
    model = model_for("gru")
    x = inputs(5)
    shift = torch.zeros(8, dtype=torch.float64, requires_grad=True)
    das.run_edited(model, x, das.STATE, STEP, lambda v: v + shift)[:, STEP + 1:].sum().backward()
    assert shift.grad is not None and shift.grad.abs().sum() > 0


def test_rotation_stays_orthogonal_to_1e5_through_training():
    g = torch.Generator().manual_seed(0)
    swap = das.RotatedSwap(24, 3, g)
    opt = torch.optim.Adam(swap.parameters(), lr=0.05)
    base, source = torch.randn(64, 24, generator=g), torch.randn(64, 24, generator=g)
    target = torch.randn(64, 24, generator=g)
    variables = torch.rand(64, 3, generator=g) < 0.5
    eye = torch.eye(24)
    errors = []
    for _ in range(150):
        loss = (swap(base, source, variables, swap.assignment(1.0, g)) - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        R = swap.R.detach()
        errors.append(float((R.T @ R - eye).abs().max()))
    assert max(errors) < 1e-5
    assert (swap.R.detach() - das.RotatedSwap(24, 3, torch.Generator().manual_seed(0)).R.detach()).abs().max() > 0.1


def test_swap_with_no_variable_chosen_is_the_identity():
    g = torch.Generator().manual_seed(1)
    swap = das.RotatedSwap(10, 2, g)
    base, source = torch.randn(4, 10, generator=g), torch.randn(4, 10, generator=g)
    none = torch.zeros(4, 2, dtype=torch.bool)
    torch.testing.assert_close(swap(base, source, none, swap.assignment()), base, atol=1e-5, rtol=0)
    # every dimension assigned to variable 0 and variable 0 chosen: the whole source comes over
    everything = torch.zeros(10, 3)
    everything[:, 0] = 1
    chosen = torch.tensor([[True, False]]).expand(4, 2)
    torch.testing.assert_close(swap(base, source, chosen, everything), source, atol=1e-5, rtol=0)


def test_gumbel_softmax_is_seeded_and_one_hot():
    logits = torch.randn(7, 4, generator=torch.Generator().manual_seed(0))
    a = das.gumbel_softmax(logits, 1.0, torch.Generator().manual_seed(5))
    b = das.gumbel_softmax(logits, 1.0, torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)
    assert torch.equal(a.sum(-1), torch.ones(7)) and set(a.unique().tolist()) <= {0.0, 1.0}


def _copier_and_sampler():
    # a copier whose state holds position p's token one-hot in block p (see the module)
    from analyses.magnitude.data import sampler
    from analyses.magnitude.handbuilt import HandBuiltCopier
    task = tasks.make("repetition", n_symbols=6, min_len=2, max_len=3, mode="no_input")
    return HandBuiltCopier(6, 3, "blocks"), sampler(task, "unigram")


def test_das_learns_the_subspace_of_each_variable_with_gumbel_assignment():
    model, sample = _copier_and_sampler()
    search = das.DAS(3, steps=200, lr=3e-2, batch_size=128, seed=0)
    assert not hasattr(search, "rotation_")
    assert search.fit(model, sample) is search
    assert search.rotation_.shape == (18, 18) and search.assignment_.shape == (18,)
    assert (search.rotation_.T @ search.rotation_ - torch.eye(18)).abs().max() < 1e-5
    assert search.history_[-1] < 0.1 * search.history_[0]
    result = search.evaluate(model, sample, n=256)
    assert result["accuracy"] == 1.0 and result["by_group"] == {0: 1.0, 1: 1.0, 2: 1.0}
    # token differences within a block span 5 dimensions: each variable needs at least those
    assert all(size >= 5 for size in search.subspace_sizes())


def test_das_with_fixed_blocks_learns_the_rotation_only():
    model, sample = _copier_and_sampler()
    search = das.DAS(3, assignment="fixed", steps=150, lr=3e-2, batch_size=128, seed=1).fit(model, sample)
    assert search.subspace_sizes() == [6, 6, 6]
    assert search.evaluate(model, sample, n=256)["accuracy"] == 1.0


def test_fitting_leaves_the_model_trainable():
    model = make("gru", TOKENS, hidden=4, seed=0)

    def sample(n, seed):
        base, source = inputs(seed, B=n), inputs(seed + 1, B=n)
        return das.SwapBatch(base, source, torch.ones(n, 1, dtype=torch.bool), base % 4,
                             torch.ones(n, T, dtype=torch.bool), STEP)
    das.DAS(1, steps=2, batch_size=4).fit(model, sample)
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="not fitted"):
        das.DAS(1).evaluate(model, sample)
    with pytest.raises(ValueError, match="valid: matrix_exp, cayley, householder"):
        das.DAS(1, orthogonal_map="qr", steps=1).fit(model, sample)
    with pytest.raises(ValueError, match="valid: gumbel, fixed"):
        das.DAS(1, assignment="soft", steps=1).fit(model, sample)


def test_bad_input_names_the_valid_choices():
    model = model_for("gru")
    with pytest.raises(ValueError, match="one of the model's hooks"):
        das.read_value(model, inputs(), "layers.0.hook_nope", 1)
    with pytest.raises(ValueError, match="valid steps are 0..8"):
        das.run_edited(model, inputs(), das.STATE, 9, lambda v: v)
    with pytest.raises(ValueError, match="members=2"):
        das.read_value(make("gru", TOKENS, hidden=4, members=2), inputs(), das.STATE, 1)
    with pytest.raises(ValueError, match="does not match base batch"):
        das.interchange(model, inputs(B=3), inputs(B=2), HOOK, 1)


def test_the_old_word_site_still_works_with_a_deprecation_warning():
    model = make("gru", TOKENS, hidden=4)
    with pytest.warns(DeprecationWarning, match="hook="):
        old = das.interchange(model, inputs(), inputs(), site=HOOK, step=STEP)
    torch.testing.assert_close(old, das.interchange(model, inputs(), inputs(), hook=HOOK, step=STEP))
    with pytest.warns(DeprecationWarning, match="read_value"):
        das.read_site(model, inputs(), HOOK, STEP)
    with pytest.warns(DeprecationWarning, match="hook="):
        search = das.DAS(2, site=HOOK)
    with pytest.warns(DeprecationWarning, match=r"\.hook"):
        assert search.site == search.hook == HOOK
