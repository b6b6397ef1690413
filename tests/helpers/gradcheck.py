"""Numerical gradient checks, Caffe's GradientChecker idea in NumPy.

The objective is sum_i <top_i, w_i> for fixed random w_i, so backward starts
from top diffs w_i. Central differences of that objective with respect to every
bottom element and every param element must match the analytic diffs.
Run in float64 so the tolerance can be tight.
"""
import numpy as np

from cyffe.layers.backend import set_random_seed
from cyffe.layers.blob import Blob


def make_blobs(*arrays):
    """float64 Blobs holding copies of arrays."""
    blobs = []
    for a in arrays:
        a = np.asarray(a, np.float64)
        b = Blob(a.shape, np.float64)
        b.data[...] = a
        blobs.append(b)
    return blobs


def setup_layer(layer, bottom, num_top=1, top=None):
    """Check counts, set up and reshape; returns the top blobs."""
    if top is None:
        top = [Blob((), layer.dtype) for _ in range(num_top)]
    layer.check_blob_counts(bottom, top)
    layer.setup(bottom, top)
    layer.reshape(bottom, top)
    return top


def check_gradient(layer, bottom, top, check_bottom=None, check_params=True, eps=1e-6,
                   threshold=1e-5, seed=1701):
    """Assert analytic == numerical gradients of `layer` (already set up, float64).

    Check in-place layers with a separate top blob; test in-place on its own.

    check_bottom: indices of bottoms to check (default: all). Random layers are
    reseeded before every forward, so they see the same randomness each time.
    """
    if check_bottom is None:
        check_bottom = range(len(bottom))
    check_bottom = list(check_bottom)
    weights_rng = np.random.default_rng(seed)

    def forward():
        set_random_seed(seed)
        layer.reshape(bottom, top)
        layer.forward(bottom, top)

    forward()
    weights = [weights_rng.standard_normal(t.shape) for t in top]

    def objective():
        forward()
        return sum(float(np.sum(t.data * w)) for t, w in zip(top, weights))

    # Inputs are changed below, so remember them, and restore data after backward
    # (in-place layers overwrite their bottom).
    bottom_values = [b.data.copy() for b in bottom]
    forward()
    for t, w in zip(top, weights):
        t.diff[...] = w
    for p in layer.blobs:
        p.diff[...] = 0
    propagate = [i in check_bottom for i in range(len(bottom))]
    layer.backward(top, propagate, bottom)
    analytic = [(f"bottom {i}", bottom[i].diff.copy(), bottom[i].data) for i in check_bottom]
    if check_params:
        analytic += [(f"param {j}", p.diff.copy(), p.data) for j, p in enumerate(layer.blobs)]
    for b, v in zip(bottom, bottom_values):
        b.data[...] = v

    for name, grad, array in analytic:
        flat = array.reshape(-1)
        for k in range(flat.size):
            orig = flat[k]
            flat[k] = orig + eps
            plus = objective()
            flat[k] = orig - eps
            minus = objective()
            flat[k] = orig
            numeric = (plus - minus) / (2 * eps)
            got = grad.reshape(-1)[k]
            scale = max(abs(numeric), abs(got), 1.0)
            assert abs(numeric - got) <= threshold * scale, (
                f"{layer.type} '{layer.name}': {name} gradient at flat index {k}: "
                f"analytic {got!r} vs numerical {numeric!r}")

