"""The scans' large-buffer pool: memory is reused only once no tensor views it, and never aliased."""
import gc
import threading

import pytest
import torch

from probe import _buffers
from probe.scan import BACKENDS, linear_scan, set_pool_limit
from test_scan import loop_scan, random_inputs


@pytest.fixture
def pool(monkeypatch):
    """A fresh pool that serves every buffer of 1 KiB or more."""
    fresh = _buffers._Pool(max_idle_bytes=1 << 20)
    monkeypatch.setattr(_buffers, "_POOL", fresh)
    monkeypatch.setattr(_buffers, "POOL_MIN_BYTES", 1024)
    return fresh


def test_a_buffer_is_reused_only_after_its_last_view_is_freed(pool):
    t = _buffers.empty((32, 16), torch.float32, torch.device("cpu"))  # 2 KiB
    ptr, view = t.data_ptr(), t[1:]
    del t
    gc.collect()
    other = _buffers.empty((32, 16), torch.float32, torch.device("cpu"))
    assert other.data_ptr() != ptr  # a view still holds the first buffer
    assert _buffers.pool_stats()["lent_buffers"] == 2
    del view
    gc.collect()
    assert _buffers.pool_stats() == {"idle_buffers": 1, "idle_bytes": 2048, "lent_buffers": 1,
                                     "max_idle_bytes": 1 << 20}
    again = _buffers.empty((16, 32), torch.float32, torch.device("cpu"))  # same bytes, other shape
    assert again.data_ptr() == ptr and again.shape == (16, 32) and again.dtype == torch.float32
    assert _buffers.pool_stats()["idle_buffers"] == 0


def test_buffers_of_another_size_or_below_the_threshold_are_not_pooled(pool):
    ptr = _buffers.empty((512,), torch.float32, torch.device("cpu")).data_ptr()
    gc.collect()
    assert _buffers.pool_stats()["idle_buffers"] == 1
    assert _buffers.empty((1024,), torch.float32, torch.device("cpu")).data_ptr() != ptr
    small = _buffers.empty((8,), torch.float64, torch.device("cpu"))
    assert small.shape == (8,) and _buffers.pool_stats()["lent_buffers"] == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64, torch.complex128,
                                   torch.bfloat16])
def test_pooled_tensors_have_the_asked_dtype_and_shape(pool, dtype):
    t = _buffers.empty((3, 100, 7), dtype, torch.device("cpu"))
    assert t.dtype == dtype and t.shape == (3, 100, 7) and t.is_contiguous()
    t.fill_(2)
    assert bool((t == 2).all())


def test_idle_memory_is_capped_oldest_first_and_zero_turns_the_pool_off(pool):
    previous = set_pool_limit(4096)
    try:
        assert previous == 1 << 20
        held = [_buffers.empty((256,), torch.float32, torch.device("cpu")) for _ in range(3)]  # 1 KiB each
        big = _buffers.empty((1024,), torch.float32, torch.device("cpu"))  # 4 KiB
        del held
        gc.collect()
        assert _buffers.pool_stats()["idle_bytes"] == 3072
        del big
        gc.collect()  # 7 KiB idle > 4 KiB: the three older ones go
        assert _buffers.pool_stats()["idle_bytes"] == 4096 and _buffers.pool_stats()["idle_buffers"] == 1
        set_pool_limit(0)
        assert _buffers.pool_stats()["idle_bytes"] == 0
        _buffers.empty((1024,), torch.float32, torch.device("cpu"))
        gc.collect()
        assert _buffers.pool_stats() == {"idle_buffers": 0, "idle_bytes": 0, "lent_buffers": 0,
                                         "max_idle_bytes": 0}
    finally:
        set_pool_limit(previous)


@pytest.mark.parametrize("bad", [-1, 1.5, "1GiB"])
def test_a_bad_pool_limit_is_one_clear_error(pool, bad):
    with pytest.raises(ValueError, match=r"max_idle_bytes must be an int >= 0.*" + repr(bad)[:3]):
        set_pool_limit(bad)


@pytest.mark.parametrize("backend", BACKENDS)
def test_scans_with_pooled_outputs_match_the_loop_and_never_overwrite_a_live_result(pool, backend):
    """Outputs and gradients of consecutive scans come from the pool; results held from an
    earlier call stay intact while later calls reuse freed memory."""
    dtype = torch.float64
    held = []
    for seed in range(4):
        a, b, h0 = random_inputs((2, 3, 50, 4), dtype, seed=seed)  # 9.6 KiB outputs
        a.requires_grad_(), b.requires_grad_()
        h = linear_scan(a, b, h0, backend=backend)
        h.square().sum().backward()
        a_ref, b_ref = a.detach().requires_grad_(), b.detach().requires_grad_()
        h_ref = loop_scan(a_ref, b_ref, h0)
        h_ref.square().sum().backward()
        if seed % 2 == 0:  # keep every other result alive across the later calls
            held.append((h, a.grad, b.grad, h_ref.detach(), a_ref.grad, b_ref.grad))
        del h, a, b
        gc.collect()
    assert _buffers.pool_stats()["lent_buffers"] >= 6  # the held results came from the pool
    for h, ga, gb, h_ref, ga_ref, gb_ref in held:
        torch.testing.assert_close(h.detach(), h_ref, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(ga, ga_ref, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(gb, gb_ref, rtol=1e-10, atol=1e-10)
    ptrs = [t.data_ptr() for row in held for t in row[:3]]
    assert len(set(ptrs)) == len(ptrs)


def test_concurrent_threads_never_get_the_same_buffer(pool):
    live, errors, lock = {}, [], threading.Lock()

    def work(k):
        for i in range(200):
            t = _buffers.empty((64, 8), torch.float32, torch.device("cpu"))  # 2 KiB
            t.fill_(k)
            with lock:
                if t.data_ptr() in live:
                    errors.append((k, i))
                live[t.data_ptr()] = k
            if not bool((t == k).all()):
                errors.append((k, i, "overwritten"))
            with lock:
                del live[t.data_ptr()]
            del t

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    gc.collect()
    stats = _buffers.pool_stats()
    assert stats["lent_buffers"] == 0 and 1 <= stats["idle_buffers"] <= 4


@pytest.mark.parametrize("a_shape", [(2, 3, 50, 4), (4,)])
def test_fused_gradients_become_grad_without_a_copy_and_reuse_memory(pool, a_shape):
    """dL/db (and dL/da of a full-size a) are pooled buffers that autograd keeps as .grad as
    they are; from the second step on, a training loop's scans need no fresh memory."""
    a, b, _ = random_inputs((2, 3, 50, 4), torch.float64, seed=9, a_shape=a_shape)
    a.requires_grad_(), b.requires_grad_()
    g = torch.randn(b.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
    for step in range(4):
        a.grad = b.grad = None
        linear_scan(a, b, backend="fused").backward(g)
        gc.collect()
        stats = _buffers.pool_stats()
        held = 2 if len(a_shape) == 4 else 1  # dL/da of a broadcast a is small, not pooled
        assert stats["lent_buffers"] == held  # h went back; the .grad tensors are pool memory
        assert stats["lent_buffers"] + stats["idle_buffers"] == held + 1  # and one for h
