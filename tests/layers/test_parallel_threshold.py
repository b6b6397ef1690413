"""Kernels give the same answers on either side of PARALLEL_WORK (kernels/parallel.pxd).

Below the threshold a prange runs on the calling thread, at or above it on every OpenMP
thread: each kernel here runs at sizes just below, at and just above its threshold, and
must match its reference and, exactly, its own run on one OpenMP thread.
"""
import re
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from cyffe.layers.euclidean_loss import euclidean_forward
from cyffe.layers.kernels import elementwise, pooling
from cyffe.layers.kernels.softmax import softmax_forward
from cyffe.layers.kernels.window import Geometry
from cyffe.layers.lrn import window_sum
from cyffe.layers.prelu import prelu_apply
from cyffe.layers.relu import relu_forward
from cyffe.layers.sigmoid import sigmoid_forward

PXD = Path(__file__).resolve().parents[2] / "layers" / "kernels" / "parallel.pxd"
CONSTANTS = dict(re.findall(r"^\s+(\w+) = (\d+)$", PXD.read_text(), re.M))
WORK = int(CONSTANTS["PARALLEL_WORK"])
TRANSCENDENTAL = int(CONSTANTS["TRANSCENDENTAL"])


def around(threshold):
    return [threshold - 1, threshold, threshold + 1]


def on_one_thread(run):
    with threadpool_limits(limits=1, user_api="openmp"):
        return run()


def check(run, reference, rtol=0.0, reduction=False):
    """run() against the reference (exactly, or to rtol) and, exactly unless it sums in
    parallel (an order of its own), against itself on one OpenMP thread."""
    out = run()
    alone = on_one_thread(run)
    if reduction:
        np.testing.assert_allclose(out, alone, rtol=1e-12)
    else:
        np.testing.assert_array_equal(out, alone)
    if rtol:
        np.testing.assert_allclose(out, reference, rtol=rtol)
    else:
        np.testing.assert_array_equal(out, reference)


def values(n, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(n).astype(dtype)


@pytest.mark.parametrize("n", around(WORK))
def test_relu(n):
    x = values(n)

    def run():
        y = np.empty_like(x)
        relu_forward(x, y, 0.1)
        return y

    check(run, np.where(x > 0, x, (x.astype(np.float64) * 0.1).astype(np.float32)))


@pytest.mark.parametrize("n", around(-(-WORK // TRANSCENDENTAL)))
def test_sigmoid(n):
    x = values(n, dtype=np.float64)

    def run():
        y = np.empty_like(x)
        sigmoid_forward(x, y)
        return y

    check(run, 0.5 * np.tanh(0.5 * x) + 0.5, rtol=1e-14)


@pytest.mark.parametrize("outer", around(-(-WORK // (4 * TRANSCENDENTAL))))
def test_softmax(outer):
    x = values(outer * 4, dtype=np.float64).reshape(outer, 4, 1)

    def run():
        y = np.empty_like(x)
        softmax_forward(x, y, np.empty((outer, 1)))
        return y

    e = np.exp(x - x.max(axis=1, keepdims=True))
    check(run, e / e.sum(axis=1, keepdims=True), rtol=1e-12)


@pytest.mark.parametrize("planes", around(-(-WORK // 16)))
def test_max_pooling_both_ways(planes):
    # 2 x 2 windows, stride 2, over 4 x 4 planes: 4 windows of 4 pixels, 16 per plane.
    x = values(planes * 16, dtype=np.float64).reshape(planes, 4, 4)
    geometry = Geometry((4, 4), (2, 2), (2, 2), (1, 1), (0, 0), (0, 0))
    blocks = x.reshape(planes, 2, 2, 2, 2).transpose(0, 1, 3, 2, 4).reshape(planes, 2, 2, 4)

    def run_forward():
        y, mask = np.empty((planes, 2, 2)), np.empty((planes, 2, 2), np.intc)
        pooling.forward("max", geometry, x, y, mask)
        return y

    check(run_forward, blocks.max(axis=-1))
    mask = np.empty((planes, 2, 2), np.intc)
    pooling.forward("max", geometry, x, np.empty((planes, 2, 2)), mask)
    dy = values(planes * 4, 1, np.float64).reshape(planes, 2, 2)

    def run_backward():
        dx = np.empty_like(x)
        pooling.backward("max", geometry, dy, dx, mask)
        return dx

    expected = np.zeros_like(x).reshape(planes, 16)
    np.put_along_axis(expected, mask.reshape(planes, 4).astype(np.intp), dy.reshape(planes, 4),
                      axis=1)
    check(run_backward, expected.reshape(x.shape))


@pytest.mark.parametrize("n", around(WORK))
def test_prelu(n):
    x = values(n).reshape(1, 1, n)
    slope = np.array([0.25], np.float32)

    def run():
        y = np.empty_like(x)
        prelu_apply(x, x, y, slope, True)
        return y

    check(run, np.where(x > 0, x, x * np.float32(0.25)))


@pytest.mark.parametrize("spatial", around(-(-WORK // (2 * 3))))
def test_lrn_window_sum(spatial):
    # Two channels, a window of 3 (half 1): every output sums both channels.
    x = values(2 * spatial, dtype=np.float64).reshape(1, 2, spatial)

    def run():
        out = np.empty_like(x)
        window_sum(x, out, 1, True)
        return out

    total = (x * x).sum(axis=1, keepdims=True)
    check(run, np.broadcast_to(total, x.shape), rtol=1e-14)


@pytest.mark.parametrize("rows", around(-(-WORK // 8)))
def test_broadcast_and_add(rows):
    x = values(rows * 8, dtype=np.float64).reshape(1, rows, 8)
    b = values(rows, 1, np.float64)

    def run():
        y = np.empty_like(x)
        elementwise.broadcast(x, b, y)
        flat = y.reshape(-1)
        elementwise.add_into(flat, x.reshape(-1))
        return y

    check(run, x + b[None, :, None] + x)


@pytest.mark.parametrize("n", around(WORK))
def test_a_reduction(n):
    a, b = values(n, 0, np.float64), values(n, 1, np.float64)

    def run():
        return np.array(euclidean_forward(a, b, np.empty_like(a)))

    check(run, np.array(((a - b) ** 2).sum()), rtol=1e-10, reduction=True)
