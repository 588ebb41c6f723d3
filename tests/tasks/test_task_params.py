"""Parameter validation and the stable hash behind deterministic sampling."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pytest

import tasks
from task_helpers import SMALL
from tasks.params import build_params, param, stable_hash


@dataclass(frozen=True)
class Example:
    size: int = param(3, ge=1, le=10)
    rate: float = param(0.5, gt=0.0, lt=1.0)
    flag: bool = param(False)
    kind: Literal["a", "b"] = param("a")
    limit: int | None = param(None, ge=0)


def test_defaults_and_coercion():
    p = build_params(Example, "ex", {"rate": 1 / 4, "size": np.int64(4), "limit": 7})
    assert p == Example(size=4, rate=0.25, flag=False, kind="a", limit=7)
    assert type(p.size) is int
    assert build_params(Example, "ex", {}) == Example()
    assert build_params(Example, "ex", {"limit": None}).limit is None
    assert build_params(Example, "ex", {"rate": np.float32(0.5)}).rate == 0.5


@pytest.mark.parametrize("values, name", [
    ({"size": 0}, "size"), ({"size": 11}, "size"), ({"size": 2.0}, "size"), ({"size": True}, "size"),
    ({"rate": 0.0}, "rate"), ({"rate": 1.0}, "rate"), ({"rate": float("inf")}, "rate"), ({"rate": "x"}, "rate"),
    ({"flag": 1}, "flag"), ({"kind": "c"}, "kind"), ({"limit": -1}, "limit"), ({"other": 1}, "other"),
])
def test_bad_values_name_the_parameter(values, name):
    with pytest.raises(ValueError, match=f"'{name}'"):
        build_params(Example, "ex", values)


def test_stable_hash_ignores_key_order_and_sees_values():
    assert stable_hash("t", {"a": 1, "b": 2.5}) == stable_hash("t", {"b": 2.5, "a": 1})
    assert stable_hash("t", {"a": 1}) != stable_hash("t", {"a": 2}) != stable_hash("u", {"a": 2})
    assert 0 <= stable_hash("t") < 2 ** 64


DIGEST = """
import hashlib, json, sys
import tasks
small = json.loads(sys.argv[1])
out = {}
for name, params in small.items():
    b = tasks.make(name, **params).sample(8, seed=3)
    out[name] = hashlib.sha256(b.inputs.numpy().tobytes() + b.targets.numpy().tobytes()).hexdigest()
print(json.dumps(out))
"""


def test_batches_are_identical_in_another_process_with_another_hash_seed():
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    run = subprocess.run([sys.executable, "-c", DIGEST, json.dumps(SMALL)], env=env,
                         capture_output=True, text=True, check=True, timeout=120)
    other = json.loads(run.stdout)
    for name, params in SMALL.items():
        b = tasks.make(name, **params).sample(8, seed=3)
        here = hashlib.sha256(b.inputs.numpy().tobytes() + b.targets.numpy().tobytes()).hexdigest()
        assert other[name] == here, name
