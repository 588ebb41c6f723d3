"""probe: take small recurrent networks apart and check theory against them.

The public names are imported lazily so that ``probe --help`` does not pay for torch::

    import probe
    model = probe.models.make("gru", task, hidden=64)
    outputs, cache = probe.intervene(model, inputs, [probe.Edit("layers.0.hook_h", 5, probe.zero_ablate())])
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "models": "probe.models",
    "scan": "probe.scan",
    "Edit": "probe.interventions",
    "intervene": "probe.interventions",
    "patch_from": "probe.interventions",
    "zero_ablate": "probe.interventions",
    "mean_ablate": "probe.interventions",
    "scale": "probe.interventions",
    "clamp": "probe.interventions",
    "set_to": "probe.interventions",
    "step_hook": "probe.interventions",
    "das": "probe.das",
    "interchange": "probe.das",
    "DAS": "probe.das",
    "RotatedSwap": "probe.das",
    "train": "probe.training",
    "open_run": "probe.runs",
    "list_runs": "probe.runs",
    "Run": "probe.runs",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'probe' has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name])
    value = module if _LAZY[name] == f"probe.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
