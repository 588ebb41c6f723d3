"""The ``probe`` command: train, list runs, analyse, verify claims, draw figures, run the demo.

Every subcommand imports what it needs (torch, tasks, analyses) inside its function, so that
``probe --help`` answers at once. Bad input of any kind ends in one line on stderr,
``probe: error: ...``, and exit status 2, before anything in the store is touched.
"""
from __future__ import annotations

import argparse
import json
import sys
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
            raise ValueError(f"unknown --set key {key!r} for task {task_name} and arch {arch}; valid keys: {valid()}")
        out[ns][name] = value
    return out


# ---------------------------------------------------------------------------------------------
# subcommands: each takes the parsed args and returns an exit status


def _check_store(store: str) -> None:
    from probe.runs import store_dir

    store_dir(store)


def _threads() -> None:
    # Small recurrent nets run fastest on one thread, and OpenMP threads spinning against other
    # busy processes can make a step 50x slower; OMP_NUM_THREADS, if set, still decides.
    import os

    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)


def cmd_train(args) -> int:
    _check_store(args.store)
    _threads()
    import tasks
    import probe

    if args.task not in tasks.names():
        raise ValueError(f"unknown task {args.task!r}; valid tasks: {', '.join(tasks.names())}")
    if args.arch not in probe.models.names():
        raise ValueError(f"unknown arch {args.arch!r}; valid archs: {', '.join(probe.models.names())}")
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
    from probe.runs import format_runs, list_runs

    print(format_runs(list_runs(args.store)))
    return 0


def cmd_analyze(args) -> int:
    _check_store(args.store)
    import analyses
    from probe.runs import open_run

    if args.analysis not in analyses.names():
        raise ValueError(f"unknown analysis {args.analysis!r}; valid analyses: {', '.join(analyses.names()) or 'none yet'}")
    run = open_run(args.run, store=args.store)
    _threads()
    result = analyses.analyze(args.analysis, run, member=args.member)
    print(f"{args.analysis} on {run.id}, member {args.member}")
    print(result.format_summary())
    return 0


def cmd_verify(args) -> int:
    _check_store(args.store)
    import analyses
    from probe import claims

    _threads()
    analyses.load_all()
    specs = claims.registered(args.only)
    results = claims.run(specs, profile=args.profile, store=args.store)
    print(claims.format_table(results))
    md, _ = claims.write_report(results, store=args.store, profile=args.profile)
    print(f"report: {md}")
    return 0 if all(c.passed for c in results) else 1


def cmd_figs(args) -> int:
    from pathlib import Path

    import paper_figs

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ValueError(f"--out {args.out!r} is a file, not a directory")
    _threads()
    names = paper_figs.names() if args.only is None else [paper_figs.check_name(args.only)]
    written = paper_figs.make_all(names, args.out, profile=args.profile)
    for path in written:
        print(path)
    return 0


def cmd_demo(args) -> int:
    _check_store(args.store)
    _threads()
    from probe import demo

    demo.run(store=args.store)
    if args.claims:
        _demo_claims(args.store)
    # The demo ends in the explorer when a person is watching (a terminal) or asks for it; tests
    # and pipes get the table and exit.
    if args.app or (args.app is None and sys.stdout.isatty() and sys.stdin.isatty()):
        return _serve(args.store, "127.0.0.1", args.port)
    return 0


# Claims the demo checks: quick to run, and the headline of the workbench (train, look inside,
# compare with the paper).
DEMO_CLAIMS = ["parity.infinite_generalization", "parity.automaton"]


def _demo_claims(store: str) -> None:
    import analyses
    from probe import claims

    analyses.load_all()
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


def _train_args(p):
    p.add_argument("task", metavar="TASK", help="task name, e.g. parity (see tasks.names())")
    p.add_argument("--arch", required=True, help="gru, lstm, elman, linear, lru, hawk, linattn, deltanet, mamba, based")
    p.add_argument("--hidden", required=True, type=_positive_int, metavar="N", help="state width")
    p.add_argument("--layers", type=_positive_int, default=1, metavar="L")
    p.add_argument("--members", type=_positive_int, default=1, metavar="M", help="ensemble size (seeds trained at once)")
    p.add_argument("--steps", type=_positive_int, default=1000, metavar="S")
    p.add_argument("--seed", type=_natural, default=0, metavar="S")
    p.add_argument("--set", action="append", type=_key_value, metavar="KEY=VALUE",
                   help="task.<param>, model.<param> or train.<param> (lr, batch_size, optimizer, "
                        "weight_decay, schedule, warmup, grad_clip, eval_every, shared_batches, ...); "
                        "values are JSON, else strings; repeatable")
    _add_store(p)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--from-step", type=_natural, default=None, metavar="N",
                   help="resume from the checkpoint at step N, deleting later ones (when the newest is damaged)")


def _analyze_args(p):
    p.add_argument("run", metavar="RUN", help="run id (or unique prefix) or run folder")
    p.add_argument("analysis", metavar="ANALYSIS", help="analysis name (see analyses.names())")
    p.add_argument("--member", type=_natural, default=0, metavar="I")
    _add_store(p)


def _verify_args(p):
    p.add_argument("--profile", choices=["quick", "full"], default="quick")
    p.add_argument("--only", metavar="ID", help="check only this claim")
    _add_store(p)


def _figs_args(p):
    p.add_argument("--out", default="figs_out", metavar="DIR", help="output folder (default: figs_out)")
    p.add_argument("--only", metavar="NAME", help="make only this figure")
    p.add_argument("--profile", choices=["quick", "full"], default="quick")


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
    ("runs", "list the runs in a store", _add_store, cmd_runs),
    ("analyze", "run (or load the cached) analysis on one run member", _analyze_args, cmd_analyze),
    ("verify", "check the reproduced paper claims; exit 1 when one fails", _verify_args, cmd_verify),
    ("figs", "regenerate the paper figures (PNG, SVG, HTML)", _figs_args, cmd_figs),
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
