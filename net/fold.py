"""Folding for TEST forwards: BatchNorm, Scale and Bias after a Convolution, and a ReLU
after them, run inside the convolution (as OpenCV and TensorRT do).

A chain  Convolution -> BatchNorm (global statistics) -> Scale / Bias ... -> ReLU or
PReLU (a slope per channel), each
layer after the convolution in place on its top (so nothing else reads the blob in
between), computes per output channel o

    y_o = relu(g_o (w_o * x + b_o) + h_o) = relu((g_o w_o) * x + (g_o b_o + h_o))

with g and h gathered from the statistics, the scales and the biases. The convolution
runs with its own weights and applies g, the bias and the ReLU in the pass that writes its
output (epilogue()); the folded layers are skipped. The depthwise kernels and the GPU path
take folded weights instead, (g_o w_o), the convolution's own copy (params()). net.params,
every layer's blobs and training are untouched: g, h and any copy are made again whenever
a fingerprint of the blobs they come from changes (a solver step on shared params, net
surgery in Python). A forward that is not a whole pass, or a backward, runs the layers
one by one as written.
"""
import numpy as np

from ..layers.kernels.fingerprint import fingerprint


class Fold:
    """The folded weights and bias of one convolution, and the ReLU or PReLU after it (a
    layer, or a number: the negative slope; None: none)."""

    def __init__(self, conv, norms, relu):
        self.conv, self.norms, self.relu = conv, norms, relu
        self._key, self._params = None, None
        self._epilogue_key, self._epilogue = None, None

    def _sources(self):
        layers = [self.conv] + self.norms + [self.relu] * (self.relu is not None and
                                                         not isinstance(self.relu, float))
        return [layer.blobs for layer in layers]

    def sources(self, weights=True):
        """The arrays the folded params are made from; weights=False leaves out the
        convolution's weights (epilogue() does not derive from them)."""
        arrays = [b.data for blobs in self._sources() for b in blobs]
        return arrays if weights else arrays[1:]

    def params(self):
        """(weights, bias, ReLU slopes per output as float64 or None), the first two as the
        convolution's dtype, made again when a source changed."""
        key = tuple(fingerprint(array) for array in self.sources())
        if key != self._key:
            scale, bias = self._scale_and_bias()
            weights = self.conv.blobs[0].data.astype(np.float64)
            folded = weights * scale.reshape((-1,) + (1,) * (weights.ndim - 1))
            dtype = self.conv.blobs[0].data.dtype
            self._params = (np.ascontiguousarray(folded, dtype), bias.astype(dtype),
                            self._slopes(len(scale)))
            self._key = key
        return self._params

    def epilogue(self):
        """(bias, scales as float64, ReLU slopes or None) for a convolution that keeps its
        own weights: y = relu(scale * (w * x) + bias). Nothing derived from the weights is
        kept, so nothing of their size is copied or fingerprinted on each forward."""
        key = tuple(fingerprint(array) for array in self.sources(weights=False))
        if key != self._epilogue_key:
            scale, bias = self._scale_and_bias()
            self._epilogue = (bias.astype(self.conv.blobs[0].data.dtype), scale,
                              self._slopes(len(scale)))
            self._epilogue_key = key
        return self._epilogue

    def _scale_and_bias(self):
        """Per output, g and h of the module docstring (float64)."""
        outputs = self.conv.blobs[0].shape[0]
        bias = (self.conv.blobs[1].data.astype(np.float64) if self.conv.bias_term
                else np.zeros(outputs))
        scale = np.ones(outputs)
        for layer in self.norms:
            if layer.type == "BatchNorm":
                mean, var = layer._global_stats()
                g = 1.0 / np.sqrt(var + layer.eps)
                scale, bias = scale * g, (bias - mean) * g
            elif layer.type == "Scale":
                g = layer.blobs[0].data.astype(np.float64).reshape(-1)
                scale, bias = scale * g, bias * g
                if layer.bias_term:
                    bias = bias + layer.blobs[1].data.astype(np.float64).reshape(-1)
            else:
                bias = bias + layer.blobs[0].data.astype(np.float64).reshape(-1)
        return scale, bias

    def _slopes(self, outputs):
        if self.relu is None:
            return None
        if isinstance(self.relu, float):
            return np.full(outputs, self.relu)
        slopes = self.relu.blobs[0].data.astype(np.float64).reshape(-1)
        return np.broadcast_to(slopes, (outputs,)).copy()


def _per_channel(layer, channels):
    """Whether a Scale or Bias layer multiplies or adds one learned value per channel."""
    p = layer.param.scale_param if layer.type == "Scale" else layer.param.bias_param
    return (len(layer.blobs) >= 1 and layer.blobs[0].shape == (channels,) and p.axis == 1)


def find_folds(net):
    """{index of a convolution: (Fold, [indices of the layers folded into it])} for the
    chains of a TEST net (see the module docstring)."""
    readers = {}                        # id(blob) -> run-order indices of its readers
    for li, bottoms in enumerate(net._bottom):
        for blob in bottoms:
            readers.setdefault(id(blob), []).append(li)
    folds = {}
    for li, layer in enumerate(net.layers):
        if layer.type != "Convolution" or len(net._top[li]) != 1 or len(net._bottom[li]) != 1:
            continue
        top = net._top[li][0]
        channels = layer.num_output
        norms, folded, relu = [], [], None
        for ri in (r for r in readers.get(id(top), []) if r > li):
            reader = net.layers[ri]
            in_place = (len(net._bottom[ri]) == 1 and len(net._top[ri]) == 1 and
                        net._top[ri][0] is top)
            if not in_place or relu is not None:
                break
            if reader.type == "BatchNorm" and reader.use_global_stats:
                pass
            elif reader.type in ("Scale", "Bias") and _per_channel(reader, channels):
                pass
            elif reader.type in ("ReLU", "PReLU"):
                relu = float(reader.slope) if reader.type == "ReLU" else reader
                if reader.type == "PReLU" and reader.blobs[0].count not in (1, channels):
                    break
                folded.append(ri)
                continue
            else:
                break
            norms.append(reader)
            folded.append(ri)
        if folded:
            folds[li] = (Fold(layer, norms, relu), folded)
    return folds
