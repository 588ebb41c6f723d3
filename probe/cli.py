"""The ``probe`` command: train, list runs, analyse, verify claims, draw figures, run the demo.

Every subcommand imports what it needs (torch, tasks, analyses) inside its function, so that
``probe --help`` answers at once. Bad input of any kind ends in one line on stderr,
``probe: error: ...``, and exit status 2, before anything in the store is touched.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable

_NAMESPACES = ("task", "model", "train")
_FLAG_KEYS = {"hidden": "--hidden", "layers": "--layers", "members": "--members", "seed": "--seed",
              "steps": "--steps", "arch": "--arch", "device": "--device", "store": "--store"}


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    # argparse prints the usage block and exits; we want one line and control over the exit.
    def error(self, message: str):
        raise _UsageError(message)

    def format_help(self) -> str:
        # A subcommand may list what it accepts (tasks, architectures) at the end of its help; that
        # needs imports, so it is built only when this help is asked for.
        lazy = getattr(self, "lazy_epilog", None)
        if lazy is not None:
            self.epilog = lazy()
        return super().format_help()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _natural(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip() or any(c.isspace() for c in key):
        raise argparse.ArgumentTypeError(f"expected key=value (e.g. train.lr=0.01), got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw  # plain words need no quotes: model.nonlinearity=relu
    return key.strip(), value


def resolve_sets(pairs: list[tuple[str, Any]], task_name: str, arch: str) -> dict[str, dict[str, Any]]:
    """Sort ``--set`` pairs into task, model and training parameters.

    ``task.max_len=10``, ``model.nonlinearity=relu``, ``train.lr=0.01``; a key without a prefix
    goes where it is known, if that is exactly one place. Unknown or ambiguous keys raise
    ``ValueError`` listing the valid ones.
    """
    import tasks
    import probe.models
    from probe.training import field_names

    known = {
        "task": set(tasks.make(task_name).params),
        "model": {"embedding", "d_embed"} | set(probe.models.arch_params(arch)),
        "train": set(field_names()) - {"steps", "seed"},
    }
    out: dict[str, dict[str, Any]] = {ns: {} for ns in _NAMESPACES}
    valid = lambda: ", ".join(f"{ns}.{k}" for ns in _NAMESPACES for k in sorted(known[ns]))  # noqa: E731
    for key, value in pairs:
        ns, dot, name = key.partition(".")
        if not dot:
            ns, name = "", key
        if name in _FLAG_KEYS and ns in ("", "model", "train"):
            raise ValueError(f"--set {key}: use {_FLAG_KEYS[name]} instead")
        if ns and ns not in _NAMESPACES:
            raise ValueError(f"--set {key}: unknown prefix {ns!r}; use task., model. or train. (valid keys: {valid()})")
        if not ns:
            homes = [n for n in _NAMESPACES if name in known[n]]
            if len(homes) > 1:
                raise ValueError(f"--set {key} is ambiguous; write {' or '.join(f'{h}.{name}' for h in homes)}")
            ns = homes[0] if homes else ""
        if not ns or name not in known[ns]:
            every = [f"{n}.{k}" for n in _NAMESPACES for k in sorted(known[n])]
            raise ValueError(f"unknown --set key {key!r} for task {task_name} and arch {arch}; "
                             f"{_choices(key if dot else name, every, 'keys', 'probe train --help lists them')}")
        out[ns][name] = value
    return out


# ---------------------------------------------------------------------------------------------
# subcommands: each takes the parsed args and returns an exit status


def _check_store(store: str) -> None:
    from probe.runs import store_dir

    store_dir(store)


def _threads() -> None:
    # One torch thread unless OMP_NUM_THREADS says otherwise: probe.threads decides, for the
    # library (probe.train) and the command alike.
    import probe.threads

    probe.threads.apply()


def _choices(value: str, valid: list[str], what: str, hint: str = "") -> str:
    from probe._suggest import choices

    return choices(value, valid, what, hint)


def cmd_train(args) -> int:
    _check_store(args.store)
    _threads()
    import tasks
    import probe

    if args.task not in tasks.names():
        raise ValueError(f"unknown task {args.task!r}; {_choices(args.task, tasks.names(), 'tasks')}")
    if args.arch not in probe.models.names():
        raise ValueError(f"unknown arch {args.arch!r}; {_choices(args.arch, probe.models.names(), 'archs')}")
    from probe.training import TrainConfig, check_fits

    sets = resolve_sets(args.set or [], args.task, args.arch)
    task = tasks.make(args.task, **sets["task"])
    config = probe.models.make_config(args.arch, task, hidden=args.hidden, layers=args.layers, members=args.members,
                                      seed=args.seed, **sets["model"])
    # Everything the run would need is checked before its weights are drawn (a minute for a big model).
    check_fits(task, config, TrainConfig(steps=args.steps, seed=args.seed, **sets["train"]))
    model = probe.models.from_config(config)
    run = probe.train(task, model, steps=args.steps, seed=args.seed, store=args.store, device=args.device,
                      from_step=args.from_step, **sets["train"])
    from probe.runs import format_runs, list_runs

    print(format_runs([r for r in list_runs(args.store) if r["id"] == run.id]))
    print(f"run folder: {run.path}")
    return 0


def cmd_runs(args) -> int:
    from probe.runs import filter_runs, format_runs, list_runs

    if args.where is not None:
        filter_runs([], args.where)  # a bad key is an error even in an empty store
    rows = list_runs(args.store)
    print(format_runs(rows if args.where is None else filter_runs(rows, args.where)))
    return 0


def cmd_analyze(args) -> int:
    _check_store(args.store)
    import analyses
    from probe.progress import Progress
    from probe.runs import open_run

    if args.analysis not in analyses.names():
        raise ValueError(f"unknown analysis {args.analysis!r}; {_choices(args.analysis, analyses.names(), 'analyses')}")
    run = open_run(args.run, store=args.store)
    _threads()
    members = int(run.config["model"].get("members", 1))
    if not 0 <= args.member < members:
        raise ValueError(f"--member {args.member} out of range: run {run.id} has members 0..{members - 1}")
    from probe import _safepath

    _safepath.run_subdir(run.path, "analyses")  # a link or a file there is one error line, before any progress
    cache = run.path / "analyses" / (f"{args.analysis}.json" if args.member == 0 else f"{args.analysis}.m{args.member}.json")
    cached = cache.is_file()
    if not cached:
        # a damaged checkpoint or metrics file is one error line, before any progress line
        run.model(args.member)
        run.metrics  # noqa: B018  (reads and checks metrics.jsonl)
    with Progress(total=1, desc=f"analyze {args.analysis} on {run.id} member {args.member}", unit="stage") as bar:
        bar.stage("loading the cached result" if cached else "computing (cached in the run folder afterwards)")
        result = analyses.analyze(args.analysis, run, member=args.member)
        bar.update(1)
    print(f"{args.analysis} on {run.id}, member {args.member}")
    print(result.format_summary())
    return 0


def cmd_verify(args) -> int:
    _check_store(args.store)
    import analyses
    from probe import claims

    _threads()
    analyses.load_all()
    only = None if args.only is None else [i.strip() for i in args.only.split(",") if i.strip()]
    specs = claims.registered(only)
    if args.list:
        print(claims.format_list(specs))
        return 0
    results = claims.run(specs, profile=args.profile, store=args.store, workers=args.workers,
                         engine=args.engine, address=args.address)
    print(claims.format_table(results))
    # --only checks some claims: their rows replace theirs in the report, the others stay.
    md, _ = claims.write_report(results, store=args.store, profile=args.profile, merge=only is not None)
    print(f"report: {md} ({len(claims.read_report(args.store)[1])} claims)")
    return 0 if all(c.passed for c in results) else 1


def cmd_sweep(args) -> int:
    _check_store(args.store)
    _threads()
    from probe import sweep

    return sweep.command(args)


def cmd_figs(args) -> int:
    from pathlib import Path

    import paper_figs

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ValueError(f"--out {args.out!r} is a file, not a directory")
    store = paper_figs.default_store(args.out) if args.store is None else args.store
    _check_store(str(store))
    _threads()
    names = paper_figs.names() if args.only is None else [paper_figs.check_name(args.only)]
    from probe import sweep

    with sweep.using(args.engine, args.workers, args.address):
        written = paper_figs.make_all(names, args.out, profile=args.profile, store=store)
    for path in written:
        print(path)
    return 0


def cmd_demo(args) -> int:
    _check_store(args.store)
    _threads()
    from probe import demo

    t0 = time.perf_counter()
    runs = demo.run(store=args.store)
    members = _demo_summary(runs, demo.QUICK if len(runs) == len(demo.QUICK) else (), args.store)
    if args.claims:
        _demo_claims(args.store)
    print(f"\ndemo done in {time.perf_counter() - t0:.0f} s.")
    _demo_next(runs, demo.QUICK if len(runs) == len(demo.QUICK) else (), args.store, args.port, members)
    # The demo ends in the explorer when a person is watching (a terminal) or asks for it; tests
    # and pipes get the table and exit.
    if args.app or (args.app is None and sys.stdout.isatty() and sys.stdin.isatty()):
        return _serve(args.store, "127.0.0.1", args.port)
    return 0


def _demo_analysis(spec, run) -> dict:
    """Run (or load) the analysis of one demo run; the summary a Goal reads, plus what to print."""
    import analyses

    if spec.analysis == "automaton":  # parity: every member, as the claim does
        members = int(run.config["model"].get("members", 1))
        found = [analyses.analyze("automaton", run, member=m).summary for m in range(members)]
        ok = [s["n_states_minimal"] == 2 and bool(s["equivalent"]) for s in found]
        best = ok.index(True) if any(ok) else 0
        return {**found[best], "members_parity": sum(ok) / len(ok), "member": best,
                "headline": f"{sum(ok)}/{len(ok)} members extract to the 2-state parity automaton; member {best}: "
                            f"accuracy {found[best]['automaton_accuracy_len_10000']:.3g} at length 10,000"}
    summary = dict(analyses.analyze(spec.analysis, run).summary)
    try:
        headline = _HEADLINES[spec.analysis](summary, run)
    except (KeyError, TypeError, ValueError):  # a summary without the usual keys: the plan's text
        headline = None
    return {**summary, "member": 0, "headline": headline}


def _g(v) -> str:
    return "?" if v is None else f"{v:.3g}"


# One line per analysis: its headline numbers on a demo run.
_HEADLINES: dict[str, Callable[[dict, Any], str]] = {
    "memory": lambda s, run: (
        f"accuracy {_g(s['accuracy.short_long'])} with the short set first vs {_g(s['accuracy.long_short'])} "
        f"with the long set first" if "accuracy.short_long" in s else
        f"{_g(s['retrieval.retrievable_at_end'])} of {s['retrieval.pairs_stored']} stored pairs read back "
        f"from the matrix state (S_t k closest to its own value) at the last step"
        if "retrieval.pairs_stored" in s else
        f"accuracy {_g(s['accuracy.shortest_lag'])} at the shortest lag, {_g(s['accuracy.longest_lag'])} "
        f"at the longest"),
    "ngram": lambda s, run: (
        f"legal next letters {_g(s['accuracy'])} against in-context 1-, 2-, 3-gram predictors "
        f"{_g(s['baseline.1gram.accuracy'])}, {_g(s['baseline.2gram.accuracy'])}, {_g(s['baseline.3gram.accuracy'])}"),
    "spectrum": lambda s, run: (
        f"{s['outliers']} eigenvalues left the bulk (radius {_g(s['bulk_radius'])}); the largest, "
        f"{_g(s['largest_outlier_abs'])}, sits near the task's decay {run.config['task']['params'].get('gamma')}"),
    "magnitude": lambda s, run: (
        f"onion intervention accuracy {_g(s['accuracy.onion'])} against {_g(s['accuracy.unigram'])} and "
        f"{_g(s['accuracy.bigram'])} for the linear (unigram, bigram) ones"),
    "cells": lambda s, run: "; ".join(
        f"{f}: best unit AUC {_g(s[f + '.best_score'])} (untrained {_g(s[f + '.null_init'])})"
        for f in ("in_comment", "in_string") if f + ".best_score" in s),
    "attention": lambda s, run: (
        f"correlation {_g(s['correlation'])} with the attention layer read from its weights; "
        f"{s['used']} of {s['neurons']} neurons used (the construction needs {s['construction_neurons']})"),
}


def _demo_summary(runs, plan, store: str) -> dict[str, int]:
    """One line per demo run: its goal, met or not, and what its analysis shows; returns the
    member each analysis looked at, by run id."""
    from probe import demo

    members: dict[str, int] = {}
    if not plan:
        return members
    print("\nWhat each run shows (analyses cached in the store, for the explorer):")
    for i, (spec, run) in enumerate(zip(plan, runs)):
        summary = {}
        if spec.analysis:
            print(f"[{i + 1}/{len(plan)}] analysing {spec.task} ({spec.analysis})", file=sys.stderr, flush=True)
            try:
                summary = _demo_analysis(spec, run)
            except Exception as err:  # noqa: BLE001  (an analysis that fails must not hide the others)
                summary = {"error": f"{type(err).__name__}: {err}"}
        members[run.id] = int(summary.get("member", 0))
        values = demo.values(run, spec.analysis, summary)
        _, met, text = spec.goal.check(values) if spec.goal else (None, True, "")
        mark = "ok " if met else "NOT"
        print(f"  {mark} {spec.task:<15} {text}")
        print(f"      {summary.get('headline') or spec.shows}")
        if "error" in summary:
            print(f"      analysis failed: {summary['error']}")
    return members


def _demo_next(runs, plan, store: str, port: int, members: dict[str, int]) -> None:
    """What to open next: the explorer, one analysis per task, the notebooks."""
    print("\nNext:")
    print(f"  explorer:  probe app --store {store}   then open http://127.0.0.1:{port}/")
    for spec, run in zip(plan, runs):
        if spec.analysis:
            member = f" --member {members[run.id]}" if members.get(run.id) else ""
            print(f"  {spec.task + ':':<15} probe analyze {run.id} {spec.analysis}{member} --store {store}"
                  + (f"   (notebooks/{spec.notebook})" if spec.notebook else ""))
    print(f"  every claim: probe verify --store {store}    figures: probe figs --store {store}")


# Claims the demo checks: quick to run (they reuse the demo's parity run), and the headline of
# the workbench (train, look inside, compare with the paper).
DEMO_CLAIMS = ["parity.infinite_generalization", "parity.automaton"]


def _demo_claims(store: str) -> None:
    import analyses
    from probe import claims

    analyses.load_all()
    print(f"\nchecking claims {', '.join(DEMO_CLAIMS)}", file=sys.stderr, flush=True)
    results = claims.run(claims.registered(DEMO_CLAIMS), profile="quick", store=store)
    print()
    print(claims.format_table(results))
    md, _ = claims.write_report(results, store=store, profile="quick")
    print(f"claims report: {md}; all claims: probe verify --store {store}")


def _serve(store: str, host: str, port: int) -> int:
    import app

    if not app.check_address(host, port):
        print(f"probe: warning: the explorer has no authentication; on --host {host} anyone who can reach "
              f"this machine can read the store and run models (use 127.0.0.1 to keep it local)",
              file=sys.stderr, flush=True)
    print(f"probe explorer on http://{host}:{port}/ (store {store}); Ctrl-C to stop", flush=True)
    app.run(store, host=host, port=port)
    return 0


def cmd_app(args) -> int:
    _check_store(args.store)
    from pathlib import Path

    if not Path(args.store).is_dir():
        raise ValueError(f"no store at {args.store!r}; train a run first (probe train ... --store {args.store})")
    _threads()
    return _serve(args.store, args.host, args.port)


# ---------------------------------------------------------------------------------------------
# the parser


def _add_store(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default="runs", metavar="DIR", help="run store folder (default: runs)")


def _runs_args(p: argparse.ArgumentParser) -> None:
    _add_store(p)
    p.add_argument("--where", metavar="KEY=VALUE[,...]",
                   help="only the runs matching every pair, e.g. task=recall,arch=gru "
                        "(keys: id (a prefix), task, arch, hidden, layers, members, seed, steps, step, status, diverged)")


def _train_epilog() -> str:
    import probe.models
    import tasks

    def line(name: str, params: dict) -> str:
        return f"  {name:<15}" + (" ".join(f"{k}={json.dumps(v)}" for k, v in params.items()) or "(no parameters)")

    return "\n".join(["tasks and their parameters (defaults; change with --set task.<param>=...):",
                      *(line(n, tasks.make(n).params) for n in tasks.names()), "",
                      "architectures and their parameters (defaults; change with --set model.<param>=...):",
                      *(line(a, probe.models.arch_params(a)) for a in probe.models.names()),
                      f"  {'(every arch)':<15}embedding=\"learned\" (or \"onehot\") d_embed=null", "",
                      "training (defaults; change with --set train.<key>=...):", _wrap(_train_defaults()), "",
                      "example: probe train parity --arch gru --hidden 32 --steps 500 --set task.max_len=12"])


def _train_defaults() -> dict:
    import dataclasses

    from probe.training import TrainConfig

    return {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name not in ("steps", "seed")}


def _wrap(params: dict, indent: int = 2, width: int = 100) -> str:
    import textwrap

    text = " ".join(f"{k}={json.dumps(v)}" for k, v in params.items())
    return textwrap.fill(text, width, initial_indent=" " * indent, subsequent_indent=" " * indent)


def _train_args(p):
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.lazy_epilog = _train_epilog
    p.add_argument("task", metavar="TASK", help="task name (listed below)")
    p.add_argument("--arch", required=True, help="architecture (listed below)")
    p.add_argument("--hidden", required=True, type=_positive_int, metavar="N", help="state width")
    p.add_argument("--layers", type=_positive_int, default=1, metavar="L", help="stacked recurrent layers (default: 1)")
    p.add_argument("--members", type=_positive_int, default=1, metavar="M",
                   help="ensemble size: seeds trained at once (default: 1)")
    p.add_argument("--steps", type=_positive_int, default=1000, metavar="S", help="training steps (default: 1000)")
    p.add_argument("--seed", type=_natural, default=0, metavar="S",
                   help="seed of the init (member i gets its own) and of the batches (default: 0)")
    p.add_argument("--set", action="append", type=_key_value, metavar="KEY=VALUE",
                   help="task.<param>, model.<param> or train.<param> (lr, batch_size, optimizer, "
                        "weight_decay, schedule, warmup, grad_clip, eval_every, shared_batches, ...); "
                        "values are JSON, else strings; repeatable")
    _add_store(p)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="auto: cuda when available (default: auto)")
    p.add_argument("--from-step", type=_natural, default=None, metavar="N",
                   help="resume from the checkpoint at step N, deleting later ones (when the newest is damaged)")


def _analyze_args(p):
    p.add_argument("run", metavar="RUN", help="run id (or unique prefix) or run folder")
    p.add_argument("analysis", metavar="ANALYSIS", help="analysis name (see analyses.names())")
    p.add_argument("--member", type=_natural, default=0, metavar="I", help="ensemble member (default: 0)")
    _add_store(p)


def _verify_args(p):
    p.add_argument("--profile", choices=["quick", "full"], default="quick", help="(default: quick)")
    p.add_argument("--only", metavar="ID[,ID...]",
                   help="check only these claims; their rows replace theirs in the report, the others stay")
    p.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                   help="check the claims of different studies in N processes at once; with one study, its "
                        "claims' sweeps train on N local workers (default: 1)")
    _add_engine_args(p)
    p.add_argument("--list", action="store_true",
                   help="list the claims with their expected quick and full times, and exit")
    _add_store(p)


def _add_engine_args(p):
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="where the claims' and figures' sweeps train: local (default) or ray, one Ray task per run")
    p.add_argument("--address", default=None, metavar="ADDR",
                   help="ray engine: 'auto' (a running cluster) or a cluster's address (default: Ray on this machine)")


def _figs_args(p):
    p.add_argument("--out", default="figs_out", metavar="DIR", help="output folder (default: figs_out)")
    p.add_argument("--only", metavar="NAME", help="make only this figure")
    p.add_argument("--profile", choices=["quick", "full"], default="quick")
    p.add_argument("--store", default=None, metavar="DIR",
                   help="run store the figures train into and reuse (default: DIR_runs beside --out; "
                        "--store runs reuses the runs of probe demo and probe verify)")
    p.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                   help="local engine: train a figure's sweep on N worker processes (default: 1, in this process)")
    _add_engine_args(p)


def _sweep_args(p):
    p.add_argument("spec", metavar="SPEC", help="sweep file (TOML): task, arch, hidden, seeds, members, steps, [set]")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: worker processes here (default); ray: one Ray task per point")
    p.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                   help="local engine: worker processes, the cores split among them (default: one per core)")
    p.add_argument("--address", default=None, metavar="ADDR",
                   help="ray engine: 'auto' (a running cluster) or a cluster's address (default: Ray on this machine)")
    p.add_argument("--num-cpus", type=float, default=None, metavar="C", help="ray engine: CPUs per point (default: file, else 1)")
    p.add_argument("--num-gpus", type=float, default=None, metavar="G", help="ray engine: GPUs per point (default: file, else 0)")
    _add_store(p)
    p.add_argument("--dry-run", action="store_true", help="print the grid and its estimated cost; train nothing")
    p.add_argument("--report", action="store_true",
                   help="write the final metrics as CSV and a plotly figure (default: STORE/sweeps/); train nothing")
    p.add_argument("--metric", default=None, help="report: the metric to plot (default: train.accuracy or train.mse)")
    p.add_argument("--x", default=None, metavar="AXIS", help="report: the axis on the x axis (default: the first varying one)")
    p.add_argument("--out", default=None, metavar="DIR", help="report: output folder (default: STORE/sweeps)")


def _port(text: str) -> int:
    value = _natural(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port in 1..65535, got {text!r}")
    return value


def _app_args(p):
    _add_store(p)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_port, default=8050)


def _demo_args(p):
    _add_store(p)
    p.add_argument("--app", action=argparse.BooleanOptionalAction, default=None,
                   help="start the explorer at the end (default: only when run in a terminal)")
    p.add_argument("--port", type=_port, default=8050, help="the explorer's port (default 8050)")
    p.add_argument("--claims", action=argparse.BooleanOptionalAction, default=True,
                   help="check the streaming-parity claims after training (default: yes)")


# name, help, add arguments, run.
_COMMANDS: list[tuple[str, str, Callable, Callable]] = [
    ("train", "train a model (all ensemble members at once); rerun to resume", _train_args, cmd_train),
    ("runs", "list the runs in a store", _runs_args, cmd_runs),
    ("analyze", "run (or load the cached) analysis on one run member", _analyze_args, cmd_analyze),
    ("verify", "check the reproduced paper claims; exit 1 when one fails", _verify_args, cmd_verify),
    ("sweep", "train a grid of runs from a TOML file, here or on a Ray cluster; rerun to resume",
     _sweep_args, cmd_sweep),
    ("figs", "regenerate the paper figures (PNG, SVG, HTML, plotly JSON)", _figs_args, cmd_figs),
    ("app", "serve the Dash explorer over a store (http://127.0.0.1:8050)", _app_args, cmd_app),
    ("demo", "train a quick profile of every task, print the runs table, then open the explorer",
     _demo_args, cmd_demo),
]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="probe", description="Take small recurrent networks apart and check theory against them.")
    parser.add_argument("--version", action="version", version=f"probe {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_, add, run in _COMMANDS:
        p = sub.add_parser(name, help=help_, description=help_)
        add(p)
        p.set_defaults(handler=run)
    return parser


def _version() -> str:
    from probe import __version__

    return __version__


def _error(text: str) -> int:
    message = " ".join(text.split())  # one line, whatever the message held
    print(f"probe: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``probe`` console script; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        return args.handler(args)
    except SystemExit as e:  # --help, --version
        return e.code if isinstance(e.code, int) else 0
    except (_UsageError, ValueError, TypeError) as e:
        return _error(str(e))
    except OSError as e:  # the file system refused something (permissions, a full disk, a name too long)
        return _error(f"{e.strerror or e}{f': {e.filename}' if e.filename else ''}")
    except RecursionError:
        return _error("input nested too deeply")
    except KeyboardInterrupt:
        print("probe: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
