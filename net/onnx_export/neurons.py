"""The elementwise layers: ReLU (leaky), PReLU, ELU, Sigmoid, TanH, AbsVal, BNLL, Power,
Exp, Log, Threshold, Clip, Swish and Dropout, each with Caffe's formula and special cases."""
import math

from onnx import TensorProto, helper

from ...proto import cyffe_pb2 as pb
from .graph import maps

SIMPLE = {"Sigmoid": "Sigmoid", "TanH": "Tanh", "AbsVal": "Abs", "BNLL": "Softplus"}


@maps(*SIMPLE)
def simple(g, layer, bottoms, tops):
    g.node(SIMPLE[layer.type], bottoms, tops[0])


@maps("ReLU")
def relu(g, layer, bottoms, tops):
    slope = layer.param.relu_param.negative_slope
    if slope:
        g.node("LeakyRelu", bottoms, tops[0], alpha=slope)
    else:
        g.node("Relu", bottoms, tops[0])


@maps("PReLU")
def prelu(g, layer, bottoms, tops):
    slopes = layer.blobs[0].data
    ndim = len(g.bottom_shapes[0])
    # Channel axis 1: the slopes broadcast over the axes after it.
    shape = (1,) if slopes.size == 1 and slopes.ndim == 0 else (-1,) + (1,) * (ndim - 2)
    g.node("PRelu", [bottoms[0], g.weight("slope", slopes.reshape(shape))], tops[0])


@maps("ELU")
def elu(g, layer, bottoms, tops):
    g.node("Elu", bottoms, tops[0], alpha=layer.param.elu_param.alpha)


@maps("Dropout")
def dropout(g, layer, bottoms, tops):
    if layer.phase != pb.TEST:
        raise g.unsupported("in TRAIN it drops at random; export the net in phase TEST, "
                            "where it passes its input through")
    g.node("Identity", bottoms, tops[0])


def constant_like(g, x, value, output):
    """A tensor of x's shape full of value."""
    shape = g.node("Shape", [x], what="shape")
    g.node("ConstantOfShape", [shape], output,
           value=helper.make_tensor("value", TensorProto.FLOAT, [1], [value]))


def chain(g, x, steps, output):
    """x through steps, each (op, name, constant or None: unary) or None (left out), the
    last one writing output; an Identity when every step is left out."""
    steps = [step for step in steps if step is not None]
    if not steps:
        return g.node("Identity", [x], output)
    for k, (op, what, value) in enumerate(steps):
        inputs = [x] if value is None else [x, g.scalar(what, value)]
        x = g.node(op, inputs, output if k == len(steps) - 1 else None, what)
    return x


def multiply(factor, what="scale"):
    """The step x * factor, left out for 1."""
    return ("Mul", what, factor) if factor != 1 else None


def add(term, what="shift"):
    """The step x + term, left out for 0."""
    return ("Add", what, term) if term != 0 else None


@maps("Power")
def power(g, layer, bottoms, tops):
    p = layer.param.power_param
    if p.power * p.scale == 0:
        # Caffe: the output ignores the input (1 for power 0, else shift ^ power).
        constant_like(g, bottoms[0], 1.0 if p.power == 0 else p.shift ** p.power, tops[0])
        return
    chain(g, bottoms[0], [multiply(p.scale), add(p.shift),
                          ("Pow", "power", p.power) if p.power != 1 else None], tops[0])


@maps("Exp")
def exp(g, layer, bottoms, tops):
    p = layer.param.exp_param
    log_base = 1.0 if p.base == -1 else math.log(p.base)
    # Caffe: outer * exp(inner * x), inner = ln(base) * scale, outer = base ^ shift.
    chain(g, bottoms[0], [multiply(log_base * p.scale, "inner"), ("Exp", "exp", None),
                          multiply(math.exp(log_base * p.shift), "outer")], tops[0])


@maps("Log")
def log(g, layer, bottoms, tops):
    p = layer.param.log_param
    to_base = 1.0 if p.base == -1 else 1 / math.log(p.base)
    chain(g, bottoms[0], [multiply(p.scale), add(p.shift), ("Log", "log", None),
                          multiply(to_base, "to_base")], tops[0])


@maps("Threshold")
def threshold(g, layer, bottoms, tops):
    above = g.node("Greater", [bottoms[0], g.scalar("threshold",
                                                    layer.param.threshold_param.threshold)])
    g.node("Cast", [above], tops[0], to=TensorProto.FLOAT)


@maps("Clip")
def clip(g, layer, bottoms, tops):
    p = layer.param.clip_param
    g.node("Clip", [bottoms[0], g.scalar("min", p.min), g.scalar("max", p.max)], tops[0])


@maps("Swish")
def swish(g, layer, bottoms, tops):
    x = bottoms[0]
    beta = layer.param.swish_param.beta
    gate = chain(g, x, [multiply(beta, "beta"), ("Sigmoid", "gate", None)], None)
    g.node("Mul", [x, gate], tops[0])

