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
