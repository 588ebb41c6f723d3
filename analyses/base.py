"""The Result contract every analysis returns, and the JSON conversion its cache relies on.

An analysis module ``analyses/<name>.py`` defines::

    @dataclass
    class CellsResult(Result):
        selectivity: list[float] = field(default_factory=list)   # extra fields, JSON-able
        def figures(self): return {"selectivity": go.Figure(...)}

    def analyze(model, task, **params) -> CellsResult             # one trained model
    def analyze_run(run, member=0, **params) -> CellsResult       # optional: needs the whole run

and the registry in ``analyses/__init__.py`` finds it by its file name. ``to_dict`` /
``from_dict`` round-trip through JSON (arrays and tensors become nested lists), which is what
``runs/<id>/analyses/<name>.json`` holds; nothing is pickled.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any


def to_jsonable(value: Any) -> Any:
    """Nested dicts/lists of plain numbers and strings from tensors, arrays and numpy scalars."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    if isinstance(value, float):
        return value
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch here
        value = value.detach().cpu().numpy()
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return to_jsonable(value.tolist())
    if isinstance(value, complex):
        return {"re": value.real, "im": value.imag}
    raise TypeError(f"cannot store {type(value).__name__} in a Result; convert it to numbers or lists")


@dataclass
class Result:
    """What every analysis returns.

    Attributes
    ----------
    summary : dict[str, float | str]
        Headline figures, printed by ``probe analyze`` and shown by the explorer.
    data : dict
        Anything else worth keeping (JSON-able); subclasses usually add typed fields instead.
    """

    summary: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict of every dataclass field."""
        return {f.name: to_jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Result":
        """Rebuild from :meth:`to_dict` output (unknown keys ignored, missing ones defaulted)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def figures(self) -> dict[str, Any]:
        """Plotly figures by name; none by default."""
        return {}

    def format_summary(self) -> str:
        """The summary as ``key  value`` lines."""
        if not self.summary:
            return "(empty summary)"
        width = max(map(len, self.summary))
        fmt = lambda v: (f"{v:.4g}" if isinstance(v, float) and not math.isnan(v) else str(v))  # noqa: E731
        return "\n".join(f"{k.ljust(width)}  {fmt(v)}" for k, v in self.summary.items())


def rises(values, tolerance: float, min_rise: float) -> bool:
    """Whether a curve rises: non-decreasing up to ``tolerance`` at each step (noise), and the
    last value above the first by at least ``min_rise`` (a real rise, not a flat line)."""
    v = list(values)
    return len(v) >= 2 and all(b >= a - tolerance for a, b in zip(v, v[1:])) and v[-1] - v[0] >= min_rise
