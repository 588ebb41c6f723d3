"""On a GPU, every scan backend agrees with a float64 CPU loop, and models agree with the CPU.

Skipped without CUDA. The fused backend is CPU-only and must say so; "auto" picks the
parallel backend from ``_GPU_PARALLEL_MIN_T`` on and the loop below it.
"""
import pytest
import torch

from probe import scan
from probe.scan import BACKENDS, choose_backend, linear_scan
from test_scan import loop_scan, random_inputs

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DEVICE = torch.device("cuda")
GPU_BACKENDS = [b for b in BACKENDS if b != "fused"]
# float32 on the GPU against float64 on the CPU: |a| <= 0.99 forgets rounding errors within
# ~100 steps, so they stay at a few ulps of |h| (as in test_scan's float32 test)
TOL = {torch.float64: {}, torch.complex128: {},
       torch.float32: {"rtol": 1e-4, "atol": 1e-4}, torch.complex64: {"rtol": 1e-4, "atol": 1e-4}}


def wide(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype.is_complex else torch.float64


@pytest.mark.parametrize("backend", GPU_BACKENDS + ["auto"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64])
@pytest.mark.parametrize("T", [1, 7, 31, 32, 1000])
@pytest.mark.parametrize("a_shape", [None, (4,), (2, 1, 1, 4)])
def test_backends_on_cuda_match_the_float64_loop_in_values_and_gradients(backend, dtype, T, a_shape):
    a, b, h0 = random_inputs((2, 3, T, 4), dtype, seed=T, a_shape=a_shape)
    g = torch.randn(b.shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    # the reference: float64 on the CPU, autograd through the loop
    ref_inputs = [x.to(wide(x.dtype)).requires_grad_() for x in (a, b, h0)]
    h_ref = loop_scan(*ref_inputs)
    h_ref.backward(g.to(h_ref.dtype))
    inputs = [x.to(DEVICE).requires_grad_() for x in (a, b, h0)]
    h = linear_scan(*inputs, backend=backend)
    assert h.device.type == "cuda" and h.dtype == dtype
    h.backward(g.to(DEVICE))
    torch.testing.assert_close(h.cpu().to(h_ref.dtype), h_ref.detach(), **TOL[dtype])
    for x, ref in zip(inputs, ref_inputs):
        assert x.grad.device.type == "cuda" and x.grad.shape == x.shape
        torch.testing.assert_close(x.grad.cpu().to(ref.grad.dtype), ref.grad, **TOL[dtype])


@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_backends_on_cuda_agree_with_each_other_and_with_the_cpu(backend):
    # the same float64 inputs give the same states on either device, to rounding
    a, b, h0 = random_inputs((4, 500, 16), torch.float64, seed=3)
    cpu = linear_scan(a, b, h0, backend=backend)
    gpu = linear_scan(a.to(DEVICE), b.to(DEVICE), h0.to(DEVICE), backend=backend)
    torch.testing.assert_close(gpu.cpu(), cpu)
    torch.testing.assert_close(gpu.cpu(), linear_scan(a, b, h0, backend="fused"))


def test_auto_picks_parallel_from_the_threshold_and_fused_is_refused():
    T = scan._GPU_PARALLEL_MIN_T
    assert choose_backend(DEVICE, T) == "parallel"
    assert choose_backend(DEVICE, T - 1) == "sequential"
    a = torch.rand(2, 5, 3, device=DEVICE)
    with pytest.raises(ValueError, match="fused.*cuda"):
        linear_scan(a, a, backend="fused")


@pytest.mark.parametrize("arch", ["gru", "lru", "hawk"])
def test_an_ensemble_on_cuda_computes_what_it_computes_on_the_cpu(arch):
    import probe
    import tasks
    task = tasks.make("parity", length=40)
    model = probe.models.make(arch, task, hidden=16, members=3, seed=0).double()
    batch = task.sample(n=8, seed=1)
    logits_cpu = model(batch.inputs)
    logits_cpu.square().sum().backward()
    grads_cpu = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    model.to(DEVICE)
    logits_gpu = model(batch.to(DEVICE).inputs)
    logits_gpu.square().sum().backward()
    torch.testing.assert_close(logits_gpu.cpu(), logits_cpu)
    for p, grad in zip(model.parameters(), grads_cpu):
        torch.testing.assert_close(p.grad.cpu(), grad)
