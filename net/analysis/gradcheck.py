"""Numerical gradient checks, Caffe's GradientChecker idea in NumPy.

The objective is sum_i <top_i, w_i> for fixed random w_i, so backward starts
from top diffs w_i. Central differences of that objective with respect to
bottom and param elements must match the analytic diffs. Run in float64 so the
tolerance can be tight.

`compare_gradients` does it for one layer; `check_net_gradients` does it for
every layer of a whole net, each through that layer alone, at the values a
forward pass of the net gives its bottoms.
"""
from collections import namedtuple

import numpy as np

from ...layers.backend import one_blas_thread, set_random_seed
from ...layers.blob import Blob

Comparison = namedtuple("Comparison", "name index analytic numeric left right")
Comparison.__doc__ = """One element: analytic diff, central difference, and the one-sided slopes."""

LayerReport = namedtuple("LayerReport", "name type worst where checked kinks")
LayerReport.__doc__ = """A layer's worst relative error, where it was, elements checked and kinks skipped."""


def compare_gradients(layer, bottom, top, check_bottom=None, check_params=True, eps=1e-6,
                      seed=1701, max_checks=None, scale_eps=False):
    """Yield a Comparison per checked element of `layer` (already set up, float64).

    check_bottom: indices of bottoms to check (default: all); check_params: True,
    False or a list of param indices. max_checks: at most this many random
    elements per array (default: all). scale_eps: step eps * min(1, RMS of the
    array), so that arrays of small values (a conv's output under std 1e-4
    weights) are not stepped past their own spread. Random layers are reseeded
    before every forward, so they see the same randomness each time. In-place
    layers must be given a separate top blob.
    """
    check_bottom = list(range(len(bottom)) if check_bottom is None else check_bottom)
    if check_params is True:
        check_params = range(len(layer.blobs))
    check_params = list(check_params or [])
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
    analytic = [(f"bottom {i}", bottom[i].diff.copy(), bottom[i]) for i in check_bottom]
    analytic += [(f"param {j}", layer.blobs[j].diff.copy(), layer.blobs[j])
                 for j in check_params]
    for b, v in zip(bottom, bottom_values):
        b.data[...] = v
    center = objective()

    def nudge(blob, k, value):
        # Through .data each time (as pycaffe needs): in GPU mode the write then reaches the device.
        blob.data.reshape(-1)[k] = value

    pick = np.random.default_rng(seed + 1)
    for name, grad, blob in analytic:
        flat = blob.data.reshape(-1)
        step = eps
        if scale_eps:
            rms = float(np.sqrt(np.mean(flat * flat))) if flat.size else 0.0
            step = eps * min(1.0, rms) if rms > 0 else eps
        indices = range(flat.size)
        if max_checks is not None and flat.size > max_checks:
            indices = np.sort(pick.choice(flat.size, max_checks, replace=False))
        for k in indices:
            orig = blob.data.reshape(-1)[k]
            nudge(blob, k, orig + step)
            plus = objective()
            nudge(blob, k, orig - step)
            minus = objective()
            nudge(blob, k, orig)
            yield Comparison(name, int(k), float(grad.reshape(-1)[k]),
                             (plus - minus) / (2 * step), (center - minus) / step,
                             (plus - center) / step)


def relative_error(analytic, numeric):
    """|analytic - numeric| / max(|analytic|, |numeric|, 1), as Caffe's checker scales it."""
    return abs(analytic - numeric) / max(abs(analytic), abs(numeric), 1.0)


def random_inputs(net, seed=1701):
    """Fill the net's Input blobs with random data: floats in [0, 1), labels as class indices.

    An input named like "label" that a loss or accuracy layer takes next to a
    prediction of C channels (axis 1) gets integers in [0, C).
    """
    rng = np.random.default_rng(seed)
    for name in net.inputs:
        blob = net.blobs[name]
        classes = _classes_for(net, blob) if "label" in name.lower() else None
        if classes:
            blob.data[...] = rng.integers(0, classes, blob.shape)
        else:
            blob.data[...] = rng.random(blob.shape)


def _classes_for(net, blob):
    for li, layer in enumerate(net.layers):
        bottoms = net._bottom[li]
        if layer.type == "Split" and bottoms and bottoms[0] is blob:
            found = [_classes_for(net, t) for t in net._top[li]]
            return next((c for c in found if c), None)
        if (layer.is_loss or layer.type == "Accuracy") and len(bottoms) > 1 \
                and bottoms[1] is blob and len(bottoms[0].shape) > 1:
            return bottoms[0].shape[1]
    return None


def check_net_gradients(net, eps=1e-3, threshold=1e-3, max_checks=100, seed=1701):
    """Check every layer of `net` (built with dtype float64) that has a backward.

    Runs one forward pass of the net as it stands (feed or fill its inputs
    first), then checks each layer alone at the bottom values it saw, against
    central differences of step eps. Checked: bottoms the layer passes
    gradients to, and params with lr_mult != 0; at most max_checks random
    elements of each (None: all). The step is eps * min(1, RMS of the array).
    An element whose central difference misses but whose one-sided slope
    matches sits on a kink (ReLU at 0, a max tie) within the step: it is
    counted in `kinks`, not in the error.
    Returns a LayerReport per checked layer, in run order.
    """
    if net.dtype != np.float64:
        raise TypeError("check_net_gradients needs a net built with dtype=np.float64")
    seen = []
    with one_blas_thread():
        for li, layer in enumerate(net.layers):
            seen.append([b.data.copy() for b in net._bottom[li]])
            layer.reshape(net._bottom[li], net._top[li])
            layer.forward(net._bottom[li], net._top[li])
        reports = []
        for li, layer in enumerate(net.layers):
            bottoms = [i for i in range(len(seen[li])) if layer.allow_backward(i)]
            params = [j for j in range(len(layer.blobs)) if net._lr_mult(li, j) != 0]
            if not bottoms and not params:
                continue
            reports.append(_check_layer(layer, seen[li], len(net._top[li]), bottoms, params,
                                        eps, threshold, max_checks, seed))
        for li, layer in enumerate(net.layers):
            layer.reshape(net._bottom[li], net._top[li])
    net.clear_param_diffs()
    return reports


def _check_layer(layer, bottom_values, num_top, bottoms, params, eps, threshold, max_checks, seed):
    bottom = []
    for values in bottom_values:
        blob = Blob(values.shape, np.float64)
        blob.data[...] = values
        bottom.append(blob)
    top = [Blob((), np.float64) for _ in range(num_top)]
    kept = [p.data.copy() for p in layer.blobs]     # a TRAIN BatchNorm updates its statistics
    worst, where, checked, kinks = 0.0, "", 0, 0
    # The check runs backward even where the net never would: forward keeps what it needs.
    forward_only, layer.forward_only = layer.forward_only, False
    try:
        for c in compare_gradients(layer, bottom, top, bottoms, params, eps, seed, max_checks,
                                   scale_eps=True):
            checked += 1
            err = relative_error(c.analytic, c.numeric)
            if err > threshold and min(relative_error(c.analytic, c.left),
                                       relative_error(c.analytic, c.right)) <= threshold:
                kinks += 1
                continue
            if err >= worst:
                worst, where = err, f"{c.name}[{c.index}]: analytic {c.analytic:.6g}, " \
                                    f"numerical {c.numeric:.6g}"
    finally:
        layer.forward_only = forward_only
        for p, v in zip(layer.blobs, kept):
            p.data[...] = v
    return LayerReport(layer.name, layer.type, worst, where, checked, kinks)
