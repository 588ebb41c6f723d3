"""Every registered task honours the Task contract of DESIGN.md (tasks section)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import tasks
from task_helpers import SMALL, perfect_outputs, task, wrong_outputs  # noqa: F401  (task is a fixture)

ALL = ["parity", "recall", "disjointness", "regular", "integration", "repetition", "charlm", "icl_regression"]


def test_every_task_is_registered():
    assert sorted(tasks.names()) == sorted(ALL)


def test_unknown_task_names_the_valid_choices():
    with pytest.raises(ValueError, match="unknown task 'nope'.*parity"):
        tasks.make("nope")


@pytest.mark.parametrize("name", ALL)
def test_defaults_build_and_sample(name):
    task = tasks.make(name)
    batch = task.sample(n=8, seed=0)
    assert batch.n == 8 and batch.mask.any()


def test_attributes(task):
    assert task.name in ALL
    assert task.input_kind in ("tokens", "vectors") and task.loss in ("ce", "mse")
    if task.input_kind == "tokens":
        assert isinstance(task.vocab_size, int) and task.vocab_size > 1
    else:
        assert isinstance(task.d_input, int) and task.d_input >= 1
    assert isinstance(task.d_output, int) and task.d_output >= 1
    assert (task.loss == "ce") == (task.input_kind == "tokens")  # true of the eight tasks here


def test_params_are_full_and_json_round_trip(task):
    text = json.dumps(task.params)
    again = tasks.make(task.name, **json.loads(text))
    assert again.params == task.params
    assert set(task.params) == {f for f in task.Params.__dataclass_fields__}
    assert torch.equal(again.sample(4, seed=3).inputs, task.sample(4, seed=3).inputs)


def test_same_seed_same_batch_other_seed_other_batch(task):
    a, b, c = task.sample(16, seed=1), task.sample(16, seed=1), task.sample(16, seed=2)
    for field in ("inputs", "targets", "mask"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    for k in a.features:
        assert torch.equal(a.features[k], b.features[k])
    assert a.inputs.shape != c.inputs.shape or not torch.equal(a.inputs, c.inputs)


def test_a_fresh_task_object_gives_the_same_batch(task):
    again = tasks.make(task.name, **task.params)
    assert torch.equal(again.sample(8, seed=5).inputs, task.sample(8, seed=5).inputs)


def test_other_params_give_other_batches(task):
    # the seed is mixed with a hash of the params, so a changed param changes the stream
    changed = {"parity": {"max_len": 7}, "recall": {"power_a": 0.5}, "disjointness": {"read_twice": True},
               "regular": {"min_strings": 2}, "integration": {"gamma": 0.5}, "repetition": {"min_len": 3},
               "charlm": {"valid_fraction": 0.2}, "icl_regression": {"noise_std": 0.1}}[task.name]
    other = tasks.make(task.name, **{**task.params, **changed})
    a, b = task.sample(8, seed=0), other.sample(8, seed=0)
    assert a.inputs.shape != b.inputs.shape or not torch.equal(a.inputs, b.inputs)


def test_sampling_leaves_global_generators_alone(task):
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    task.sample(8, seed=0)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state[1])


def test_shapes_and_dtypes(task):
    batch = task.sample(12, seed=0)
    B, T = batch.mask.shape
    assert B == 12 and batch.mask.dtype == torch.bool
    if task.input_kind == "tokens":
        assert batch.inputs.dtype == torch.long and batch.inputs.shape == (B, T)
        assert 0 <= int(batch.inputs.min()) and int(batch.inputs.max()) < task.vocab_size
    else:
        assert batch.inputs.dtype == torch.float32 and batch.inputs.shape == (B, T, task.d_input)
    if task.loss == "ce":
        assert batch.targets.dtype == torch.long and batch.targets.shape == (B, T)
        # targets are valid class ids everywhere, also where the mask is False
        assert 0 <= int(batch.targets.min()) and int(batch.targets.max()) < task.d_output
    else:
        assert batch.targets.dtype == torch.float32 and batch.targets.shape == (B, T, task.d_output)
        assert torch.isfinite(batch.targets).all()


def test_features_have_the_documented_names_and_shapes(task):
    batch = task.sample(6, seed=0)
    assert set(batch.features) == set(task.feature_names) and len(task.feature_names) >= 2
    for name, value in batch.features.items():
        assert isinstance(value, torch.Tensor) and value.shape == batch.mask.shape, name
        assert value.dtype in (torch.long, torch.float32), name


def test_splits_are_valid_overrides(task):
    splits = task.splits()
    assert "train" in splits and splits["train"] == {}
    assert len(splits) >= 2
    for name, overrides in splits.items():
        small = {k: v for k, v in overrides.items()}
        if "length" in small and small["length"] > 2000:
            small["length"] = 2000  # keep the test fast; the long split itself is checked in the task's test
        batch = task.sample(3, seed=0, **small)
        assert batch.mask.any(), name


def test_overrides_are_validated_like_params(task):
    with pytest.raises(ValueError, match="unknown parameter 'no_such_thing'"):
        task.sample(2, seed=0, no_such_thing=1)


def test_override_that_changes_the_interface_is_refused():
    task = tasks.make("repetition")
    with pytest.raises(ValueError, match="interface"):
        task.sample(2, seed=0, n_symbols=5)


@pytest.mark.parametrize("n, seed", [(0, 0), (-3, 0), (2.5, 0), (2, -1), (2, "a")])
def test_bad_n_or_seed(n, seed):
    with pytest.raises(ValueError, match="'n'|'seed'"):
        tasks.make("parity").sample(n, seed)


BAD = [
    ("parity", {"max_len": -1}, "max_len"),
    ("parity", {"max_len": 30, "exhaustive": True}, "max_len"),
    ("parity", {"fraction": 0.0}, "fraction"),
    ("parity", {"exhaustive": "yes"}, "exhaustive"),
    ("parity", {"lenght": 5}, "lenght"),
    ("recall", {"num_pairs": 40}, "num_pairs"),
    ("recall", {"seq_len": 8, "num_pairs": 4}, "num_pairs"),
    ("recall", {"vocab_size": 2.5}, "vocab_size"),
    ("disjointness", {"long": 100}, "long"),
    ("disjointness", {"short": 20, "long": 10}, "short"),
    ("disjointness", {"order": "random"}, "order"),
    ("regular", {"min_strings": 12}, "min_strings"),
    ("regular", {"automata": "valid"}, "automata"),
    ("regular", {"n_train_automata": 0}, "n_train_automata"),
    ("integration", {"kind": "exact"}, "kind"),
    ("integration", {"gamma": 1.5}, "gamma"),
    ("integration", {"length": -4}, "length"),
    ("integration", {"noise_std": float("nan")}, "noise_std"),
    ("repetition", {"min_len": 12}, "min_len"),
    ("repetition", {"mode": "teacher"}, "mode"),
    ("charlm", {"length": 10_000_000}, "length"),
    ("charlm", {"region": "test"}, "region"),
    ("icl_regression", {"d_x": 0}, "d_x"),
    ("icl_regression", {"kind": True}, "kind"),
]


@pytest.mark.parametrize("name, params, bad", BAD)
def test_bad_params_raise_value_error_naming_the_parameter(name, params, bad):
    with pytest.raises(ValueError) as info:
        tasks.make(name, **params)
    message = str(info.value)
    assert repr(bad) in message and name in message


def test_bad_value_message_says_what_is_allowed():
    with pytest.raises(ValueError, match=r"'kind' = 'exact'.*one of 'leaky', 'oscillator'"):
        tasks.make("integration", kind="exact")
    with pytest.raises(ValueError, match=r"'max_len' = -1.*>= 1"):
        tasks.make("parity", max_len=-1)
    with pytest.raises(ValueError, match=r"valid parameters: max_len, exhaustive"):
        tasks.make("parity", lenght=5)


def test_perfect_outputs_score_perfectly_and_wrong_ones_do_not(task):
    batch = task.sample(16, seed=0)
    good = task.evaluate(perfect_outputs(task, batch), batch)
    bad = task.evaluate(wrong_outputs(task, batch), batch)
    assert all(isinstance(v, float) for v in good.values())
    if task.loss == "ce":
        assert good["accuracy"] == 1.0 and bad["accuracy"] < 1.0
    else:
        assert good["mse"] == 0.0 and bad["mse"] > 0.0


def test_ensemble_outputs_average_members(task):
    batch = task.sample(16, seed=0)
    stacked = torch.stack([perfect_outputs(task, batch), wrong_outputs(task, batch)])  # (2, B, T, d_output)
    members = task.evaluate_members(stacked, batch)
    assert len(members) == 2 and members[0].keys() == members[1].keys()
    mean = task.evaluate(stacked, batch)
    for key, value in mean.items():
        assert value == pytest.approx((members[0][key] + members[1][key]) / 2, nan_ok=True)
    assert task.evaluate_members(stacked[0], batch) == [members[0]]


def test_evaluate_refuses_mismatched_outputs(task):
    batch = task.sample(4, seed=0)
    with pytest.raises(ValueError, match="do not match"):
        task.evaluate(torch.zeros(4, batch.length + 1, task.d_output), batch)
    with pytest.raises(ValueError, match="do not match"):
        task.evaluate(torch.zeros(4, batch.length, task.d_output + 1), batch)


def test_masked_positions_do_not_count(task):
    batch = task.sample(16, seed=0)
    outputs = perfect_outputs(task, batch)
    noise = wrong_outputs(task, batch)
    outputs[~batch.mask] = noise[~batch.mask]  # wrong only where the mask is False
    metrics = task.evaluate(outputs, batch)
    assert metrics.get("accuracy", 1.0) == 1.0 and metrics.get("mse", 0.0) == 0.0


def test_decode_gives_one_label_per_step(task):
    batch = task.sample(2, seed=0)
    labels = task.decode(batch.inputs[0])
    assert len(labels) == batch.length and all(isinstance(s, str) and s for s in labels)
    if task.input_kind == "tokens":
        assert len(set(task.decode(torch.arange(task.vocab_size)))) == task.vocab_size
        with pytest.raises(ValueError):
            task.decode([task.vocab_size])


def test_batch_to_and_rows(task):
    batch = task.sample(6, seed=0)
    moved = batch.to("cpu")
    assert torch.equal(moved.inputs, batch.inputs) and moved.features.keys() == batch.features.keys()
    part = batch.rows(slice(1, 3))
    assert part.n == 2 and torch.equal(part.inputs, batch.inputs[1:3])
    assert all(v.shape[0] == 2 for v in part.features.values())


@pytest.mark.parametrize("name", ALL)
def test_paper_scale_settings_are_valid_params(name):
    paper = tasks.paper_params(name)
    if name == "regular":  # building 5000 automata takes seconds; check the names and the values' types only
        task = tasks.make(name)
        assert set(paper) <= set(task.params)
        assert all(type(v) is type(task.params[k]) for k, v in paper.items())
        return
    task = tasks.make(name, **paper)
    assert all(task.params[k] == v for k, v in paper.items())
    assert task.sample(2, seed=0).mask.any()


def test_override_cache_does_not_let_a_bool_pass_for_an_int():
    task = tasks.make("parity")
    task.sample(2, seed=0, length=1)
    with pytest.raises(ValueError, match="'length' = True"):
        task.sample(2, seed=0, length=True)


def test_param_help_lists_every_parameter(task):
    text = task.param_help()
    assert all(line.split(":")[0] in task.params for line in text.splitlines())
    assert len(text.splitlines()) == len(task.params)
