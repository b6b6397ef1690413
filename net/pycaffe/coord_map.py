"""cyffe.coord_map: pycaffe's caffe.coord_map, how spatial coordinates map between NetSpec tops.

A layer that only moves and scales the spatial grid (Convolution, Pooling,
Deconvolution, Crop, and the elementwise layers in between) maps a coordinate x
of its bottom to a * x + b in its top, on every axis after `axis`. Composing
these maps along the graph tells how a top sits over another, which is what a
fully convolutional net needs to crop an upsampled score map back onto its
input (`crop(n.upscore, n.data)`, as in FCN).

    from cyffe.coord_map import coord_map_from_to, crop
    ax, a, b = coord_map_from_to(n.deconv, n.data)   # deconv coordinates -> data's: a * x + b
    n.score = crop(n.deconv, n.data)                  # a Crop layer with the right offsets

a and b are numpy arrays with one value per spatial axis (a single value stands
for every axis); ax is the axis the spatial ones follow (None when no layer on
the way says).
"""
import numpy as np

from ...proto.errors import NetError
from ...proto.netspec import layer_factory

# Layers whose top is on the grid of their bottom: the identity map.
PASS_THROUGH_LAYERS = ("AbsVal", "BatchNorm", "Bias", "BNLL", "Dropout", "Eltwise", "ELU", "Log",
                       "LRN", "Exp", "MVN", "Power", "ReLU", "PReLU", "Scale", "Sigmoid", "Split",
                       "TanH", "Threshold")


class UndefinedMapException(NetError):
    """A layer whose top has no affine map to its bottom (InnerProduct, a loss, ...)."""


class AxisMismatchException(NetError):
    """Two maps along one path that scale different axes."""


class CropError(NetError, AssertionError):
    """crop() asked for a crop that cannot be made (pycaffe asserts: an AssertionError)."""


def _vector(value):
    return np.array(value, dtype=np.float64, ndmin=1)


def _window(params, type_name):
    """(axis, stride, extent of the dilated kernel, pad) of a convolution or pooling layer."""
    params = params.get("convolution_param", params.get("pooling_param", params))
    legacy = {"pad_h", "pad_w", "kernel_h", "kernel_w", "stride_h", "stride_w"} & set(params)
    if legacy:
        raise CropError(f"{type_name}: coordinate maps need kernel_size/stride/pad, not "
                        f"{', '.join(sorted(legacy))}")
    if "kernel_size" not in params:
        raise UndefinedMapException(f"{type_name}: no kernel_size to map coordinates through")
    extent = (_vector(params["kernel_size"]) - 1) * _vector(params.get("dilation", 1)) + 1
    return (params.get("axis", 1), _vector(params.get("stride", 1)), extent,
            _vector(params.get("pad", 0)))


def coord_map(fn):
    """(axis, a, b) of one layer (a NetSpec Function): top coordinate = a * bottom's + b."""
    kind = fn.type_name
    if kind in ("Convolution", "Pooling", "Im2col"):
        axis, stride, extent, pad = _window(fn.params, kind)
        # Output y is centred on input x = stride * y - pad + (extent - 1) / 2.
        return axis, 1 / stride, (pad - (extent - 1) / 2) / stride
    if kind == "Deconvolution":
        axis, stride, extent, pad = _window(fn.params, kind)
        return axis, stride, (extent - 1) / 2 - pad
    if kind in PASS_THROUGH_LAYERS:
        return None, 1, 0
    if kind == "Crop":
        params = fn.params.get("crop_param", fn.params)
        # Crop's axis is the first cropped one; the map's axis is the one before it.
        return params.get("axis", 2) - 1, 1, -_vector(params.get("offset", 0))
    raise UndefinedMapException(f"{kind} does not map coordinates")


def compose(outer, inner):
    """The map of `outer` after `inner`: x -> a_o * (a_i * x + b_i) + b_o."""
    axis_o, a_o, b_o = outer
    axis_i, a_i, b_i = inner
    if axis_o is not None and axis_i is not None and axis_o != axis_i:
        raise AxisMismatchException(f"maps over axis {axis_i} and axis {axis_o} do not compose")
    return (axis_i if axis_o is None else axis_o), a_o * a_i, a_o * b_i + b_o


def inverse(mapping):
    """The map that undoes `mapping`."""
    axis, a, b = mapping
    return axis, 1 / a, -b / a


def _spatial_bottoms(top):
    """The bottoms a top's coordinates come from (a Crop's second bottom only gives a size)."""
    bottoms = top.fn.inputs
    return bottoms[:1] if top.fn.type_name == "Crop" else bottoms


def _maps_to(top):
    """{ancestor top: the map from its coordinates to `top`'s}, walking up the mappable layers."""
    maps, frontier = {top: (None, 1, 0)}, [top]
    while frontier:
        current = frontier.pop()
        try:
            step = coord_map(current.fn)
        except UndefinedMapException:
            continue
        for bottom in _spatial_bottoms(current):
            maps[bottom] = compose(maps[current], step)
            frontier.append(bottom)
    return maps


def coord_map_from_to(top_from, top_to):
    """(axis, a, b) taking coordinates of top_from to those of top_to: x_to = a * x_from + b.

    Both tops must share an ancestor reached through mappable layers; else a
    NetError (a RuntimeError, as pycaffe raises) says so.
    """
    from_maps = _maps_to(top_from)
    to_maps = _maps_to(top_to)
    for ancestor, to_map in to_maps.items():
        if ancestor in from_maps:
            return compose(to_map, inverse(from_maps[ancestor]))
    raise NetError("could not map coordinates between the tops: they are not connected by "
                   "spatial layers (Convolution, Pooling, Deconvolution, Crop, elementwise)")


def crop(top_from, top_to):
    """A Crop layer (a NetSpec top) that cuts top_from down onto top_to's grid.

    Raises CropError (an AssertionError, as pycaffe's asserts) when the two grids
    differ in scale, or top_to would need a negative or fractional offset.
    """
    axis, a, b = coord_map_from_to(top_from, top_to)
    if not np.all(a == 1):
        raise CropError(f"crop: the tops differ in scale (a = {a}); only a shift can be cropped")
    if not np.all(b <= 0):
        raise CropError(f"crop: negative offset (b = {b}): {top_from.fn.type_name}'s top is "
                        "smaller than the reference")
    if not np.all(np.round(b) == b):
        raise CropError(f"crop: offset {b} is not a whole number of pixels")
    first_cropped = (1 if axis is None else axis) + 1     # None: only elementwise layers
    return layer_factory("Crop")(top_from, top_to, crop_param=dict(
        axis=first_cropped, offset=[int(v) for v in -np.round(b)]))
