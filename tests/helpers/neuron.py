"""Checks every elementwise (neuron) layer shares: in place vs separate top, GPU path vs CPU."""
import numpy as np

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.io import array_to_blobproto

from .gradcheck import make_blobs, setup_layer


def make_layer(type_name, dtype=np.float64, params=None, blobs=(), **fields):
    """A layer of type_name with `<params>` set from fields (e.g. params="elu_param", alpha=2).

    blobs: arrays given as the layer's learnable blobs, as weights in a LayerParameter are.
    """
    param = pb.LayerParameter(name=type_name.lower(), type=type_name)
    for key, value in fields.items():
        setattr(getattr(param, params), key, value)
    for array in blobs:
        param.blobs.append(array_to_blobproto(np.asarray(array, np.float64)))
    return layer_class(type_name)(param, pb.TRAIN, dtype)


def _passes(layer, x, dy, in_place, gpu):
    bottom = make_blobs(x)
    top = setup_layer(layer, bottom, top=bottom if in_place else None)
    forward = layer.forward_gpu if gpu else layer.forward_cpu
    backward = layer.backward_gpu if gpu else layer.backward_cpu
    forward(bottom, top)
    y = top[0].data.copy()
    top[0].diff[...] = dy
    for p in layer.blobs:
        p.diff[...] = 0
    backward(top, [True], bottom)
    return y, bottom[0].diff.copy(), [p.diff.copy() for p in layer.blobs]


def check_in_place(new_layer, x, seed=1, gpu=False):
    """In place (top is bottom) gives the separate-top output, bottom diff and param diffs."""
    dy = np.random.default_rng(seed).standard_normal(x.shape)
    separate = _passes(new_layer(), x, dy, in_place=False, gpu=gpu)
    inplace = _passes(new_layer(), x, dy, in_place=True, gpu=gpu)
    np.testing.assert_array_equal(inplace[0], separate[0])
    np.testing.assert_array_equal(inplace[1], separate[1])
    for a, b in zip(inplace[2], separate[2]):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def check_gpu_matches_cpu(new_layer, x, seed=1, in_place=False):
    """The array-API (GPU) path, run on numpy, agrees with the Cython path."""
    dy = np.random.default_rng(seed).standard_normal(x.shape)
    cpu = _passes(new_layer(), x, dy, in_place=in_place, gpu=False)
    gpu = _passes(new_layer(), x, dy, in_place=in_place, gpu=True)
    for a, b in zip([cpu[0], cpu[1]] + cpu[2], [gpu[0], gpu[1]] + gpu[2]):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)
