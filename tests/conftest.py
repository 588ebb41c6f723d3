"""Suite-wide settings.

The models here are small: one torch thread is as fast as two for them, keeps results
independent of how many cores CI has, and avoids oversubscription when the tests start
subprocesses (training, the CLI, notebooks) that set their own threads.
"""
import pytest
import torch

from probe.threads import single_thread

torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Every test module starts on one torch thread, even after a test that changed it."""
    with single_thread():
        yield


class _RunId(Exception):
    pass


@pytest.fixture
def run_id_of(monkeypatch):
    """``run_id_of(train)``: the run id ``probe.train`` gives inside the call ``train()``, stopped
    before it trains or writes anything (to hold a sweep Point's id against older training code)."""
    import probe.training

    def stop(task, model, cfg, path, device):
        raise _RunId(path.name)

    def of(train) -> str:
        with monkeypatch.context() as m:
            m.setattr(probe.training, "Trainer", stop)
            with pytest.raises(_RunId) as e:
                train()
        return str(e.value)

    return of
