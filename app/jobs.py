"""Background analysis jobs for the Analyses page: a small in-process table polled by ``dcc.Interval``.

Cached results are read at once (:func:`is_cached` says which); anything else runs in a daemon
thread so that the page never blocks, and the page polls :data:`JOBS` for its state.
"""
from __future__ import annotations

import threading
import time
import traceback


def is_cached(run, name: str, member: int = 0) -> bool:
    """Whether ``analyses.analyze(name, run, member)`` would read its cache (default parameters)."""
    import os

    import analyses
    from probe import _io, _safepath

    try:
        path = _safepath.run_subdir(run.path, "analyses") / analyses._cache_name(name, member, {})
        if not os.path.lexists(path):
            return False
        cached = _io.read_json(path)  # a link, FIFO or device is refused, not followed
    except ValueError:
        return False
    steps = run.checkpoint_steps
    return (cached.get("step"), cached.get("member"), cached.get("params")) == (steps[-1] if steps else None, member, {})


class Jobs:
    """A small in-process table of background analysis jobs, polled by the page.

    A job runs ``analyses.analyze`` in a daemon thread; its state is ``running``, ``done`` or
    ``error`` (with the message), and ``elapsed`` counts seconds so far. At most ``max_running``
    run at once: a request for another is refused (the page says so), so requests cannot pile
    up threads.
    """

    def __init__(self, max_running: int = 2):
        self._jobs: dict[tuple, dict] = {}
        self._lock = threading.Lock()
        self.max_running = max_running

    def start(self, key: tuple, fn) -> dict:
        """Start ``fn()`` under ``key`` unless a job with that key is running or done;
        ``ValueError`` when ``max_running`` jobs are running already."""
        with self._lock:
            job = self._jobs.get(key)
            if job and job["state"] in ("running", "done"):
                return job
            if sum(j["state"] == "running" for j in self._jobs.values()) >= self.max_running:
                raise ValueError(f"{self.max_running} analyses are running already; try again when one has finished")
            job = {"state": "running", "started": time.time(), "result": None, "error": None}
            self._jobs[key] = job

        def work():
            try:
                job["result"] = fn()
                job["state"] = "done"
            except Exception as e:  # an analysis that raises shows its error; the app keeps serving
                job["error"] = f"{type(e).__name__}: {e}"
                job["trace"] = traceback.format_exc(limit=5)
                job["state"] = "error"
            job["finished"] = time.time()

        threading.Thread(target=work, daemon=True, name=f"analysis-{key}").start()
        return job

    def get(self, key: tuple) -> dict | None:
        with self._lock:
            return self._jobs.get(key)

    def elapsed(self, key: tuple) -> float:
        job = self.get(key)
        if job is None:
            return 0.0
        return job.get("finished", time.time()) - job["started"]

    def forget(self, key: tuple) -> None:
        with self._lock:
            self._jobs.pop(key, None)


JOBS = Jobs()
