"""Every scan backend agrees with a plain float64 loop, in values and in gradients."""
import numpy as np
import pytest
import torch

from probe.scan import _KERNELS, BACKENDS, choose_backend, linear_scan

DTYPES = [torch.float64, torch.complex128]


def loop_scan(a, b, h0=None):
    """The recurrence as written: h_t = a_t * h_{t-1} + b_t, autograd through the loop."""
    a, b = torch.broadcast_tensors(a, b)
    h = torch.zeros_like(b[..., 0, :]) if h0 is None else h0
    states = []
    for t in range(b.shape[-2]):
        h = a[..., t, :] * h + b[..., t, :]
        states.append(h)
    return torch.stack(states, dim=-2)


def random_inputs(shape, dtype, seed=0, a_shape=None):
    """Decays with |a| in [0.3, 0.99] (complex: random phase), inputs ~ N(0, 1)."""
    gen = torch.Generator().manual_seed(seed)
    real = torch.float64 if dtype in (torch.float64, torch.complex128) else torch.float32
    a_shape = shape if a_shape is None else a_shape
    a = 0.3 + 0.69 * torch.rand(a_shape, generator=gen, dtype=real)
    if dtype.is_complex:
        a = a * torch.exp(2j * torch.pi * torch.rand(a_shape, generator=gen, dtype=real))
    b = torch.randn(shape, generator=gen, dtype=dtype)
    h0 = torch.randn(shape[:-2] + shape[-1:], generator=gen, dtype=dtype)
    return a, b, h0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T", [1, 7, 1000])
@pytest.mark.parametrize("with_h0", [False, True])
def test_backends_match_the_loop(backend, dtype, T, with_h0):
    a, b, h0 = random_inputs((2, 3, T, 4), dtype)
    h0 = h0 if with_h0 else None
    torch.testing.assert_close(linear_scan(a, b, h0, backend=backend), loop_scan(a, b, h0))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("a_shape", [None, (4,)])
def test_kernels_scan_in_reverse_as_the_loop_does_on_flipped_time(backend, a_shape):
    a, b, h0 = random_inputs((2, 3, 37, 4), torch.complex128, seed=16, a_shape=a_shape)
    a_full = a.expand(b.shape)  # kernels take a broadcast to b's shape, as linear_scan passes it
    out = torch.empty_like(b)
    _KERNELS[backend](a_full, b, h0, out, reverse=True)
    torch.testing.assert_close(out, loop_scan(a_full.flip(-2), b.flip(-2), h0).flip(-2))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T", [1000, 37])
def test_gradients_match_autograd_through_the_loop(backend, dtype, T):
    # T = 1000 and 37 leave a partial chunk (1000 = 32 * 31 + 8), so the tail path runs too
    a, b, h0 = random_inputs((3, T, 4), dtype, seed=1)
    g = torch.randn((3, T, 4), dtype=dtype, generator=torch.Generator().manual_seed(2))
    grads = []
    for scan in (lambda *x: linear_scan(*x, backend=backend), loop_scan):
        inputs = [x.clone().requires_grad_() for x in (a, b, h0)]
        (scan(*inputs) * g.conj()).real.sum().backward()
        grads.append([x.grad for x in inputs])
    for ours, expected in zip(*grads):
        torch.testing.assert_close(ours, expected)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T", [1, 7])
def test_gradcheck(backend, dtype, T):
    # T = 7 is cut into 3 chunks of 2 and a tail of 1 by the chunked backend
    a, b, h0 = (x.requires_grad_() for x in random_inputs((2, T, 3), dtype, seed=3))
    assert torch.autograd.gradcheck(lambda a, b, h0: linear_scan(a, b, h0, backend=backend),
                                    (a, b, h0))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("a_shape", [(4,), (2, 1, 1, 4), (1, 7, 4), (3, 1, 4), (7, 1)])
def test_broadcast_a_values_and_gradcheck(backend, a_shape):
    # a constant over time (LRU), per ensemble member, shared across the batch, or across units
    a, b, h0 = random_inputs((3, 7, 4), torch.complex128, seed=4, a_shape=a_shape)
    a, b, h0 = (x.requires_grad_() for x in (a, b, h0))
    h = linear_scan(a, b, h0, backend=backend)
    assert h.shape == torch.broadcast_shapes(a.shape, b.shape)
    torch.testing.assert_close(h, loop_scan(a, b, h0))
    assert torch.autograd.gradcheck(lambda a, b, h0: linear_scan(a, b, h0, backend=backend),
                                    (a, b, h0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_real_a_with_complex_b_promotes_and_keeps_real_gradients(backend):
    a, _, _ = random_inputs((2, 7, 3), torch.float64, seed=5)
    _, b, h0 = random_inputs((2, 7, 3), torch.complex128, seed=5)
    a, b, h0 = (x.requires_grad_() for x in (a, b, h0))
    h = linear_scan(a, b, h0, backend=backend)
    assert h.dtype == torch.complex128
    torch.testing.assert_close(h, loop_scan(a, b, h0))
    h.abs().sum().backward()
    assert a.grad.dtype == torch.float64
    assert torch.autograd.gradcheck(lambda a, b, h0: linear_scan(a, b, h0, backend=backend),
                                    (a, b, h0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_expanded_by_the_caller_gets_its_gradient(backend):
    # models expand their decays to (M, B, T, N) and hook them there: the scan must hand back
    # the per-element dL/da of that view (a gradient hook sees it), which expand's backward sums
    lam, b, h0 = random_inputs((2, 3, 7, 4), torch.complex128, seed=15, a_shape=(2, 1, 1, 4))
    lam, b, h0 = (x.requires_grad_() for x in (lam, b, h0))
    seen = {}
    for name, scan in (("ours", lambda a, b, h0: linear_scan(a, b, h0, backend=backend)),
                       ("loop", loop_scan)):
        a = lam.expand(2, 3, 7, 4)
        a.register_hook(lambda grad, name=name: seen.__setitem__(name, grad))
        scan(a, b, h0).abs().sum().backward()
    torch.testing.assert_close(seen["ours"], seen["loop"])
    scan = lambda lam, b, h0: linear_scan(lam.expand(2, 3, 7, 4), b, h0, backend=backend)  # noqa: E731
    assert torch.autograd.gradcheck(scan, (lam, b, h0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_broadcast_b_and_expanded_gradients_match_the_loop(backend):
    # b shared across the batch, and the all-zero-stride gradient that h.sum() hands back
    a, _, h0 = random_inputs((2, 3, 50, 4), torch.float64, seed=12)
    b = torch.randn(3, 50, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(13))
    grads = []
    for scan in (lambda *x: linear_scan(*x, backend=backend), loop_scan):
        inputs = [x.clone().requires_grad_() for x in (a, b, h0)]
        scan(*inputs).sum().backward()
        grads.append([x.grad for x in inputs])
    for ours, expected in zip(*grads):
        torch.testing.assert_close(ours, expected)


@pytest.mark.parametrize("h0_shape", [(4,), (1, 4), (3, 4)])
def test_broadcast_h0_gets_summed_gradient(h0_shape):
    a, b, _ = random_inputs((3, 7, 4), torch.float64, seed=6)
    h0 = torch.randn(h0_shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda h0: linear_scan(a, b, h0, backend="chunked"), (h0,))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
def test_float32_stays_close_to_float64_over_1000_steps(backend, dtype):
    a, b, h0 = random_inputs((2, 1000, 8), dtype, seed=7)
    wide = torch.complex128 if dtype.is_complex else torch.float64
    expected = loop_scan(a.to(wide), b.to(wide), h0.to(wide))
    h = linear_scan(a, b, h0, backend=backend)
    assert h.dtype == dtype
    # |a| <= 0.99 forgets errors over ~100 steps, so they stay at a few float32 ulps of |h|
    torch.testing.assert_close(h.to(wide), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_tiny_decays_underflow_to_the_right_answer(backend):
    # decay products over a chunk underflow float32; the chunked backend flushes them to zero
    a = torch.full((2, 1000, 8), 1e-3)
    b = torch.randn(2, 1000, 8, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(linear_scan(a, b, backend=backend), loop_scan(a, b))


def test_auto_picks_fused_on_cpu_and_chunks_or_loops_where_numba_cannot():
    assert choose_backend("cpu", 8) == "fused"
    assert choose_backend("cpu", 4096, torch.complex64) == "fused"
    assert choose_backend("cpu", 8, torch.float16) == "sequential"
    assert choose_backend("cpu", 4096, torch.bfloat16) == "chunked"
    assert choose_backend("cuda", 4096) == "parallel"
    assert choose_backend(torch.device("cuda:0"), 2) == "sequential"
    for T in (1, 7, 1000):
        a, b, h0 = random_inputs((2, T, 4), torch.complex128, seed=9)
        torch.testing.assert_close(linear_scan(a, b, h0), loop_scan(a, b, h0))


def test_fused_backend_refuses_dtypes_numba_cannot_scan():
    a = torch.rand(2, 5, 3, dtype=torch.float16)
    with pytest.raises(ValueError, match="fused.*float16.*chunked"):
        linear_scan(a, a, backend="fused")
    torch.testing.assert_close(linear_scan(a, a).float(), loop_scan(a.float(), a.float()), atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("a_shape", [None, (64,), (1, 300, 64), (4, 1, 64)])
def test_fused_backend_splits_work_over_threads_exactly(a_shape):
    # big enough to be cut into per-thread tiles: by rows (N >= threads) and by D (one row);
    # a broadcast a has its gradient summed by each thread on its own, then added
    torch.set_num_threads(2)
    try:
        for shape in ((4, 300, 64), (1, 300, 512)):
            ashape = None if a_shape is None else a_shape[:-1] + shape[-1:]
            if ashape is not None and len(ashape) == 3 and ashape[0] > shape[0]:
                ashape = (shape[0],) + ashape[1:]
            a, b, h0 = random_inputs(shape, torch.float64, seed=11, a_shape=ashape)
            a, b, h0 = (x.requires_grad_() for x in (a, b, h0))
            h = linear_scan(a, b, h0, backend="fused")
            torch.testing.assert_close(h, loop_scan(a, b, h0))
            g = torch.randn_like(h)
            got = torch.autograd.grad(h, (a, b, h0), g)
            want = torch.autograd.grad(loop_scan(a, b, h0), (a, b, h0), g)
            for x, y in zip(got, want):
                torch.testing.assert_close(x, y)
    finally:
        torch.set_num_threads(1)


def _float64_scan_and_gradients(a, b, g):
    """h, dL/da (summed to a's shape) and dL/db = lambda of a real scan, in float64 numpy,
    step by step as the equations in probe.scan's docstring read."""
    a, b, g = (x.double().numpy() for x in torch.broadcast_tensors(a, b, g))
    T = b.shape[-2]
    h, lam = np.zeros_like(b), np.zeros_like(b)
    state = np.zeros_like(b[..., 0, :])
    for t in range(T):
        state = a[..., t, :] * state + b[..., t, :]
        h[..., t, :] = state
    state = np.zeros_like(state)
    for t in range(T - 1, -1, -1):
        state = g[..., t, :] + (a[..., t + 1, :] * state if t + 1 < T else 0)
        lam[..., t, :] = state
    da = np.zeros_like(b)
    da[..., 1:, :] = lam[..., 1:, :] * h[..., :-1, :]
    return h, da, lam


@pytest.mark.parametrize("a_shape", [(2, 8192, 8), (8,)])
def test_fused_float32_scan_of_8192_gates_near_1_is_rounded_once(a_shape):
    """Gates a = 1 - 1e-7 u over T = 8192 steps forget nothing, so float32 rounding errors add
    up; with a*h rounded before adding b they all lean one way (a*h is within half an ulp of
    h) and grow linearly in T. The fused backend carries its state in float64 with fused
    multiply-adds: each output and each lambda is the float64 value rounded once to float32,
    and it must be at least as exact as the sequential backend, whose addcmul rounds once per
    step. dL/da = lambda * h_{t-1} is a product of two rounded values, rounded again: within
    2 ulps; a broadcast a's gradient is summed in float64, then rounded once."""
    gen = torch.Generator().manual_seed(14)
    a = 1 - 1e-7 * torch.rand(a_shape, generator=gen)
    b = torch.randn(2, 8192, 8, generator=gen)
    g = torch.randn(2, 8192, 8, generator=gen)
    h_ref, da_ref, db_ref = _float64_scan_and_gradients(a, b, g)
    da_ref = torch.from_numpy(da_ref).sum_to_size(a_shape).numpy()
    errors = {}
    for backend in ("fused", "sequential"):
        a_, b_ = a.clone().requires_grad_(), b.clone().requires_grad_()
        h = linear_scan(a_, b_, backend=backend)
        h.backward(g)
        errors[backend] = [np.abs(x.detach().double().numpy() - ref)
                           for x, ref in ((h, h_ref), (a_.grad, da_ref), (b_.grad, db_ref))]
    eps = np.finfo(np.float32).eps  # an ulp of 1.0: |x| * eps bounds an ulp of x
    for err, ref, ulps in zip(errors["fused"], (h_ref, da_ref, db_ref), (1, 2, 1)):
        assert (err <= ulps * eps * np.abs(ref)).all()
    for fused, sequential in zip(errors["fused"], errors["sequential"]):
        assert fused.max() <= sequential.max()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(2, 0, 3), (0, 4, 3), (2, 4, 0)])
def test_empty_scans_give_empty_states_and_zero_gradients(backend, shape):
    a, b, h0 = (torch.rand(s, requires_grad=True) for s in (shape, shape, shape[:1] + shape[2:]))
    h = linear_scan(a, b, h0, backend=backend)
    assert h.shape == shape
    h.sum().backward()
    assert a.grad.shape == shape and b.grad.shape == shape and h0.grad.shape == h0.shape
    assert not h0.grad.any()


def test_no_grad_builds_no_graph():
    a, b, h0 = (x.requires_grad_() for x in random_inputs((2, 100, 4), torch.float64))
    with torch.no_grad():
        h = linear_scan(a, b, h0)
    assert not h.requires_grad and h.grad_fn is None
    assert linear_scan(a, b, h0).grad_fn is not None


def test_unknown_backend_is_named_with_the_choices():
    a, b, _ = random_inputs((2, 5, 3), torch.float64)
    with pytest.raises(ValueError, match=r"'blelloch'.*sequential.*chunked.*parallel"):
        linear_scan(a, b, backend="blelloch")


def test_mismatched_shapes_name_both():
    with pytest.raises(ValueError, match=r"\(2, 5, 3\).*\(2, 6, 3\)"):
        linear_scan(torch.rand(2, 5, 3), torch.rand(2, 6, 3))
    with pytest.raises(ValueError, match=r"\(7,\).*\(2, 3\)"):
        linear_scan(torch.rand(2, 5, 3), torch.rand(2, 5, 3), h0=torch.rand(7))
    with pytest.raises(ValueError, match=r"\(2, 4, 3\).*\(2, 3\)"):
        linear_scan(torch.rand(2, 5, 3), torch.rand(2, 5, 3), h0=torch.rand(2, 4, 3))
    with pytest.raises(ValueError, match="time dim"):
        linear_scan(torch.rand(3), torch.rand(3))
