"""Fillers: initial values for parameter blobs, as Caffe's FillerParameter says."""
import numpy as np

from ..proto.errors import NetError
from .backend import rng


def _fans(shape):
    # Caffe: fan_in = count / num, fan_out = count / channels
    count = int(np.prod(shape))
    fan_in = count / shape[0] if shape else 1
    fan_out = count / shape[1] if len(shape) > 1 else count
    return fan_in, fan_out


def _scale_n(param, shape):
    fan_in, fan_out = _fans(shape)
    if param.variance_norm == param.AVERAGE:
        return (fan_in + fan_out) / 2.0
    if param.variance_norm == param.FAN_OUT:
        return fan_out
    return fan_in


def fill(array, param):
    """Fill array in place according to a FillerParameter."""
    shape = array.shape
    r = rng()
    kind = param.type
    if kind == "constant":
        array[...] = param.value
    elif kind == "uniform":
        array[...] = r.uniform(param.min, param.max, shape)
    elif kind == "gaussian":
        array[...] = r.normal(param.mean, param.std, shape)
        if param.sparse >= 0:
            # Caffe keeps each weight with probability sparse / num_outputs.
            num_outputs = shape[0] if shape else 1
            keep = r.random(shape) < param.sparse / num_outputs
            array *= keep
    elif kind == "positive_unitball":
        values = r.uniform(0.0, 1.0, shape)
        rows = values.reshape(shape[0], -1)
        rows /= rows.sum(axis=1, keepdims=True)
        array[...] = values
    elif kind == "xavier":
        bound = np.sqrt(3.0 / _scale_n(param, shape))
        array[...] = r.uniform(-bound, bound, shape)
    elif kind == "msra":
        array[...] = r.normal(0.0, np.sqrt(2.0 / _scale_n(param, shape)), shape)
    elif kind == "bilinear":
        array[...] = bilinear_kernel(shape)
    else:
        raise NetError(f"unknown filler type {kind!r}; known: constant, uniform, gaussian, "
                       "positive_unitball, xavier, msra, bilinear")
    return array


def bilinear_kernel(shape):
    """Weights that upsample by bilinear interpolation (for Deconvolution)."""
    if len(shape) != 4 or shape[2] != shape[3]:
        raise NetError(f"bilinear filler needs a square 4-D weight shape, got {shape}")
    k = shape[3]
    f = np.ceil(k / 2.0)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    ramp = 1 - np.abs(np.arange(k) / f - c)
    return np.broadcast_to(np.outer(ramp, ramp), shape).copy()
