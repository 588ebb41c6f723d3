"""White-noise integration: targets equal the direct filtered sums."""
from __future__ import annotations

import math

import pytest

import tasks


@pytest.mark.parametrize("params", [{"gamma": 0.8}, {"gamma": 1.0}, {"kind": "oscillator", "gamma": 0.9, "frequency": 0.7}])
def test_targets_equal_the_direct_sum(params):
    task = tasks.make("integration", length=30, **params)
    batch = task.sample(4, seed=0)
    omega = params.get("frequency", 0.0) if params.get("kind") == "oscillator" else 0.0
    for i in range(4):
        x = batch.inputs[i, :, 0].double().tolist()
        energy = 0.0
        for t in range(30):
            y = sum(params["gamma"] ** k * math.cos(omega * k) * x[t - k] for k in range(t + 1))
            energy += x[t] ** 2
            assert batch.targets[i, t, 0].item() == pytest.approx(y, rel=1e-4, abs=1e-4)
            assert batch.features["target"][i, t].item() == pytest.approx(y, rel=1e-4, abs=1e-4)
            assert batch.features["energy"][i, t].item() == pytest.approx(energy, rel=1e-4)
    assert batch.mask.all()


def test_noise_scale_and_long_split():
    task = tasks.make("integration", noise_std=2.0)
    batch = task.sample(256, seed=0)
    assert batch.inputs.std().item() == pytest.approx(2.0, rel=0.05)
    assert task.sample(2, seed=0, **task.splits()["len_4x"]).length == 256
