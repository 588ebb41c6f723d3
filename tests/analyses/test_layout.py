"""The shape of ``analyses/``: one package per study, imports that run one way, names that stay put.

The import graph is read from the source (an AST walk over every ``import``, also those inside
functions), so a circle held together by a late import is caught even though it imports fine.
"""
import ast
import importlib
import warnings
from pathlib import Path

import pytest

import analyses
from analyses import base as moved
from probe import claims

ROOT = Path(analyses.__file__).parent
ANALYSES = ["attention", "automaton", "cells", "magnitude", "memory", "ngram", "parallel", "spectrum"]
STUDIES = sorted(ANALYSES + ["lsrl"])
CLAIMS = ["attention.construction_exact", "attention.discovered", "cells.charlm", "cells.saturation",
          "disjointness.order_asymmetry", "integration.outlier_eigenvalue", "integration.theory_match",
          "lsrl.exact", "lsrl.ground_truth", "parallel.predictability", "parity.automaton", "parity.infinite_generalization",
          "recall.delta_rule", "recall.state_frontier", "regular.icll", "repetition.linear_large", "repetition.onion_small"]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in ROOT.rglob("*.py")}


def _target(module: str, level: int, base: str | None, package: str) -> str:
    if level:
        base_parts = package.split(".")[: len(package.split(".")) - level + 1]
        return ".".join(base_parts + ([base] if base else []))
    return base or ""


def import_graph() -> dict[str, set[str]]:
    """module -> the analyses modules it imports anywhere in its source.

    ``from analyses.x import y`` is an edge to ``analyses.x.y`` when that is a module, else to
    ``analyses.x`` (the name is read from its ``__init__``). Importing a submodule also runs its
    packages' ``__init__``, but a package may import its own submodules, so those edges are left
    out: only the module that defines the imported name counts.
    """
    graph = {}
    for name, path in MODULES.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _target(name, node.level, node.module, package)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
            else:
                continue
            edges |= {t for t in targets if t in MODULES and t != name}
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_graph_reader_finds_a_circle_hidden_in_a_function():
    graph = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert cycles(graph) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_anywhere_in_analyses():
    assert cycles(import_graph()) == []


def test_a_study_init_never_imports_its_claims_and_claims_import_nothing_of_another_study_init():
    graph = import_graph()
    for study in STUDIES:
        assert f"analyses.{study}.claims" not in graph[f"analyses.{study}"], study
        for name, edges in graph.items():
            if name.startswith(f"analyses.{study}.") and not name.endswith(".claims"):
                assert f"analyses.{study}.claims" not in edges, f"{name} imports the claims"


def test_analysis_names_claim_ids_and_studies_stay_put():
    assert analyses.names() == ANALYSES
    assert analyses.studies() == STUDIES
    analyses.load_all()
    assert [c.id for c in claims.registered()] == CLAIMS


def test_every_study_has_its_pieces():
    for study in STUDIES:
        folder = ROOT / study
        assert (folder / "claims.py").is_file() and (folder / "NOTES.md").is_file(), study
        if study in ANALYSES:
            assert (folder / "analysis.py").is_file(), study


def test_module_docstrings_say_what_a_module_does_in_a_few_lines():
    # lab notes (numbers, dates, searches) live in NOTES.md, not in docstrings
    for name, path in MODULES.items():
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert len(doc.splitlines()) <= 40, f"{name}: {len(doc.splitlines())} docstring lines"


def test_no_flat_helper_modules_are_left_in_analyses():
    assert sorted(p.name for p in ROOT.glob("*.py")) == ["__init__.py", "base.py"]


@pytest.mark.parametrize("old", sorted(moved.MOVED))
def test_old_import_paths_still_work_with_a_deprecation_warning(old):
    new = moved.MOVED[old]
    if new is None:
        return
    with pytest.warns(DeprecationWarning, match=old.replace(".", r"\.")):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)


def test_renamed_settings_and_moved_claims_forward_with_a_warning():
    from analyses.memory import plans
    from analyses.memory.claims import state_frontier

    with pytest.warns(DeprecationWarning, match="Plan"):
        assert plans.Plan is plans.MemorySettings
    with pytest.warns(DeprecationWarning, match="state_frontier"):
        assert analyses.memory.state_frontier is state_frontier
    with warnings.catch_warnings(), pytest.raises(AttributeError):
        warnings.simplefilter("error")
        analyses.memory.no_such_name
