"""The windowed layers: Convolution, Deconvolution, Im2col, Pooling, SPP and LRN.

Each reads the geometry its layer worked out (kernel, stride, dilation, pads, output
size: layers/kernels/window.Geometry), so the graph has cyffe's (Caffe's) shapes whatever
form the prototxt gave them in. Padding that is not zero (cyffe's pad_fill) becomes a Pad
node before a window that pads nothing itself.

Pooling is where ONNX and Caffe part: Caffe's output length rounds up, so the last
window may hang past the padded input, and AVE divides by the window clipped to the
padded input [-pad, size + pad), not by the kernel's area nor by the in-image count. The
graph therefore never leans on ONNX's ceil_mode or count_include_pad at the border: it
pads after by exactly what the last window needs (asymmetric pads, floor rounding),
cuts any window too many, and for AVE multiplies the kernel-area average by
area / Caffe's divisor, a constant per output pixel, where they differ.
"""
import numpy as np
from onnx import TensorProto

from .graph import maps

FILLS = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}


def pad_node(g, x, geometry, what="pad"):
    """x padded by the geometry's pads with its fill (constant, reflect, replicate)."""
    pads = [0, 0, *geometry.pad_before, 0, 0, *geometry.pad_after]
    inputs = [x, g.ints(what + "_pads", pads)]
    if geometry.fill == "constant":
        inputs.append(g.scalar(what + "_value", geometry.value))
    return g.node("Pad", inputs, what=what, mode=FILLS[geometry.fill])


def _images(g, layer, x, shape):
    """x as (images, channels, *spatial) for ONNX's window ops (conv axis > 1 folds the
    leading axes into one)."""
    if layer.axis == 1:
        return x
    images = int(np.prod(shape[:layer.axis]))
    return g.reshape(x, shape, (images,) + tuple(shape[layer.axis:]), what="images")


def _convolve(g, layer, bottoms, tops, weights, group):
    """Conv of every bottom with weights (and bias) over the layer's geometry."""
    geometry = layer.geometry
    for x, y, shape, top_shape in zip(bottoms, tops, g.bottom_shapes, g.top_shapes):
        source = _images(g, layer, x, shape)
        pads = list(geometry.pad_before) + list(geometry.pad_after)
        if geometry.copies:
            source, pads = pad_node(g, source, geometry), [0] * len(pads)
        out = g.node("Conv", [source] + weights, y if layer.axis == 1 else None,
                     kernel_shape=list(geometry.kernel), strides=list(geometry.stride),
                     dilations=list(geometry.dilation), pads=pads, group=group)
        if layer.axis != 1:
            g.reshape(out, shape, top_shape, y)


@maps("Convolution")
def convolution(g, layer, bottoms, tops):
    weights = [g.weight("weight", layer.blobs[0].data)]
    if layer.bias_term:
        weights.append(g.weight("bias", layer.blobs[1].data))
    _convolve(g, layer, bottoms, tops, weights, layer.group)


@maps("Im2col")
def im2col(g, layer, bottoms, tops):
    # A grouped convolution with one-hot kernels: output channel c * K + k copies kernel
    # offset k of channel c (K the kernel's volume), Caffe's order of the patch rows.
    volume = int(np.prod(layer.geometry.kernel))
    picks = np.eye(volume, dtype=np.float32).reshape((volume, 1) + layer.geometry.kernel)
    one_hot = np.tile(picks, (layer.channels,) + (1,) * (picks.ndim - 1))
    _convolve(g, layer, bottoms, tops, [g.weight("one_hot", one_hot)], layer.channels)


@maps("Deconvolution")
def deconvolution(g, layer, bottoms, tops):
    weight = g.weight("weight", layer.blobs[0].data)
    inputs = [weight] + ([g.weight("bias", layer.blobs[1].data)] if layer.bias_term else [])
    for x, y, shape, top_shape in zip(bottoms, tops, g.bottom_shapes, g.top_shapes):
        out = g.node("ConvTranspose", [_images(g, layer, x, shape)] + inputs,
                     y if layer.axis == 1 else None, kernel_shape=list(layer.kernel),
                     strides=list(layer.stride), dilations=list(layer.dilation),
                     pads=list(layer.pad) * 2, group=layer.group)
        if layer.axis != 1:
            g.reshape(out, shape, top_shape, y)


def caffe_divisor(geometry):
    """Caffe's AVE divisor per output pixel: the window clipped to the padded source."""
    sizes = []
    for size, before, after, k, s, o in zip(geometry.source_shape, geometry.source_pads,
                                            geometry.source_pads_after, geometry.kernel,
                                            geometry.stride, geometry.out_shape):
        start = np.arange(o) * s - before
        sizes.append(np.minimum(start + k, size + after) - start)
    divisor = np.outer(*sizes)
    return np.where(divisor > 0, divisor, 1)


def _pads(geometry):
    """ONNX pads for exactly Caffe's windows of the (padded) source with floor rounding,
    and whether that gives a window too many (to cut) per axis."""
    kernel, stride, out = geometry.kernel, geometry.stride, geometry.out_shape
    before = list(geometry.source_pads)
    # What the last window needs past the source's end (negative: it ends inside it).
    after = [max((o - 1) * s + k - size - b, 0) for o, s, k, size, b in
             zip(out, stride, kernel, geometry.source_shape, before)]
    floor_out = [(size + b + a - k) // s + 1 for size, b, a, k, s in
                 zip(geometry.source_shape, before, after, kernel, stride)]
    return before + after, floor_out != list(out)


def _cut(g, y, geometry, output=None, what="cut"):
    """y cut to the geometry's output size (its spatial axes 2 and 3)."""
    return g.node("Slice", [y, g.ints(what + "_starts", [0, 0]),
                            g.ints(what + "_ends", geometry.out_shape),
                            g.ints(what + "_axes", [2, 3])], output, what)


def _window(g, op, x, geometry, output=None, what=None, **attrs):
    """An ONNX pooling op over exactly Caffe's windows of the (padded) source x."""
    pads, cut = _pads(geometry)
    y = g.node(op, [x], None if cut else output, what, kernel_shape=list(geometry.kernel),
               strides=list(geometry.stride), pads=pads, **attrs)
    return _cut(g, y, geometry, output) if cut else y


def _max_and_mask(g, x, geometry, tops, plane):
    """MAX pooling with Caffe's mask top: each window's argmax as h * W + w in its plane
    (ONNX's indices run over the whole tensor: taken modulo the plane's size)."""
    pads, cut = _pads(geometry)
    values, indices = (g.temp("values") if cut else tops[0]), g.temp("indices")
    g.node_multi("MaxPool", [x], [values, indices], kernel_shape=list(geometry.kernel),
                 strides=list(geometry.stride), pads=pads)
    if cut:
        _cut(g, values, geometry, tops[0])
        indices = _cut(g, indices, geometry, what="cut_indices")
    in_plane = g.node("Mod", [indices, g.ints("plane", [plane])], what="in_plane")
    g.node("Cast", [in_plane], tops[1], to=TensorProto.FLOAT)


def _ave(g, x, geometry, output=None, what="average"):
    """Caffe's average: the kernel-area average, rescaled where Caffe's divisor differs."""
    area = int(np.prod(geometry.kernel))
    divisor = caffe_divisor(geometry)
    exact = bool(np.all(divisor == area))
    y = _window(g, "AveragePool", x, geometry, output if exact else None, what,
                count_include_pad=1)
    if exact:
        return y
    factor = g.weight(what + "_divisor_fix", (area / divisor)[None, None])
    return g.node("Mul", [y, factor], output, what + "_fix")


@maps("Pooling")
def pooling(g, layer, bottoms, tops):
    x, y, geometry = bottoms[0], tops[0], layer.geometry
    method = layer.method
    if len(tops) > 1:
        if geometry.copies:
            raise g.unsupported("its mask top counts in the padded copy that pad_fill "
                                f"{geometry.fill.upper()} pools")
        _max_and_mask(g, x, geometry, tops, int(np.prod(g.bottom_shapes[0][2:])))
        return
    if layer.global_pooling and method in ("max", "ave", "l2"):
        op = {"max": "GlobalMaxPool", "ave": "GlobalAveragePool", "l2": "GlobalLpPool"}[method]
        g.node(op, [x], y, **({"p": 2} if method == "l2" else {}))
        return
    if geometry.copies:
        x = pad_node(g, x, geometry)
    if method == "max":
        _window(g, "MaxPool", x, geometry, y)
    elif method == "ave":
        _ave(g, x, geometry, y)
    elif method == "l2":
        _window(g, "LpPool", x, geometry, y, p=2)
    elif method == "weighted":
        # Stochastic pooling in TEST: sum(x^2) / (FLT_MIN + sum(x)) over each window.
        area = g.scalar("area", np.prod(geometry.kernel))
        squares = g.node("Mul", [x, x], what="squares")
        sum_sq = g.node("Mul", [_window(g, "AveragePool", squares, geometry,
                                        what="mean_squares", count_include_pad=1), area],
                        what="sum_squares")
        sums = g.node("Mul", [_window(g, "AveragePool", x, geometry, what="mean",
                                      count_include_pad=1), area], what="sums")
        tiny = g.scalar("flt_min", np.finfo(np.float32).tiny)
        g.node("Div", [sum_sq, g.node("Add", [sums, tiny], what="sums_flt_min")], y)
    else:
        raise g.unsupported(f"{method} pooling in phase TRAIN is random")


@maps("LRN")
def lrn(g, layer, bottoms, tops):
    x, y = bottoms[0], tops[0]
    p = layer.param.lrn_param
    if layer.across:
        g.node("LRN", [x], y, size=p.local_size, alpha=p.alpha, beta=p.beta, bias=p.k)
        return
    # WITHIN_CHANNEL, as Caffe builds it: x * (1 + alpha * mean of x^2 over n x n)^-beta,
    # the mean's divisor always n^2 (centred windows, stride 1, zero padding).
    half = (p.local_size - 1) // 2
    squares = g.node("Mul", [x, x], what="squares")
    mean = g.node("AveragePool", [squares], what="mean_squares",
                  kernel_shape=[p.local_size] * 2, pads=[half] * 4, count_include_pad=1)
    scaled = g.node("Mul", [mean, g.scalar("alpha", p.alpha)], what="scaled")
    base = g.node("Add", [scaled, g.scalar("one", 1.0)], what="base")
    factor = g.node("Pow", [base, g.scalar("minus_beta", -p.beta)], what="factor")
    g.node("Mul", [x, factor], y)


@maps("SPP")
def spp(g, layer, bottoms, tops):
    # Caffe builds SPP of one Pooling layer per level: so does the layer, and so the graph.
    levels = layer._levels
    if len(levels) == 1:
        pooling(g, levels[0], bottoms, tops)
        return
    flat = []
    for k, level in enumerate(levels):
        pooled = g.temp(f"level{k}")
        pooling(g, level, bottoms, [pooled])
        flat.append(g.node("Flatten", [pooled], what=f"level{k}_flat", axis=1))
    g.node("Concat", flat, tops[0], axis=1)
