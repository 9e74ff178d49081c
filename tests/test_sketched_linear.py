"""SketchedLinear: exact gradients where the mathematics says so, bit-packing, conversion,
held bytes, and training.

Tolerances: gradcheck uses its float64 defaults. "Exact up to round-off" comparisons use
1e-10 relative: a rank-r matrix is recovered by the range finder (or the three-sketch) with
k >= r up to float64 round-off (2.2e-16) times the condition numbers of small QR / triangular
solves (here <= 1e3), so ~1e-12 with margin.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pinnsketch.memory import HeldBytes
from pinnsketch.sketch.linear import (
    LINEAR_SKETCH_METHODS,
    LinearSketchOptions,
    SketchedLinear,
    SketchedLinearFunction,
    call_seed,
    held_bytes_formula,
    pack_signs,
    sketchify,
    unpack_signs,
)
from pinnsketch.sketch.range_finder import truncated_svd

F64 = torch.float64
METHODS = LINEAR_SKETCH_METHODS  # "ema" through the Function alone is a three-sketch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny matrices: one thread avoids oversubscription on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _apply(x, W, b, **opts):
    return SketchedLinearFunction.apply(x, W, b, LinearSketchOptions(**opts))[0]


def _inputs(n=7, w_in=5, w_out=3, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, w_in, generator=g, dtype=dtype)
    W = torch.randn(w_out, w_in, generator=g, dtype=dtype)
    b = torch.randn(w_out, generator=g, dtype=dtype)
    return x, W, b


@pytest.mark.parametrize("shape", [(1,), (8,), (9,), (3, 5), (4, 16), (2, 3, 7)])
def test_pack_signs_round_trip(shape):
    g = torch.Generator().manual_seed(1)
    mask = torch.rand(shape, generator=g) > 0.5
    packed = pack_signs(mask)
    assert packed.dtype == torch.uint8
    assert packed.numel() == -(-mask.numel() // 8)
    assert torch.equal(unpack_signs(packed, mask.shape), mask)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("method", METHODS)
def test_gradcheck_full_rank(method, relu):
    x, W, b = (t.requires_grad_() for t in _inputs())
    assert torch.autograd.gradcheck(lambda *a: _apply(*a, rank=5, method=method, relu=relu),
                                    (x, W, b))


@pytest.mark.parametrize("method", METHODS)
def test_input_and_bias_gradients_exact_at_low_rank(method):
    """dx and db do not need the kept input: exact at any rank (gradcheck with W fixed)."""
    x, W, b = _inputs(n=12, w_in=10)
    x.requires_grad_()
    b.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x, b: _apply(x, W, b, rank=2, method=method, relu=True), (x, b))


@pytest.mark.parametrize("method", METHODS)
def test_low_rank_input_gives_exact_weight_gradient(method):
    g = torch.Generator().manual_seed(2)
    a = torch.randn(40, 3, generator=g, dtype=F64) @ torch.randn(3, 30, generator=g, dtype=F64)
    W = torch.randn(6, 30, generator=g, dtype=F64, requires_grad=True)
    dy = torch.randn(40, 6, generator=g, dtype=F64)
    (_apply(a, W, None, rank=5, method=method, seed=3) * dy).sum().backward()
    exact = dy.T @ a
    assert (W.grad - exact).norm() / exact.norm() < 1e-10


@pytest.mark.parametrize("method", METHODS)
def test_weight_gradient_error_falls_with_rank(method):
    g = torch.Generator().manual_seed(4)
    n, w = 120, 60
    U = torch.linalg.qr(torch.randn(n, w, generator=g, dtype=F64)).Q
    V = torch.linalg.qr(torch.randn(w, w, generator=g, dtype=F64)).Q
    a = U @ torch.diag(0.6 ** torch.arange(w, dtype=F64)) @ V.T  # geometric spectrum
    dy = torch.randn(n, 4, generator=g, dtype=F64)
    exact = dy.T @ a
    errors = []
    for k in (2, 6, 12, 24):
        W = torch.zeros(4, w, dtype=F64, requires_grad=True)
        (_apply(a, W, None, rank=k, method=method, seed=5) * dy).sum().backward()
        errors.append(float((W.grad - exact).norm() / exact.norm()))
    assert all(e2 < e1 for e1, e2 in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-3 * errors[0], errors


def _mlp(dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(),
                        nn.Linear(12, 4)).to(dtype)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=dtype) * 0.3)
    return net


@pytest.mark.parametrize("skip_last", [True, False])
@pytest.mark.parametrize("method", METHODS)
def test_sketchify_outputs_bitwise_equal(method, skip_last):
    net = _mlp()
    sk = sketchify(net, rank=3, method=method, skip_last=skip_last)
    x = torch.randn(9, 4, 5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(sk(x), net(x))  # training path (weights require grad)
    with torch.no_grad():
        assert torch.equal(sk(x), net(x))
    assert all(type(m) is not SketchedLinear for m in net.modules())  # original untouched
    kinds = [type(m).__name__ for m in sk]
    last = "Linear" if skip_last else "SketchedLinear"
    assert kinds == ["Flatten", "SketchedLinear", "Identity", "SketchedLinear",
                     "ReLU" if skip_last else "Identity", last]
    assert sk[3].activation == "relu" and sk[1].activation is None
    assert [p.data_ptr() for p in sk.parameters()] != [p.data_ptr() for p in net.parameters()]


def test_bad_arguments_refused():
    with pytest.raises(ValueError, match="rank"):
        SketchedLinear(4, 2, rank=0)
    with pytest.raises(ValueError, match="unknown sketch method"):
        sketchify(_mlp(), rank=2, method="svd")
    with pytest.raises(ValueError, match="activation"):
        SketchedLinear(4, 2, rank=2, activation="tanh")


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("rank", [4, 64])
def test_held_bytes_match_formula(method, relu, rank):
    n, w_in = 48, 30
    layer = SketchedLinear(w_in, 5, rank=rank, method=method,
                           activation="relu" if relu else None)
    x = torch.randn(n, w_in)
    with HeldBytes(exclude=layer.parameters()) as held:
        y = layer(x)
    assert held.bytes == held_bytes_formula(n, w_in, rank, method, relu, itemsize=4)
    y.sum().backward()
    assert layer.weight.grad is not None and layer.calls == 1


def test_held_bytes_of_sketchified_mlp():
    net = _mlp()
    n = 64
    sk = sketchify(net, rank=3, skip_last=False)
    x = torch.randn(n, 20)
    with HeldBytes(exclude=sk.parameters()) as held:
        sk(x).sum()
    want = (held_bytes_formula(n, 20, 3) + held_bytes_formula(n, 16, 3, relu=True)
            + held_bytes_formula(n, 12, 3, relu=True))
    assert held.bytes == want
    with HeldBytes(exclude=net.parameters()) as exact:
        net(x).sum()
    assert exact.bytes == 4 * n * (20 + 16 + 12)  # nn.Linear keeps its inputs
    with torch.no_grad(), HeldBytes(exclude=sk.parameters()) as none:
        sk(x)
    assert none.bytes == 0 and sk[1].calls == 1


def test_fresh_seed_every_step():
    layer = SketchedLinear(30, 3, rank=2, seed=7)
    x = torch.randn(20, 30)
    grads = []
    for _ in range(2):
        layer.weight.grad = None
        layer(x).sum().backward()
        grads.append(layer.weight.grad.clone())
    assert layer.calls == 2 and not torch.equal(grads[0], grads[1])


@pytest.mark.parametrize("method", METHODS)
def test_training_with_sketched_layers_reduces_loss(method):
    g = torch.Generator().manual_seed(0)
    centers = 3.0 * torch.randn(4, 20, generator=g)
    labels = torch.randint(0, 4, (256,), generator=g)
    x = centers[labels] + torch.randn(256, 20, generator=g)
    net = sketchify(_mlp(), rank=4, method=method, skip_last=False)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for step in range(60):
        idx = torch.arange(64) + 64 * (step % 4)
        opt.zero_grad()
        loss = F.cross_entropy(net(x[idx]), labels[idx])
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        acc = (net(x).argmax(1) == labels).float().mean()
    assert sum(losses[-4:]) < 0.2 * sum(losses[:4]), losses
    assert acc > 0.95


@pytest.mark.parametrize("method", METHODS)
def test_bfloat16_sketch_halves_bytes_and_keeps_gradient(method):
    n, w_in = 64, 40
    x = torch.randn(n, w_in, generator=torch.Generator().manual_seed(6))
    grads, held = [], []
    for dt in (None, "bfloat16"):
        layer = SketchedLinear(w_in, 5, rank=6, method=method, seed=1, activation="relu",
                               sketch_dtype=dt)
        with torch.no_grad():
            layer.weight.copy_(torch.linspace(-1, 1, 5 * w_in).reshape(5, w_in))
        with HeldBytes(exclude=layer.parameters()) as h:
            y = layer(x)
        y.pow(2).sum().backward()
        grads.append(layer.weight.grad)
        held.append(h.bytes)
    assert held[0] == held_bytes_formula(n, w_in, 6, method, relu=True)
    assert held[1] == held_bytes_formula(n, w_in, 6, method, relu=True, sketch_itemsize=2)
    # same test matrices; bf16 rounds each factor entry by <= 2^-8 relative
    assert (grads[1] - grads[0]).norm() / grads[0].norm() < 5e-2
    with pytest.raises(ValueError, match="unknown sketch dtype"):
        SketchedLinear(4, 2, rank=2, sketch_dtype="int8")


def _spectrum_matrix(n, w, decay, seed):
    g = torch.Generator().manual_seed(seed)
    r = min(n, w)
    U = torch.linalg.qr(torch.randn(n, r, generator=g, dtype=F64)).Q
    V = torch.linalg.qr(torch.randn(w, r, generator=g, dtype=F64)).Q
    return U @ torch.diag(decay ** torch.arange(r, dtype=F64)) @ V.T


@pytest.mark.parametrize("n, w", [(40, 90), (90, 40)])
def test_truncated_svd_points_gram_equals_features_gram(n, w):
    """Both Gram routes give the Eckart-Young projection: with singular values 0.8^j (gap
    ratio 0.8 at every k) the projections agree to float64 round-off (~1e-16 times the
    conditioning of the eigenproblems, here <= 1e2), and match torch.linalg.svd."""
    A = _spectrum_matrix(n, w, 0.8, seed=7)
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)
    for k in (1, 5, 17, min(n, w)):
        small = truncated_svd(A, k, gram="points").dense()
        large = truncated_svd(A, k, gram="features").dense()
        best = U[:, :k] @ torch.diag(S[:k]) @ Vh[:k]
        assert (small - large).norm() <= 1e-12 * A.norm()
        assert (small - best).norm() <= 1e-12 * A.norm()
        assert torch.equal(truncated_svd(A, k).dense(),
                           truncated_svd(A, k, gram="points" if n < w else "features").dense())
    with pytest.raises(ValueError, match="gram"):
        truncated_svd(A, 2, gram="rows")


def test_truncated_svd_points_gram_rank_deficient():
    """A rank-3 batch at k = 6 through the N x N route: the extra directions (sigma = 0) are
    still orthonormal and A is recovered to round-off."""
    g = torch.Generator().manual_seed(3)
    A = torch.randn(10, 3, generator=g, dtype=F64) @ torch.randn(3, 50, generator=g, dtype=F64)
    approx = truncated_svd(A, 6, gram="points")
    eye = torch.eye(6, dtype=F64)
    assert (approx.basis.T @ approx.basis - eye).abs().max() < 1e-12
    assert (approx.dense() - A).norm() <= 1e-12 * A.norm()


def _weight_grad(layer, x, dy):
    layer.weight.grad = None
    (layer(x) * dy).sum().backward()
    return layer.weight.grad.clone()


def _ema_layer(beta, rank, w_in=30, relu=False, seed=11):
    g = torch.Generator().manual_seed(seed)
    layer = SketchedLinear(w_in, 4, rank=rank, method="ema", beta=beta, seed=seed,
                           activation="relu" if relu else None, dtype=F64)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(4, w_in, generator=g, dtype=F64))
    return layer


@pytest.mark.parametrize("relu", [False, True])
def test_ema_beta_zero_equals_per_step_three_sketch(relu):
    """beta = 0: every step's EMA sketch is that batch's three-sketch (fixed test matrices),
    so dW equals the per-step three-sketch's with the seed of call 0, bit for bit up to
    round-off, at every step."""
    layer = _ema_layer(0.0, rank=5, relu=relu)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(24, 30, generator=g, dtype=F64)
        dy = torch.randn(24, 4, generator=g, dtype=F64)
        got = _weight_grad(layer, x, dy)
        W = layer.weight.detach().clone().requires_grad_()
        (_apply(x, W, layer.bias.detach(), rank=5, method="three_sketch", relu=relu,
                seed=call_seed(layer.seed, 0)) * dy).sum().backward()
        assert (got - W.grad).norm() <= 1e-12 * W.grad.norm()


def test_ema_sketch_is_sketch_of_the_average():
    """Sketching is linear: after batches a1, a2 the EMA sketch is the three-sketch of
    beta a1 + (1 - beta) a2, so dW = dy^T a_hat(mix) (float64 round-off)."""
    beta = 0.7
    layer = _ema_layer(beta, rank=6)
    g = torch.Generator().manual_seed(2)
    a1, a2 = (torch.randn(24, 30, generator=g, dtype=F64) for _ in range(2))
    dy = torch.randn(24, 4, generator=g, dtype=F64)
    _weight_grad(layer, a1, dy)
    got = _weight_grad(layer, a2, dy)
    W = layer.weight.detach().clone().requires_grad_()
    mix = beta * a1 + (1 - beta) * a2
    (_apply(mix, W, None, rank=6, method="three_sketch", seed=call_seed(layer.seed, 0))
     * dy).sum().backward()
    assert (got - W.grad).norm() <= 1e-10 * W.grad.norm()
    layer.reset_ema()
    assert layer.ema_state == ()
    with pytest.raises(ValueError, match="same batch size"):
        _weight_grad(layer, a1, dy)
        _weight_grad(layer, a1[:10], dy[:10])


@pytest.mark.parametrize("method", METHODS)
def test_full_rank_layer_reproduces_exact_gradients(method):
    """At k >= min(N, w_in) every method keeps its input exactly (ema: no averaging), so
    over several steps all gradients equal nn.Linear's to round-off."""
    g = torch.Generator().manual_seed(5)
    lin = nn.Linear(30, 4).double()
    layer = SketchedLinear.from_linear(lin, rank=24, method=method, activation="relu")
    for _ in range(2):
        x = torch.randn(24, 30, generator=g, dtype=F64)
        dy = torch.randn(24, 4, generator=g, dtype=F64)
        xs = x.clone().requires_grad_()
        xe = x.clone().requires_grad_()
        lin.zero_grad()
        layer.zero_grad()
        (layer(xs) * dy).sum().backward()
        (lin(F.relu(xe)) * dy).sum().backward()
        assert torch.allclose(layer.weight.grad, lin.weight.grad, rtol=1e-12, atol=0)
        assert torch.allclose(layer.bias.grad, lin.bias.grad, rtol=1e-12, atol=0)
        assert torch.allclose(xs.grad, xe.grad, rtol=1e-12, atol=0)


def test_measured_error_is_eckart_young_tail():
    """truncated_svd: ||a - a_hat||_F / ||a||_F = sqrt(sum_{j>k} sigma_j^2) / ||a||_F."""
    a = _spectrum_matrix(24, 30, 0.7, seed=9)
    layer = SketchedLinear(30, 4, rank=5, method="truncated_svd", dtype=F64)
    layer.measure_error = True
    layer(a).sum().backward()
    S = torch.linalg.svdvals(a)
    expected = float(S[5:].norm() / S.norm())
    assert abs(layer.last_error - expected) <= 1e-12
    layer.set_rank(24)
    layer(a).sum().backward()
    assert layer.last_error == 0.0
