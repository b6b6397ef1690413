"""cyffe.draw: pycaffe's caffe.draw, by its names, over cyffe's drawing (net/analysis/drawing.py).

    import cyffe.draw
    cyffe.draw.draw_net_to_file(net_param, "net.png", "LR", phase=None)   # every layer
    png = cyffe.draw.draw_net(net_param, "LR")                            # the bytes
    graph = cyffe.draw.get_pydot_graph(net_param, "TB")           # .to_string(), .write_svg(.)

The graph is cyffe's (blobs drawn once per in-place version); Graphviz's `dot`
program renders every format but DOT, as pydot needs it to. get_pydot_graph
gives a DotGraph, which has the pydot methods scripts call on it, without pydot.
"""
import os

from ...proto import cyffe_pb2 as pb
from ...proto.atomic import write_bytes
from ..analysis.drawing import (LAYER_COLOR, LAYER_COLORS, _label, edge_label, layer_details,
                                render, to_dot)

__all__ = ["get_pooling_types_dict", "get_edge_label", "get_layer_label",
           "choose_color_by_layertype", "get_pydot_graph", "draw_net", "draw_net_to_file"]


def get_pooling_types_dict():
    """{pooling method number: its name}, as pycaffe's."""
    return {value.number: value.name
            for value in pb.PoolingParameter.PoolMethod.DESCRIPTOR.values}


def get_edge_label(layer):
    """The label of the edges out of a layer (a LayerParameter), '""' for none."""
    label = edge_label(layer)
    return '""' if label is None else label


def get_layer_label(layer, rankdir, display_lrm=False):
    """The DOT label of a layer's box: its name, type and shaping parameters."""
    return _label(layer.name, f"({layer.type})", *layer_details(layer, display_lrm))


def choose_color_by_layertype(layertype):
    """The fill color of a layer's box, by its type."""
    return LAYER_COLORS.get(layertype, LAYER_COLOR)


class DotGraph:
    """A drawn net: its DOT text, rendered on demand (what pydot.Dot gives pycaffe's callers).

    create(format="png") and create_<format>() return the bytes; write(path,
    format="raw") and write_<format>(path) write them ("raw" and "dot": the text).
    """

    def __init__(self, dot):
        self.dot = dot

    def to_string(self):
        return self.dot

    def create(self, prog="dot", format="png"):
        return render(self.dot, "dot" if format == "raw" else format, "get_pydot_graph")

    def write(self, path, prog="dot", format="raw"):
        with open(path, "wb") as f:
            f.write(self.create(prog, format))
        return True

    def __getattr__(self, name):
        kind, _, fmt = name.partition("_")
        if kind == "create" and fmt:
            return lambda prog="dot": self.create(prog, fmt)
        if kind == "write" and fmt:
            return lambda path, prog="dot": self.write(path, prog, fmt)
        raise AttributeError(f"DotGraph has no attribute {name!r}")

    def __str__(self):
        return self.dot


def get_pydot_graph(caffe_net, rankdir, label_edges=True, phase=None, display_lrm=False):
    """The net (a NetParameter, prototxt path or text) as a DotGraph; phase None: every layer."""
    return DotGraph(to_dot(caffe_net, phase, rankdir, display_lrm=display_lrm,
                           label_edges=label_edges))


def draw_net(caffe_net, rankdir, ext="png", phase=None, display_lrm=False):
    """The drawing of the net as the bytes of an `ext` file (png needs Graphviz's dot)."""
    return get_pydot_graph(caffe_net, rankdir, phase=phase, display_lrm=display_lrm).create(
        format=ext)


def draw_net_to_file(caffe_net, filename, rankdir="LR", phase=None, display_lrm=False):
    """Write the drawing in the format of filename's extension (any Graphviz knows; .dot is
    the DOT text), atomically; phase None draws every layer, as pycaffe's."""
    ext = os.path.splitext(os.fspath(filename))[1].lstrip(".") or "png"
    write_bytes(filename, draw_net(caffe_net, rankdir, ext, phase, display_lrm))
