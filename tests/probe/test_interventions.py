"""Step interventions: edits act inside the recurrence, at their step and after, never before."""
import pytest
import torch

import probe
from probe.models import make

TOKENS = {"input_kind": "tokens", "vocab_size": 5, "d_output": 3}
GATE = {"gru": "hook_z", "lstm": "hook_f", "elman": "hook_pre", "linear": "hook_pre", "lru": "hook_b",
        "hawk": "hook_gate_x"}
T, STEP = 10, 4


def inputs(seed=0, B=3):
    return torch.randint(0, 5, (B, T), generator=torch.Generator().manual_seed(seed))


def model_for(arch, **kw):
    return make(arch, TOKENS, hidden=8, seed=3, **kw).double()


@pytest.mark.parametrize("arch", sorted(GATE))
@pytest.mark.parametrize("hook", ["layers.0.hook_h", "gate"])
def test_edit_changes_only_later_outputs(arch, hook):
    model = model_for(arch, layers=2)
    hook = f"layers.0.{GATE[arch]}" if hook == "gate" else hook
    x = inputs()
    clean = model(x)
    edited, cache = probe.intervene(model, x, [probe.Edit(hook, STEP, probe.scale(3.0))])
    # steps before the edit come from the same fast run as the clean outputs
    assert torch.equal(edited[:, :STEP], clean[:, :STEP])
    assert (edited[:, STEP + 1:] - clean[:, STEP + 1:]).abs().max() > 1e-6
    assert cache[hook].shape[:2] == (3, T)


@pytest.mark.parametrize("arch", sorted(GATE))
def test_state_edit_equals_running_in_two_parts(arch):
    model = model_for(arch)
    x = inputs()
    fn = probe.set_to(0.5)
    units = [1, 2, 5]
    edited, _ = probe.intervene(model, x, [probe.Edit("layers.0.hook_h", STEP, fn, units=units)])
    first, state = model(x[:, :STEP + 1], return_state=True)
    (s,) = state
    if isinstance(s, tuple):                      # lstm: (h, c); the edit touches h only
        h = s[0].clone(); h[:, units] = 0.5
        s = (h, s[1])
    else:
        s = s.clone(); s[:, units] = 0.5
    second = model(x[:, STEP + 1:], state=[s])
    torch.testing.assert_close(edited[:, :STEP], first[:, :STEP], atol=1e-10, rtol=0)
    torch.testing.assert_close(edited[:, STEP + 1:], second, atol=1e-10, rtol=0)


@pytest.mark.parametrize("arch", ["gru", "lru"])
def test_patching_the_whole_state_from_a_source_copies_its_future(arch):
    model = model_for(arch)
    base, source = inputs(0), inputs(1)
    # same suffix after STEP, different prefix: patching h_STEP from the source gives the source's outputs
    base[:, STEP + 1:] = source[:, STEP + 1:]
    src_out, src_cache = model.run_with_cache(source)
    out, _ = probe.intervene(model, base, [probe.Edit("layers.0.hook_h", STEP,
                                                      probe.patch_from(src_cache["layers.0.hook_h"], STEP))])
    torch.testing.assert_close(out[:, STEP + 1:], src_out[:, STEP + 1:], atol=1e-10, rtol=0)
    assert (out[:, :STEP] - src_out[:, :STEP]).abs().max() > 1e-6


def test_ensemble_edit_matches_member_edit():
    ens = make("gru", TOKENS, hidden=8, members=3).double()
    x = inputs()
    e = [probe.Edit("layers.0.hook_r", -3, probe.zero_ablate(), units=range(4))]
    out, _ = probe.intervene(ens, x, e)
    for i in range(3):
        single, _ = probe.intervene(ens.member(i), x, e)
        torch.testing.assert_close(out[i], single)


def test_edits_compose_and_mean_ablation():
    model = model_for("elman")
    x = inputs()
    mean = model.run_with_cache(x)[1]["layers.0.hook_h"].mean((0, 1))
    twice, c = probe.intervene(model, x, [probe.Edit("layers.0.hook_h", 2, probe.mean_ablate(mean)),
                                          probe.Edit("layers.0.hook_h", 2, probe.scale(2.0))])
    torch.testing.assert_close(c["layers.0.hook_h"][:, 2], (2 * mean).expand(3, -1))
    clipped, c = probe.intervene(model, x, [probe.Edit("layers.0.hook_pre", 1, probe.clamp(min=0.0, max=0.01))])
    assert c["layers.0.hook_pre"][:, 1].max() <= 0.01


@pytest.mark.parametrize("edit, match", [
    (probe.Edit("layers.0.hook_q", 1, probe.zero_ablate()), "hook_q"),
    (probe.Edit("layers.3.hook_h", 1, probe.zero_ablate()), "layers.3.hook_h"),
    (probe.Edit("layers.0.hook_h", T, probe.zero_ablate()), f"step {T}"),
    (probe.Edit("layers.0.hook_h", -T - 1, probe.zero_ablate()), f"step {-T - 1}"),
    (probe.Edit("layers.0.hook_h", 0, probe.zero_ablate(), units=[8]), r"\[8\]"),
])
def test_bad_edits(edit, match):
    with pytest.raises(ValueError, match=match):
        probe.intervene(model_for("gru"), inputs(), [edit])
