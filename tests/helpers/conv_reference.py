"""Direct N-D convolution references for the convolution-family tests (loops, np.pad)."""
import numpy as np

from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb

# pad_fill name -> np.pad mode
NP_PAD_MODE = {"zero": "constant", "constant": "constant", "reflect": "reflect",
               "replicate": "edge"}


def make_conv(type_name="Convolution", name="conv", dtype=np.float64, filled=True, **fields):
    """A layer with convolution_param set from fields; list values go to repeated fields."""
    param = pb.LayerParameter(name=name, type=type_name)
    p = param.convolution_param
    for key, value in fields.items():
        if isinstance(value, list):
            getattr(p, key).extend(value)
        else:
            setattr(p, key, value)
    if filled:
        p.weight_filler.type = "gaussian"
        p.bias_filler.type = "gaussian"
    return layer_class(type_name)(param, pb.TRAIN, dtype)


def pad_images(x, pad_before, pad_after, fill="zero", value=0.0):
    """x (N, C, *S) padded on the spatial axes as np.pad does it."""
    width = [(0, 0), (0, 0)] + list(zip(pad_before, pad_after))
    mode = NP_PAD_MODE[fill]
    if mode == "constant":
        return np.pad(x, width, constant_values=value if fill == "constant" else 0.0)
    return np.pad(x, width, mode=mode)


def same_pads(in_shape, kernel, stride, dilation):
    """TensorFlow's 'same': output ceil(in / stride), the odd pixel after."""
    before, after = [], []
    for i, k, s, d in zip(in_shape, kernel, stride, dilation):
        out = -(-i // s)
        total = max((out - 1) * s + d * (k - 1) + 1 - i, 0)
        before.append(total // 2)
        after.append(total - total // 2)
    return before, after


def reference_conv(x, w, b, stride, dilation, pad_before, pad_after, group=1, fill="zero",
                   value=0.0):
    """Direct N-D cross-correlation, one output position at a time."""
    dims = x.ndim - 2
    padded = pad_images(np.asarray(x, np.float64), pad_before, pad_after, fill, value)
    kernel = w.shape[2:]
    out = tuple((padded.shape[2 + d] - (dilation[d] * (kernel[d] - 1) + 1)) // stride[d] + 1
                for d in range(dims))
    outputs, per_group = w.shape[0], w.shape[1]
    y = np.zeros((x.shape[0], outputs) + out)
    for o in range(outputs):
        g = o // (outputs // group)
        for pos in np.ndindex(*out):
            window = tuple(slice(p * s, p * s + d * (k - 1) + 1, d)
                           for p, s, d, k in zip(pos, stride, dilation, kernel))
            patch = padded[(slice(None), slice(g * per_group, (g + 1) * per_group)) + window]
            y[(slice(None), o) + pos] = np.tensordot(patch, w[o], axes=dims + 1)
        if b is not None:
            y[:, o] += b[o]
    return y


def reference_deconv(x, w, b, stride, dilation, pad, group=1):
    """Scatter every input pixel times its kernel onto the output, then crop the padding."""
    dims = x.ndim - 2
    channels, per_group = w.shape[:2]
    kernel = w.shape[2:]
    full_shape = tuple(s * (i - 1) + d * (k - 1) + 1 for i, s, d, k in
                       zip(x.shape[2:], stride, dilation, kernel))
    full = np.zeros((x.shape[0], per_group * group) + full_shape)
    in_group = channels // group
    for c in range(channels):
        g = c // in_group
        for pos in np.ndindex(*x.shape[2:]):
            for offs in np.ndindex(*kernel):
                at = tuple(p * s + k * d for p, s, k, d in zip(pos, stride, offs, dilation))
                full[(slice(None), slice(g * per_group, (g + 1) * per_group)) + at] += \
                    x[(slice(None), c) + pos][:, None] * w[(c, slice(None)) + offs][None, :]
    y = full[(slice(None), slice(None)) + tuple(
        slice(p, n - p) for p, n in zip(pad, full_shape))]
    if b is not None:
        y = y + b.reshape((-1,) + (1,) * dims)
    return y


def reference_im2col(x, kernel, stride, dilation, pad_before, pad_after, fill="zero",
                     value=0.0):
    """(N, C*K, *out): the patches of x, kernel offsets flattened after the channel."""
    dims = x.ndim - 2
    padded = pad_images(np.asarray(x, np.float64), pad_before, pad_after, fill, value)
    out = tuple((padded.shape[2 + d] - (dilation[d] * (kernel[d] - 1) + 1)) // stride[d] + 1
                for d in range(dims))
    kvol = int(np.prod(kernel))
    top = np.zeros((x.shape[0], x.shape[1] * kvol) + out)
    for c in range(x.shape[1]):
        for k, offs in enumerate(np.ndindex(*kernel)):
            for pos in np.ndindex(*out):
                at = tuple(p * s + o * d for p, s, o, d in zip(pos, stride, offs, dilation))
                top[(slice(None), c * kvol + k) + pos] = padded[(slice(None), c) + at]
    return top
