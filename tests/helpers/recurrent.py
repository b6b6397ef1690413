"""What the recurrent-layer tests share: layers, input sequences, step-by-step references.

Sizes: T steps, N streams, H hidden units, D_STATIC static features. An LSTM
exposes two states (h, c), an RNN one (h).
"""
import numpy as np

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.io import array_to_blobproto

from .gradcheck import setup_layer

T, N, H = 4, 3, 2
D_STATIC = 3
STATES = {"LSTM": 2, "RNN": 1}


def recurrent_layer(type_name, dtype=np.float64, expose=False, blobs=(), num_output=H):
    """An LSTM or RNN layer with uniform(-0.8, 0.8) fillers, or the given blobs."""
    param = pb.LayerParameter(name=type_name.lower(), type=type_name)
    p = param.recurrent_param
    p.num_output = num_output
    p.expose_hidden = expose
    for filler in (p.weight_filler, p.bias_filler):
        filler.type, filler.min, filler.max = "uniform", -0.8, 0.8
    for array in blobs:
        param.blobs.append(array_to_blobproto(np.asarray(array, np.float64)))
    return layer_class(type_name)(param, pb.TRAIN, dtype)


def sequence(x_item_shape, states, seed=0, steps=T, static=False, expose=False,
             first_cont=0.0):
    """Bottoms x, cont (a reset mid-sequence in stream 1), [x_static], [initial states]."""
    r = np.random.default_rng(seed)
    cont = np.ones((steps, N))
    cont[0] = first_cont
    cont[steps // 2, 1] = 0
    arrays = [r.standard_normal((steps, N) + tuple(x_item_shape)), cont]
    if static:
        arrays.append(r.standard_normal((N, D_STATIC)))
    if expose:
        arrays += [r.standard_normal((1, N, H)) for _ in range(states)]
    return arrays


def run(layer, arrays, states):
    """Set the layer up on copies of arrays and run forward; returns (bottom, top)."""
    bottom = [Blob(a.shape, layer.dtype) for a in arrays]
    for b, a in zip(bottom, arrays):
        b.data[...] = a
    top = setup_layer(layer, bottom,
                      num_top=1 + states * layer.param.recurrent_param.expose_hidden)
    layer.forward(bottom, top)
    return bottom, top


def params_of(layer):
    return [b.data.astype(np.float64) for b in layer.blobs]


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def lstm_reference(x, cont, params, x_static=None, h0=None, c0=None):
    """Caffe's unrolled LSTM net, step by step: (h for every step, h_T, c_T)."""
    if x_static is None:
        w_xc, b_c, w_hc = params
    else:
        w_xc, b_c, w_static, w_hc = params
    steps, num = x.shape[:2]
    h = np.zeros((num, H)) if h0 is None else h0.reshape(num, H)
    c = np.zeros((num, H)) if c0 is None else c0.reshape(num, H)
    hs = []
    for t in range(steps):
        keep = cont[t][:, None]
        a = x[t].reshape(num, -1) @ w_xc.T + b_c + (keep * h) @ w_hc.T
        if x_static is not None:
            a = a + x_static.reshape(num, -1) @ w_static.T
        i, f, o = _sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H]), _sigmoid(a[:, 2 * H:3 * H])
        g = np.tanh(a[:, 3 * H:])
        c = keep * f * c + i * g
        h = o * np.tanh(c)
        hs.append(h)
    return np.stack(hs), h[None], c[None]


def rnn_reference(x, cont, params, x_static=None, h0=None):
    """Caffe's unrolled RNN net, step by step: (o for every step, h_T)."""
    if x_static is None:
        w_xh, b_h, w_hh, w_ho, b_o = params
    else:
        w_xh, b_h, w_static, w_hh, w_ho, b_o = params
    steps, num = x.shape[:2]
    h = np.zeros((num, H)) if h0 is None else h0.reshape(num, H)
    outputs = []
    for t in range(steps):
        a = x[t].reshape(num, -1) @ w_xh.T + b_h + (cont[t][:, None] * h) @ w_hh.T
        if x_static is not None:
            a = a + x_static @ w_static.T
        h = np.tanh(a)
        outputs.append(np.tanh(h @ w_ho.T + b_o))
    return np.stack(outputs), h[None]
