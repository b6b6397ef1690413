"""The layers that weigh, normalize, join, cut, reshape or look up blobs: InnerProduct,
BatchNorm, Scale, Bias, MVN, Softmax, Concat, Slice, Flatten, Reshape, Crop, Tile, Eltwise,
Reduction, ArgMax, cyffe's LayerNorm, GroupNorm and Maxout, Embed, BatchReindex and
Parameter. Shapes come from the net's blobs (static), axes from the layers' own reading
of their parameters (Caffe's negative axes and legacy fields resolved)."""
import numpy as np
from onnx import TensorProto

from ...layers.base import canonical_axis
from ...proto import cyffe_pb2 as pb
from .graph import maps


@maps("InnerProduct")
def inner_product(g, layer, bottoms, tops):
    p = layer.param.inner_product_param
    shape, top_shape = g.bottom_shapes[0], g.top_shapes[0]
    axis = canonical_axis(p.axis, len(shape), layer)
    rows = g.node("Flatten", bottoms, what="rows", axis=axis)
    inputs = [rows, g.weight("weight", layer.blobs[0].data)]
    if p.bias_term:
        inputs.append(g.weight("bias", layer.blobs[1].data))
    # Caffe's weight is (N, K), or (K, N) with transpose: y = x W^T, or x W.
    two_d = len(top_shape) == 2 and axis == 1
    y = g.node("Gemm", inputs, tops[0] if two_d else None, transB=0 if p.transpose else 1)
    if not two_d:
        g.reshape(y, shape, top_shape, tops[0])


@maps("BatchNorm")
def batch_norm(g, layer, bottoms, tops):
    if not layer.use_global_stats:
        raise g.unsupported("it normalizes by the batch's own statistics "
                            "(use_global_stats false, as in TRAIN); export it in phase TEST")
    mean, var, factor = (b.data.astype(np.float64) for b in layer.blobs)
    # Caffe stores sums: the statistics are blob / scale factor (0 when the factor is 0).
    factor = 0.0 if factor.ravel()[0] == 0 else 1.0 / factor.ravel()[0]
    mean, var = mean * factor, var * factor
    shape = g.bottom_shapes[0]
    if len(shape) >= 2:
        g.node("BatchNormalization",
               [bottoms[0], g.weight("gamma", np.ones_like(mean)),
                g.weight("beta", np.zeros_like(mean)), g.weight("mean", mean),
                g.weight("var", var)], tops[0], epsilon=layer.eps)
        return
    centred = g.node("Sub", [bottoms[0], g.weight("mean", mean)], what="centred")
    g.node("Div", [centred, g.weight("std", np.sqrt(var + layer.eps))], tops[0])


def _broadcast_shape(g, layer, operand_shape):
    """operand_shape with 1s after it, so that it broadcasts over bottom 0 from its axis."""
    shape = g.bottom_shapes[0]
    axis = 0 if len(operand_shape) == 0 else canonical_axis(layer.axis, len(shape), layer)
    return tuple(operand_shape) + (1,) * (len(shape) - axis - len(operand_shape))


def _operand(g, layer, bottoms, blob, what):
    """A Scale's or Bias's operand, shaped to broadcast: a learned blob (an initializer of
    that shape) or bottom 1 (reshaped)."""
    if blob is not None:
        return g.weight(what, blob.data.reshape(_broadcast_shape(g, layer, blob.shape)))
    operand_shape = g.bottom_shapes[1]
    wanted = _broadcast_shape(g, layer, operand_shape)
    if wanted == tuple(operand_shape):
        return bottoms[1]
    return g.reshape(bottoms[1], operand_shape, wanted, what=what + "_broadcast")


@maps("Scale")
def scale(g, layer, bottoms, tops):
    learned = len(bottoms) == 1
    s = _operand(g, layer, bottoms, layer.blobs[0] if learned else None, "scale")
    if not layer.bias_term:
        g.node("Mul", [bottoms[0], s], tops[0])
        return
    y = g.node("Mul", [bottoms[0], s], what="scaled")
    g.node("Add", [y, _operand(g, layer, bottoms, layer.blobs[-1], "bias")], tops[0])


@maps("Bias")
def bias(g, layer, bottoms, tops):
    b = _operand(g, layer, bottoms, layer.blobs[0] if len(bottoms) == 1 else None, "bias")
    g.node("Add", [bottoms[0], b], tops[0])


@maps("MVN")
def mvn(g, layer, bottoms, tops):
    p = layer.param.mvn_param
    ndim = len(g.bottom_shapes[0])
    axes = list(range(1 if p.across_channels else 2, ndim))
    if not axes:
        # (N, C) without across_channels: each row is one value, its own mean: y = 0.
        g.node("Sub", [bottoms[0], bottoms[0]], tops[0])
        return
    mean = g.reduce("ReduceMean", bottoms[0], axes, 1, what="mean")
    if not p.normalize_variance:
        g.node("Sub", [bottoms[0], mean], tops[0])
        return
    centred = g.node("Sub", [bottoms[0], mean], what="centred")
    squares = g.node("Mul", [centred, centred], what="squares")
    std = g.node("Sqrt", [g.reduce("ReduceMean", squares, axes, 1, what="variance")],
                 what="std")
    # Caffe adds eps to the standard deviation, not to the variance.
    g.node("Div", [centred, g.node("Add", [std, g.scalar("eps", p.eps)], what="std_eps")],
           tops[0])


@maps("Softmax")
def softmax(g, layer, bottoms, tops):
    axis = canonical_axis(layer.param.softmax_param.axis, len(g.bottom_shapes[0]), layer)
    g.node("Softmax", bottoms, tops[0], axis=axis)


@maps("Concat")
def concat(g, layer, bottoms, tops):
    g.node("Concat", bottoms, tops[0], axis=layer.axis)


@maps("Slice")
def slice_(g, layer, bottoms, tops):
    sizes = [t[layer.axis] for t in g.top_shapes]
    g.node_multi("Split", [bottoms[0], g.ints("split", sizes)], tops, axis=layer.axis)


@maps("Flatten", "Reshape")
def reshape(g, layer, bottoms, tops):
    g.reshape(bottoms[0], g.bottom_shapes[0], g.top_shapes[0], tops[0])


@maps("Crop")
def crop(g, layer, bottoms, tops):
    cut = [(a, s) for a, s in enumerate(layer.where) if s != slice(None)]
    g.node("Slice", [bottoms[0], g.ints("starts", [s.start for _, s in cut]),
                     g.ints("ends", [s.stop for _, s in cut]),
                     g.ints("axes", [a for a, _ in cut])], tops[0])


@maps("Tile")
def tile(g, layer, bottoms, tops):
    shape = g.bottom_shapes[0]
    repeats = [1] * len(shape)
    repeats[canonical_axis(layer.axis_param, len(shape), layer)] = layer.tiles
    g.node("Tile", [bottoms[0], g.ints("repeats", repeats)], tops[0])


@maps("Eltwise")
def eltwise(g, layer, bottoms, tops):
    p = layer.param.eltwise_param
    E = pb.EltwiseParameter
    if p.operation == E.MAX:
        g.node("Max", bottoms, tops[0])
    elif p.operation == E.PROD:
        y = bottoms[0]
        for k, x in enumerate(bottoms[1:], 1):
            y = g.node("Mul", [y, x], tops[0] if k == len(bottoms) - 1 else None)
    else:
        terms = list(bottoms)
        for k, c in enumerate(p.coeff):
            if c != 1:
                terms[k] = g.node("Mul", [bottoms[k], g.scalar(f"coeff{k}", c)],
                                  what=f"term{k}")
        g.node("Sum", terms, tops[0])


REDUCTIONS = {pb.ReductionParameter.SUM: "ReduceSum", pb.ReductionParameter.ASUM: "ReduceL1",
              pb.ReductionParameter.SUMSQ: "ReduceSumSquare",
              pb.ReductionParameter.MEAN: "ReduceMean"}


@maps("Reduction")
def reduction(g, layer, bottoms, tops):
    p = layer.param.reduction_param
    ndim = len(g.bottom_shapes[0])
    axes = list(range(canonical_axis(p.axis, ndim, layer), ndim))
    if p.coeff == 1:
        g.reduce(REDUCTIONS[p.operation], bottoms[0], axes, 0, tops[0])
        return
    y = g.reduce(REDUCTIONS[p.operation], bottoms[0], axes, 0)
    g.node("Mul", [y, g.scalar("coeff", p.coeff)], tops[0])


@maps("ArgMax")
def argmax(g, layer, bottoms, tops):
    x, shape = bottoms[0], g.bottom_shapes[0]
    if layer.has_axis:
        axis = canonical_axis(layer.axis_param, len(shape), layer)
    else:
        x, axis = g.node("Flatten", [x], what="items", axis=1), 1
    values, indices = g.temp("values"), g.temp("indices")
    g.node_multi("TopK", [x, g.ints("k", [layer.top_k])], [values, indices], axis=axis,
                 largest=1, sorted=1)
    if layer.has_axis and layer.out_max_val:
        g.node("Identity", [values], tops[0])
        return
    index = g.node("Cast", [indices], tops[0] if layer.has_axis else None,
                   to=TensorProto.FLOAT)
    if layer.has_axis:
        return
    items = (shape[0], 1, layer.top_k)
    parts = [g.reshape(index, (shape[0], layer.top_k), items, what="index_rows")]
    if layer.out_max_val:
        parts.append(g.reshape(values, (shape[0], layer.top_k), items, what="value_rows"))
    joined = g.node("Concat", parts, what="joined", axis=1) if len(parts) > 1 else parts[0]
    g.reshape(joined, items, g.top_shapes[0], tops[0])


def _normalize(g, x, axes, eps, output=None):
    """(x - mean) / sqrt(biased variance + eps) over axes."""
    mean = g.reduce("ReduceMean", x, axes, 1, what="mean")
    centred = g.node("Sub", [x, mean], what="centred")
    squares = g.node("Mul", [centred, centred], what="squares")
    variance = g.reduce("ReduceMean", squares, axes, 1, what="variance")
    std = g.node("Sqrt", [g.node("Add", [variance, g.scalar("eps", eps)], what="variance_eps")],
                 what="std")
    return g.node("Div", [centred, std], output, "normalized")


def _affine(g, layer, x, shape, output):
    """x * scale + bias with the layer's [scale, bias] blobs of `shape` (broadcasting)."""
    scaled = g.node("Mul", [x, g.weight("scale", layer.blobs[0].data.reshape(shape))],
                    what="scaled")
    g.node("Add", [scaled, g.weight("bias", layer.blobs[1].data.reshape(shape))], output)


@maps("LayerNorm")
def layer_norm(g, layer, bottoms, tops):
    p = layer.param.layer_norm_param
    shape = g.bottom_shapes[0]
    axis = canonical_axis(p.axis, len(shape), layer)
    y = _normalize(g, bottoms[0], list(range(axis, len(shape))), p.eps,
                   None if p.affine else tops[0])
    if p.affine:
        _affine(g, layer, y, shape[axis:], tops[0])


@maps("GroupNorm")
def group_norm(g, layer, bottoms, tops):
    p = layer.param.group_norm_param
    shape = g.bottom_shapes[0]
    rows = (shape[0], layer.num_groups, int(np.prod(shape[1:])) // layer.num_groups)
    grouped = g.reshape(bottoms[0], shape, rows, what="groups")
    y = _normalize(g, grouped, [2], p.eps)
    y = g.reshape(y, rows, shape, None if p.affine else tops[0], what="ungroup")
    if p.affine:
        _affine(g, layer, y, (shape[1],) + (1,) * (len(shape) - 2), tops[0])


@maps("Maxout")
def maxout(g, layer, bottoms, tops):
    shape, k = g.bottom_shapes[0], layer.num_pieces
    pieces = (shape[0], shape[1] // k, k) + tuple(shape[2:])
    grouped = g.reshape(bottoms[0], shape, pieces, what="pieces")
    g.reduce("ReduceMax", grouped, [2], 0, tops[0])


@maps("Embed")
def embed(g, layer, bottoms, tops):
    index = g.node("Cast", bottoms, what="index", to=TensorProto.INT64)
    bias_term = layer.param.embed_param.bias_term
    rows = g.node("Gather", [g.weight("weight", layer.blobs[0].data), index],
                  None if bias_term else tops[0], "rows", axis=0)
    if bias_term:
        g.node("Add", [rows, g.weight("bias", layer.blobs[1].data)], tops[0])


@maps("BatchReindex")
def batch_reindex(g, layer, bottoms, tops):
    index = g.node("Cast", [bottoms[1]], what="index", to=TensorProto.INT64)
    g.node("Gather", [bottoms[0], index], tops[0], axis=0)


@maps("Parameter")
def parameter(g, layer, bottoms, tops):
    g.node("Identity", [g.weight("weight", layer.blobs[0].data)], tops[0])
