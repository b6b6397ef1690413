"""The benchmark nets in PyTorch, translated layer by layer from their NetParameter.

Only what the benchmark nets use: Convolution, Pooling (Caffe's ceil rounding), InnerProduct,
ReLU, BatchNorm + Scale, Eltwise SUM, Softmax, SoftmaxWithLoss. Weights use PyTorch's own
initialization (the training suite times arithmetic, not learning) until `load_blobs` puts
a Caffe model's in (the inference suite compares outputs).
"""
import torch
from torch import nn

from cyffe.proto import cyffe_pb2 as pb


def _pair(repeated, h, w, default):
    if repeated:
        return repeated[0]
    return (h, w) if (h or w) else default


class ChannelScale(nn.Module):
    """Caffe's Scale over channels: y = gamma[c] * x + beta[c]."""

    def __init__(self, channels, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1)) if bias else None

    def forward(self, x):
        y = x * self.weight
        return y + self.bias if self.bias is not None else y


class CaffeNet(nn.Module):
    """A NetParameter run in PyTorch: layers in file order over a dict of named blobs."""

    def __init__(self, param, image_shape):
        super().__init__()
        channels = {"data": image_shape[0]}
        sizes = {"data": image_shape[1]}
        self.steps = []          # (module name, kind, bottoms, top)
        self.mods = nn.ModuleDict()
        self.caffe_names = {}    # module name -> its Caffe layer's name
        for layer in param.layer:
            kind, bottoms, top = layer.type, list(layer.bottom), layer.top[0] if layer.top else None
            if kind == "Input":
                continue
            c = channels.get(bottoms[0]) if bottoms else None
            s = sizes.get(bottoms[0]) if bottoms else None
            module = None
            if kind == "Convolution":
                p = layer.convolution_param
                k = _pair(p.kernel_size, p.kernel_h, p.kernel_w, 1)
                st = _pair(p.stride, p.stride_h, p.stride_w, 1)
                pad = _pair(p.pad, p.pad_h, p.pad_w, 0)
                module = nn.Conv2d(c, p.num_output, k, st, pad, groups=p.group or 1,
                                   bias=p.bias_term)
                c, s = p.num_output, (s + 2 * pad - k) // st + 1
            elif kind == "Pooling":
                p = layer.pooling_param
                if p.global_pooling:
                    module = nn.AdaptiveAvgPool2d(1) if p.pool == pb.PoolingParameter.AVE \
                        else nn.AdaptiveMaxPool2d(1)
                    s = 1
                else:
                    k = _pair([p.kernel_size] if p.kernel_size else [], p.kernel_h, p.kernel_w, 1)
                    st = _pair([p.stride] if p.HasField("stride") else [], p.stride_h,
                               p.stride_w, 1)
                    pad = _pair([p.pad] if p.pad else [], p.pad_h, p.pad_w, 0)
                    cls = nn.MaxPool2d if p.pool == pb.PoolingParameter.MAX else nn.AvgPool2d
                    module = cls(k, st, pad, ceil_mode=True)
                    s = -(-(s + 2 * pad - k) // st) + 1
            elif kind == "InnerProduct":
                module = nn.Sequential(nn.Flatten(), nn.Linear(c * s * s, layer.inner_product_param
                                                               .num_output))
                c, s = layer.inner_product_param.num_output, 1
            elif kind == "ReLU":
                module = nn.ReLU(inplace=True)
            elif kind == "BatchNorm":
                module = nn.BatchNorm2d(c, eps=layer.batch_norm_param.eps, affine=False)
            elif kind == "Scale":
                module = ChannelScale(c, layer.scale_param.bias_term)
            elif kind == "Eltwise":
                if layer.eltwise_param.operation != pb.EltwiseParameter.SUM:
                    raise ValueError(f"layer '{layer.name}': only Eltwise SUM is translated")
            elif kind == "Softmax":
                module = nn.Softmax(dim=layer.softmax_param.axis)
            elif kind == "SoftmaxWithLoss":
                module = nn.CrossEntropyLoss()
            else:
                raise ValueError(f"layer '{layer.name}': no PyTorch translation for {kind}")
            key = f"m{len(self.steps)}"
            if module is not None:
                self.mods[key] = module
                self.caffe_names[key] = layer.name
            self.steps.append((key, kind, bottoms, top))
            channels[top], sizes[top] = c, s
        self.output = self.steps[-1][3]

    @torch.no_grad()
    def load_blobs(self, blobs):
        """Take a Caffe model's learned blobs: {"<layer>.<i>": array}, in Caffe's blob order."""
        for key, name in self.caffe_names.items():
            params = list(self.mods[key].parameters())
            count = sum(1 for i in range(len(params) + 1) if f"{name}.{i}" in blobs)
            if count != len(params):
                raise ValueError(f"layer '{name}': {count} blobs for the twin's "
                                 f"{len(params)} parameters")
            for i, p in enumerate(params):
                p.copy_(torch.from_numpy(blobs[f"{name}.{i}"]).reshape(p.shape))

    def forward(self, data, label=None):
        blobs = {"data": data, "label": label}
        for key, kind, bottoms, top in self.steps:
            if kind == "Eltwise":
                out = blobs[bottoms[0]]
                for b in bottoms[1:]:
                    out = out + blobs[b]
            elif kind == "SoftmaxWithLoss":
                out = self.mods[key](blobs[bottoms[0]], blobs[bottoms[1]])
            else:
                out = self.mods[key](blobs[bottoms[0]])
            blobs[top] = out
        return blobs[self.output]
