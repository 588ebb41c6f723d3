"""Where a sweep's points run: worker processes on this machine, or Ray tasks on a cluster.

An engine starts points (:func:`run_point`, which never raises for a failing run), waits for
some to finish, and checks from its workers that the store is one folder they can all write
(:func:`check_store_from_worker`). :mod:`probe.sweep` drives them.
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any


def run_point(point, store: str, device: str = "auto", threads: int | None = None) -> dict[str, Any]:
    """Train one point (or resume it, or load it when finished) and say how it went.

    Never raises for a failing run: the result's ``status`` is ``"failed"`` and ``error`` says why.
    """
    t0 = time.monotonic()
    rid = None
    try:
        import torch

        if threads:
            torch.set_num_threads(threads)
        import probe.models
        from probe.sweep import build
        from probe.training import train

        task, model_config, train_kwargs, rid = build(point)
        run = train(task, probe.models.from_config(model_config), steps=point.steps, seed=point.seed, store=store,
                    device=device, progress=False, **train_kwargs)
        return {"id": run.id, "status": run.status, "final": run.final, "error": None,
                "seconds": time.monotonic() - t0}
    except Exception as e:  # noqa: BLE001 (one point's failure must not stop the others)
        error = " ".join(f"{type(e).__name__}: {e}".split())
        return {"id": rid, "status": "failed", "final": {}, "error": error, "seconds": time.monotonic() - t0}


def check_store_from_worker(store: str, token: str) -> str | None:
    """On a worker: ``None`` if the driver's token file is visible in ``store`` and a file can be
    written there, else why not (the store must be one folder shared by every worker)."""
    where = f"{socket.gethostname()} (pid {os.getpid()})"
    root = Path(store)
    try:
        if (root / token).read_text() != token:
            return f"the store {store} on worker {where} is not the driver's folder"
    except OSError as e:
        return (f"the store {store} is not shared with worker {where} ({e.strerror}); on a cluster the store "
                f"must be a shared folder that every node mounts at the same path")
    probe_file = root / f"{token}.{os.getpid()}"
    try:
        probe_file.write_text("ok")
        probe_file.unlink()
    except OSError as e:
        return f"the store {store} is not writable from worker {where} ({e.strerror})"
    return None


def _init_worker(threads: int) -> None:
    # Everything a point needs, loaded while the other workers start too, not in the first point:
    # torch, probe and transformer-lens (~2 s), and torch._dynamo (~1.4 s), which torch.optim
    # imports on the first optimizer it builds.
    import torch
    import torch._dynamo

    import probe.models
    import probe.sweep
    import probe.training  # noqa: F401

    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------
# engines: start points, wait for some, check the store from a worker


class LocalEngine:
    """Points on ``workers`` processes here (spawned), each with ``cores // workers`` threads."""

    retries = 1  # a crashed worker process breaks the pool: its points are resumed once in a new one

    def __init__(self, workers: int | None = None, cores: int | None = None):
        cores = cores or len(os.sched_getaffinity(0))
        self.workers = max(1, workers or cores)
        self.threads = max(1, cores // self.workers)
        self.slots = self.workers
        self.describe = f"{self.workers} worker process(es) x {self.threads} thread(s)"
        self._pool = self._new_pool()

    def _new_pool(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(self.threads,))

    def check_store(self, store: str, token: str) -> list[str]:
        # One check per worker, submitted at once: the pool starts every worker process now, in
        # parallel, instead of one more each time a point finds them all busy.
        checks = [self._pool.submit(check_store_from_worker, store, token) for _ in range(self.workers)]
        return list(dict.fromkeys(e for e in (f.result() for f in checks) if e))

    def submit(self, point, store: str, device: str):
        return self._pool.submit(run_point, point, store, device, self.threads)

    def wait(self, handles: list, timeout: float) -> list[tuple[Any, Any]]:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        done, _ = wait(handles, timeout=timeout, return_when=FIRST_COMPLETED)
        broken = any(isinstance(f.exception(), BrokenProcessPool) for f in done)
        if broken:  # a dead worker fails every future of its pool: collect them all, then start anew
            done, _ = wait(handles)
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
        out = []
        for f in done:
            try:
                out.append((f, f.result()))
            except BrokenProcessPool:
                out.append((f, RuntimeError("its worker process died (killed, or out of memory)")))
            except Exception as e:  # noqa: BLE001 (a result that could not be sent back, say)
                out.append((f, RuntimeError(f"{type(e).__name__}: {e}")))
        return out

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


class RayEngine:
    """Each point a Ray task with ``num_cpus`` / ``num_gpus``, on the cluster at ``address``
    (``None``: the one this machine runs, or a new local one; ``"auto"``: a running cluster)."""

    retries = 0  # Ray itself retries a task whose worker died (max_retries), resuming it

    def __init__(self, address: str | None = None, num_cpus: float = 1, num_gpus: float = 0):
        for name, v in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1e6:
                raise ValueError(f"{name} must be a number >= 0 (a point's share of a node), got {v!r}")
        try:
            import ray
        except ModuleNotFoundError:
            raise ValueError("--engine ray needs Ray, an optional extra: pip install -e \".[ray]\" "
                             "(or pip install 'ray[default]'); --engine local needs nothing") from None
        self.ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            try:
                ray.init(address=address, **({"include_dashboard": False} if address is None else {}))
            except ConnectionError as e:
                raise ValueError(f"no Ray cluster at --address {address} ({e}); start one with `ray start "
                                 f"--head`, or leave --address out to start Ray on this machine") from None
            except Exception as e:  # noqa: BLE001 (Ray raises bare Exceptions, e.g. a start-up timeout)
                raise ValueError(f"Ray did not start: {e}") from None
        self.threads = max(1, int(num_cpus))
        self._run = ray.remote(run_point).options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=2)
        self.slots = 10**9  # Ray queues the tasks and schedules them by their resources
        have = ray.cluster_resources()
        self.describe = (f"Ray, {len([n for n in ray.nodes() if n.get('Alive')])} node(s) with {have.get('CPU', 0):g} "
                         f"CPU(s) and {have.get('GPU', 0):g} GPU(s); {num_cpus:g} CPU(s), {num_gpus:g} GPU(s) per point")

    def check_store(self, store: str, token: str) -> list[str]:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        check = self.ray.remote(check_store_from_worker)
        nodes = [n["NodeID"] for n in self.ray.nodes() if n.get("Alive")]
        refs = [check.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False))
                .remote(store, token) for n in nodes]
        return [e for e in self.ray.get(refs) if e]

    def submit(self, point, store: str, device: str):
        return self._run.remote(point, store, device, self.threads)

    def wait(self, handles: list, timeout: float) -> list[tuple[Any, Any]]:
        ready, _ = self.ray.wait(handles, num_returns=1, timeout=timeout)
        out = []
        for ref in ready:
            try:
                out.append((ref, self.ray.get(ref)))
            except Exception as e:  # noqa: BLE001 (a worker lost for good: report the point)
                out.append((ref, RuntimeError(" ".join(str(e).split())[:300])))
        return out

    def close(self) -> None:
        if self._started:
            self.ray.shutdown()
