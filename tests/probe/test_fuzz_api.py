"""Fuzz of the Python API: nonsense is refused at the call with a ``ValueError`` or ``TypeError``
that names what was wrong, never accepted silently and never a failure deep inside torch.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import probe
import tasks
from probe import das
from probe.training import TrainConfig

H = "layers.0.hook_h"
PARITY = tasks.make("parity")


@pytest.fixture(scope="module")
def gru():
    return probe.models.make("gru", PARITY, hidden=8, seed=0)


@pytest.fixture(scope="module")
def x():
    return PARITY.sample(n=2, seed=0, length=6).inputs


def _cases(gru, x):
    src = gru.run_with_cache(x)[1]
    z = probe.zero_ablate()
    cases = {
        # Edit itself
        "step float": lambda: probe.Edit(H, 1.5, z), "step bool": lambda: probe.Edit(H, True, z),
        "step text": lambda: probe.Edit(H, "1", z), "step None": lambda: probe.Edit(H, None, z),
        "step numpy float": lambda: probe.Edit(H, np.float64(1.0), z),
        "units float": lambda: probe.Edit(H, 1, z, units=[0.5]), "units bool": lambda: probe.Edit(H, 1, z, units=[True]),
        "units text": lambda: probe.Edit(H, 1, z, units="abc"), "units empty": lambda: probe.Edit(H, 1, z, units=[]),
        "units negative": lambda: probe.Edit(H, 1, z, units=[-1]),
        "units float tensor": lambda: probe.Edit(H, 1, z, units=torch.tensor([0.5])),
        "units bool tensor": lambda: probe.Edit(H, 1, z, units=torch.tensor([True, False])),
        "units 2-D tensor": lambda: probe.Edit(H, 1, z, units=torch.zeros(2, 2, dtype=torch.long)),
        "units a set": lambda: probe.Edit(H, 1, z, units={1, 2}), "units an int": lambda: probe.Edit(H, 1, z, units=3),
        "fn None": lambda: probe.Edit(H, 1, None), "fn a number": lambda: probe.Edit(H, 1, 5),
        "hook a number": lambda: probe.Edit(5, 1, z), "hook None": lambda: probe.Edit(None, 1, z),
        # intervene
        "edits one Edit": lambda: probe.intervene(gru, x, probe.Edit(H, 1, z)),
        "edits of numbers": lambda: probe.intervene(gru, x, [5]),
        "unknown hook": lambda: probe.intervene(gru, x, [probe.Edit("layers.0.hook_q", 1, z)]),
        "step past the end": lambda: probe.intervene(gru, x, [probe.Edit(H, 6, z)]),
        "step before the start": lambda: probe.intervene(gru, x, [probe.Edit(H, -7, z)]),
        "unit past the width": lambda: probe.intervene(gru, x, [probe.Edit(H, 1, z, units=[8])]),
        "mean of the wrong width": lambda: probe.intervene(gru, x, [probe.Edit(H, 1, probe.mean_ablate(torch.zeros(5)))]),
        "patch of the wrong width": lambda: probe.intervene(gru, x, [probe.Edit(H, 1, probe.patch_from(src["hook_logits"], 1))]),
        "set_to of the wrong width": lambda: probe.intervene(gru, x, [probe.Edit(H, 1, probe.set_to(torch.zeros(3)))]),
        # edit functions
        "clamp inverted": lambda: probe.clamp(min=5, max=1), "clamp of nothing": lambda: probe.clamp(),
        "clamp NaN": lambda: probe.clamp(min=math.nan), "clamp infinite": lambda: probe.clamp(max=math.inf),
        "clamp text": lambda: probe.clamp(min="a"), "clamp bool": lambda: probe.clamp(min=True),
        "scale NaN": lambda: probe.scale(math.nan), "scale infinite": lambda: probe.scale(-math.inf),
        "scale text": lambda: probe.scale("2"), "scale bool": lambda: probe.scale(True), "scale None": lambda: probe.scale(None),
        "set_to NaN": lambda: probe.set_to(math.nan), "set_to NaN tensor": lambda: probe.set_to(torch.tensor([math.nan])),
        "set_to text": lambda: probe.set_to("x"),
        "mean a number": lambda: probe.mean_ablate(5), "mean of ints": lambda: probe.mean_ablate(torch.tensor([1, 2])),
        "mean a scalar": lambda: probe.mean_ablate(torch.tensor(1.0)),
        "mean NaN": lambda: probe.mean_ablate(torch.tensor([math.nan])),
        "patch step 999": lambda: probe.patch_from(src[H], 999), "patch step float": lambda: probe.patch_from(src[H], 1.5),
        "patch step bool": lambda: probe.patch_from(src[H], True),
        "patch from a vector": lambda: probe.patch_from(torch.zeros(3), 0), "patch from text": lambda: probe.patch_from("x", 0),
        # caches and hooks
        "names_filter unknown": lambda: gru.run_with_cache(x, names_filter=["nosuch"]),
        "names_filter unknown name": lambda: gru.run_with_cache(x, names_filter="nosuch"),
        "names_filter empty": lambda: gru.run_with_cache(x, names_filter=[]),
        "names_filter numbers": lambda: gru.run_with_cache(x, names_filter=[5]),
        "names_filter a number": lambda: gru.run_with_cache(x, names_filter=5),
        "names_filter a dict": lambda: gru.run_with_cache(x, names_filter={"a": 1}),
        "names_filter in intervene": lambda: probe.intervene(gru, x, [], names_filter=["nosuch"]),
        "fwd_hooks unknown": lambda: gru.run_with_hooks(x, fwd_hooks=[("nosuch", lambda v, hook: v)]),
        # members
        "member float": lambda: probe.models.make("gru", PARITY, hidden=4, members=2).member(1.5),
        "member bool": lambda: probe.models.make("gru", PARITY, hidden=4, members=2).member(True),
        "member text": lambda: probe.models.make("gru", PARITY, hidden=4, members=2).member("0"),
        "member past the end": lambda: probe.models.make("gru", PARITY, hidden=4, members=2).member(2),
        # DAS
        "interchange unit 999": lambda: das.interchange(gru, x, x, H, 2, units=[999]),
        "interchange unit float": lambda: das.interchange(gru, x, x, H, 2, units=[0.5]),
        "interchange step float": lambda: das.interchange(gru, x, x, H, 1.5),
        "interchange unknown site": lambda: das.interchange(gru, x, x, "nosuch", 1),
        "read_site step bool": lambda: das.read_site(gru, x, H, True),
        # the store
        "open_run empty": lambda: probe.open_run(""), "open_run a number": lambda: probe.open_run(5),
        "open_run a long id": lambda: probe.open_run("x" * 5000), "open_run None": lambda: probe.open_run(None),
        "list_runs empty store": lambda: probe.list_runs(""), "list_runs newline": lambda: probe.list_runs("a\nb"),
    }
    return cases


def test_nonsense_is_refused_at_the_call(gru, x):
    cases = _cases(gru, x)
    accepted, wrong = [], []
    for name, call in cases.items():
        try:
            call()
        except (ValueError, TypeError) as e:
            if not str(e):
                wrong.append((name, "empty message"))
        except Exception as e:  # noqa: BLE001 - the point: anything else is a failure deep inside
            wrong.append((name, f"{type(e).__name__}: {e}"))
        else:
            accepted.append(name)
    assert not accepted, f"accepted silently: {accepted}"
    assert not wrong, wrong


BAD_NUMBERS = [math.nan, math.inf, -math.inf, True, "x", [1], {}]
BAD_ARCH = {
    "elman": {"gain": BAD_NUMBERS + [0, -1, None], "nonlinearity": ["sigmoid", 1, None], "h0": ["twos", 0]},
    "linear": {"init_scale": BAD_NUMBERS + [-1e-9], "scan": ["fast", None]},
    "lru": {"r_min": BAD_NUMBERS + [1, 2, -0.1], "r_max": BAD_NUMBERS + [1, 1.5, -1],
            "state_dim": [0, -1, 1.5, "4", True, math.nan], "max_phase": BAD_NUMBERS + [0, -1]},
    "hawk": {"c": BAD_NUMBERS + [0, -1], "a_min": BAD_NUMBERS + [0, 1, 2], "a_max": BAD_NUMBERS + [0, 1, 2],
             "conv": [-1, 1.5, True, 10**5, "4", None], "gates": ["tanh", 0], "decay": ["none", None],
             "normalize": [1, "yes", None]},
}
ARCH_CASES = [(arch, key, v) for arch, params in BAD_ARCH.items() for key, values in params.items() for v in values]
SIZE_CASES = [("hidden", v) for v in [0, -1, 1.5, True, "4", None, 10**6]] + \
             [("layers", v) for v in [0, 257, 10**5, 1.5]] + [("members", v) for v in [0, 4097, 10**6, False]] + \
             [("seed", v) for v in [-1, 2**64, 1.5, "0", None]] + [("d_embed", v) for v in [0, -1, 10**9, 2.5]] + \
             [("embedding", v) for v in ["sparse", None, 1]]


@pytest.mark.parametrize("arch, key, value", ARCH_CASES)
def test_every_bad_architecture_parameter_is_refused_by_name(arch, key, value):
    with pytest.raises((ValueError, TypeError), match=key):
        probe.models.make(arch, PARITY, hidden=4, **{key: value})


@pytest.mark.parametrize("key, value", SIZE_CASES)
def test_bad_sizes_are_refused_by_name(key, value):
    with pytest.raises((ValueError, TypeError), match=key if key != "embedding" else "embedding"):
        probe.models.make("gru", PARITY, **{"hidden": 4, key: value})


def test_crossed_ranges_are_refused():
    with pytest.raises(ValueError, match=r"r_max must lie in \[r_min = 0.9, 1\)"):
        probe.models.make("lru", PARITY, hidden=4, r_min=0.9, r_max=0.5)
    with pytest.raises(ValueError, match=r"a_max must lie in \[a_min = 0.95, 1\)"):
        probe.models.make("hawk", PARITY, hidden=4, a_min=0.95, a_max=0.9)
    with pytest.raises(ValueError, match="needs about .* of memory"):
        probe.models.make("gru", PARITY, hidden=10**6)


TRAIN_CASES = [("steps", v) for v in [0, -1, 1.5, True, 10**12, "10"]] + \
              [("batch_size", v) for v in [0, -1, 1.5, False, 2**40]] + [("eval_n", v) for v in [0, 1e9, None]] + \
              [("lr", v) for v in [0, -1, math.nan, math.inf, "x", None]] + \
              [("n_checkpoints", v) for v in [1, 10**9, 1.5]] + [("warmup", v) for v in [-1, 10, 0.5]] + \
              [("grad_clip", v) for v in [0, -1, math.nan, math.inf]] + [("weight_decay", v) for v in [-1, math.nan]] + \
              [("eval_every", v) for v in [0, 1.5]] + [("seed", v) for v in [-1, 2**64, 1.5]] + \
              [("optimizer", v) for v in ["adam", None]] + [("schedule", v) for v in ["linear", 0]] + \
              [("eval_splits", v) for v in [5, "train", [1]]] + [("shared_batches", v) for v in [1, None]] + \
              [("stateful", v) for v in [1, "yes"]]


@pytest.mark.parametrize("key, value", TRAIN_CASES)
def test_every_bad_training_setting_is_refused_by_name(key, value):
    kw = {"steps": 10, key: value}
    with pytest.raises(ValueError, match=key):
        TrainConfig(**kw)


TASK_CASES = [("parity", k, v) for k in ("max_len", "data_seed") for v in [0 if k == "max_len" else -1, 1.5, True, "x",
                                                                          math.nan, 10**30]] + \
             [("parity", "fraction", v) for v in [0, 2, math.nan, math.inf, "1"]] + \
             [("recall", k, v) for k in ("vocab_size", "seq_len", "num_pairs") for v in [0, -1, 10**12, 2.5]] + \
             [("integration", k, v) for k in ("gamma", "noise_std") for v in [0, -1, math.nan, math.inf]] + \
             [("icl_regression", "n_examples", 10**6), ("icl_regression", "d_x", 10**5), ("regular", "n_train_automata", 10**6),
              ("regular", "max_strings", 10**4), ("charlm", "length", 10**7), ("repetition", "n_symbols", 1)]


@pytest.mark.parametrize("name, key, value", TASK_CASES)
def test_every_bad_task_parameter_is_refused_by_name(name, key, value):
    # the row bounds: one row of many strings of many letters, or of many wide examples
    extra = {("regular", "max_strings"): {"max_len": 10**4}, ("icl_regression", "n_examples"): {"d_x": 64}}.get((name, key), {})
    with pytest.raises(ValueError, match=key):
        tasks.make(name, **{key: value}, **extra)


@pytest.mark.parametrize("bad", [dict(store=""), dict(store="a\nb"), dict(from_step=-1), dict(from_step=1.5),
                                 dict(from_step=10**12), dict(device="tpu"), dict(eval_splits=["nope"]),
                                 dict(batch_size=10**8), dict(eval_n=10**9)])
def test_a_bad_train_call_raises_and_leaves_no_folder(tmp_path, monkeypatch, bad):
    monkeypatch.setenv("PROBE_MEMORY_BYTES", str(2 * 10**9))
    monkeypatch.chdir(tmp_path)
    model = probe.models.make("gru", PARITY, hidden=4)
    kw = {"steps": 5, "store": str(tmp_path / "store"), "progress": False, **bad}
    with pytest.raises(ValueError):
        probe.train(PARITY, model, **kw)
    assert not list(tmp_path.iterdir())


def test_a_model_that_is_not_one_is_a_type_error(tmp_path):
    with pytest.raises(TypeError, match="probe.models.make"):
        probe.train(PARITY, torch.nn.Linear(2, 2), steps=5, store=tmp_path / "s", progress=False)
    assert not (tmp_path / "s").exists()
