"""Per-layer timings of a Net, as `caffe time` measures them.

Each iteration runs every layer forward in order, then backward (the layers
that need it) in reverse, timing each call; a layer's time is the median over
the iterations, so a slow first call or a hiccup does not skew it.
"""
import time
from collections import namedtuple

import numpy as np

from ...layers.backend import one_blas_thread

LayerTiming = namedtuple("LayerTiming", "name type forward_ms backward_ms")
LayerTiming.__doc__ = """A layer's median forward and backward milliseconds (0 without backward)."""


def time_layers(net, iterations=50):
    """Time each layer of `net` over `iterations` forward-backward passes.

    Returns a list of LayerTiming in run order; their sums are the pass
    totals. Param diffs are cleared afterwards.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    n = len(net.layers)
    forward = np.zeros((iterations, n))
    backward = np.zeros((iterations, n))
    clock = time.perf_counter
    with one_blas_thread():
        for it in range(iterations):
            for li, layer in enumerate(net.layers):
                start = clock()
                layer.reshape(net._bottom[li], net._top[li])
                layer.forward(net._bottom[li], net._top[li])
                forward[it, li] = clock() - start
            for li in reversed(range(n)):
                if net._layer_needs_backward[li]:
                    start = clock()
                    net.layers[li].backward(net._top[li], net._bottom_needs_backward[li],
                                            net._bottom[li])
                    backward[it, li] = clock() - start
    net.clear_param_diffs()
    forward, backward = np.median(forward, axis=0) * 1e3, np.median(backward, axis=0) * 1e3
    return [LayerTiming(layer.name, layer.type, float(forward[li]), float(backward[li]))
            for li, layer in enumerate(net.layers)]
