"""A plain-NumPy im2col reference: forward, backward and SGD for LeNet-like nets.

What one would write without a framework: im2col by sliding_window_view + one GEMM per
convolution, non-overlapping max pooling by reshape, softmax loss. Covers Convolution
(no padding, stride 1), Pooling MAX with kernel == stride dividing the input, InnerProduct,
ReLU and SoftmaxWithLoss; anything else raises ValueError (the net is then not measured).
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cyffe.proto import cyffe_pb2 as pb


class NumpyNet:
    """A NetParameter run in NumPy (float32), layers in file order."""

    def __init__(self, param, image_shape, rng):
        c, s = image_shape[0], image_shape[1]
        self.steps, self.params = [], []
        for layer in param.layer:
            kind = layer.type
            if kind == "Input":
                continue
            if kind == "Convolution":
                p = layer.convolution_param
                k = p.kernel_size[0]
                if (p.pad and p.pad[0]) or (p.stride and p.stride[0] != 1) or p.group > 1:
                    raise ValueError(f"layer '{layer.name}': only unpadded stride-1 convolution")
                w = (rng.standard_normal((p.num_output, c * k * k)) * np.sqrt(1 / (c * k * k)))
                self._add(kind, w.astype(np.float32), np.zeros(p.num_output, np.float32), k=k)
                c, s = p.num_output, s - k + 1
            elif kind == "Pooling":
                p = layer.pooling_param
                if p.pool != pb.PoolingParameter.MAX or p.kernel_size != p.stride or \
                        s % p.kernel_size or p.pad:
                    raise ValueError(f"layer '{layer.name}': only MAX pooling, kernel == stride")
                self.steps.append(("Pooling", None, {"k": p.kernel_size}))
                s //= p.kernel_size
            elif kind == "InnerProduct":
                n = layer.inner_product_param.num_output
                w = rng.standard_normal((n, c * s * s)) * np.sqrt(1 / (c * s * s))
                self._add(kind, w.astype(np.float32), np.zeros(n, np.float32))
                c, s = n, 1
            elif kind == "ReLU":
                self.steps.append(("ReLU", None, {}))
            elif kind == "SoftmaxWithLoss":
                self.steps.append(("Loss", None, {}))
            else:
                raise ValueError(f"layer '{layer.name}': no NumPy reference for {kind}")
        self.velocity = [np.zeros_like(p) for p in self.params]

    def _add(self, kind, w, b, **extra):
        self.steps.append((kind, len(self.params), extra))
        self.params += [w, b]

    def forward(self, x, label=None):
        """Forward; keeps what backward needs. Returns the loss (or the scores without label)."""
        self.saved = []
        for kind, pi, extra in self.steps:
            if kind == "Convolution":
                w, b = self.params[pi], self.params[pi + 1]
                k = extra["k"]
                win = sliding_window_view(x, (k, k), axis=(2, 3))    # N, C, Ho, Wo, k, k
                n, ho, wo = x.shape[0], win.shape[2], win.shape[3]
                col = np.ascontiguousarray(win.transpose(1, 4, 5, 0, 2, 3)).reshape(
                    w.shape[1], -1)
                self.saved.append((x.shape, col))
                y = (w @ col).reshape(w.shape[0], n, ho, wo).transpose(1, 0, 2, 3)
                x = np.ascontiguousarray(y) + b[:, None, None]
            elif kind == "Pooling":
                k = extra["k"]
                n, c, h, wd = x.shape
                blocks = x.reshape(n, c, h // k, k, wd // k, k)
                y = blocks.max(axis=(3, 5))
                self.saved.append((x.shape, blocks == y[:, :, :, None, :, None]))
                x = y
            elif kind == "InnerProduct":
                w, b = self.params[pi], self.params[pi + 1]
                self.saved.append(x.shape)
                x2 = x.reshape(x.shape[0], -1)
                self.saved.append(x2)
                x = x2 @ w.T + b
            elif kind == "ReLU":
                self.saved.append(x > 0)
                x = np.maximum(x, 0)
            else:
                if label is None:
                    return x
                e = np.exp(x - x.max(axis=1, keepdims=True))
                prob = e / e.sum(axis=1, keepdims=True)
                self.saved.append((prob, label))
                return float(-np.log(prob[np.arange(len(label)), label] + 1e-30).mean())
        return x

    def backward(self):
        """Gradients of every param (a list like self.params)."""
        grads = [None] * len(self.params)
        saved = list(self.saved)
        dy = None
        for kind, pi, extra in reversed(self.steps):
            if kind == "Loss":
                prob, label = saved.pop()
                dy = prob.copy()
                dy[np.arange(len(label)), label] -= 1
                dy /= len(label)
            elif kind == "ReLU":
                dy = dy * saved.pop()
            elif kind == "InnerProduct":
                x2 = saved.pop()
                shape = saved.pop()
                w = self.params[pi]
                grads[pi], grads[pi + 1] = dy.T @ x2, dy.sum(axis=0)
                dy = (dy @ w).reshape(shape)
            elif kind == "Pooling":
                shape, mask = saved.pop()
                dy = (mask * dy[:, :, :, None, :, None]).reshape(shape)
            else:
                shape, col = saved.pop()
                w = self.params[pi]
                n, c, h, wd = shape
                k = extra["k"]
                dcols = dy.transpose(1, 0, 2, 3).reshape(w.shape[0], -1)
                grads[pi], grads[pi + 1] = dcols @ col.T, dcols.sum(axis=1)
                if pi == 0:
                    break
                dcol = (w.T @ dcols).reshape(c, k, k, n, h - k + 1, wd - k + 1)
                dx = np.zeros(shape, np.float32)
                for i in range(k):
                    for j in range(k):
                        dx[:, :, i:i + h - k + 1, j:j + wd - k + 1] += \
                            dcol[:, i, j].transpose(1, 0, 2, 3)
                dy = dx
        return grads

    def sgd_step(self, x, label, lr=0.01, momentum=0.9, decay=5e-4):
        """One training iteration: forward, backward, momentum SGD with weight decay."""
        loss = self.forward(x, label)
        for p, v, g in zip(self.params, self.velocity, self.backward()):
            v *= momentum
            v += lr * (g + decay * p)
            p -= v
        return loss
