"""Running layers in tests: blobs, set up and forward, and gradient checks (asserting
wrappers over cyffe.net.analysis.gradcheck)."""
import numpy as np

from cyffe.layers.blob import Blob
from cyffe.net.analysis.gradcheck import compare_gradients


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


def run_layer(layer, *arrays, num_top=1, path=None):
    """Set layer up on Blobs holding copies of arrays (in its dtype) and run forward, or
    forward_<path> ("cpu", "gpu") when given; returns (bottom, top)."""
    bottom = []
    for a in arrays:
        blob = Blob(np.shape(a), layer.dtype)
        blob.data[...] = a
        bottom.append(blob)
    top = setup_layer(layer, bottom, num_top=num_top)
    getattr(layer, f"forward_{path}" if path else "forward")(bottom, top)
    return bottom, top


def check_gradient(layer, bottom, top, check_bottom=None, check_params=True, eps=1e-6,
                   threshold=1e-5, seed=1701):
    """Assert analytic == numerical gradients of `layer` (already set up, float64).

    Check in-place layers with a separate top blob; test in-place on its own.

    check_bottom: indices of bottoms to check (default: all). Random layers are
    reseeded before every forward, so they see the same randomness each time.
    """
    for c in compare_gradients(layer, bottom, top, check_bottom, check_params, eps, seed):
        scale = max(abs(c.numeric), abs(c.analytic), 1.0)
        assert abs(c.numeric - c.analytic) <= threshold * scale, (
            f"{layer.type} '{layer.name}': {c.name} gradient at flat index {c.index}: "
            f"analytic {c.analytic!r} vs numerical {c.numeric!r}")
