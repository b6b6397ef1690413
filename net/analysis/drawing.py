"""Drawing a net as a graph, as pycaffe's caffe.draw: DOT text, or PNG/SVG via Graphviz.

Layers are boxes (name, type and the parameters that shape their output),
blobs are ellipses (name and shape, when the net builds). An in-place layer
makes a new version of its blob, drawn as its own ellipse, so the graph stays
acyclic. The DOT text is ours; only PNG/SVG need Graphviz's `dot` program.
"""
import os
import shutil
import subprocess

from ...proto import cyffe_pb2 as pb
from ...proto.atomic import write_bytes
from ...proto.errors import CyffeError, NetError
from ...proto.io import read_net
from ...proto.upgrade import upgrade_net
from ..graph import Net, layer_included

FORMATS = ("dot", "png", "svg")
LAYER_COLORS = {"Convolution": "#FF5050", "Deconvolution": "#FF5050", "Pooling": "#FF9900",
                "InnerProduct": "#CC33FF"}
LAYER_COLOR = "#6495ED"
BLOB_COLOR = "#E0E0E0"


def _quote(text):
    return '"' + _escape(text) + '"'


def _escape(text):
    return str(text).replace("\\", "\\\\").replace('"', '\\"')


def _label(*lines):
    """A DOT label of several lines: each escaped, joined by DOT's line break."""
    return '"' + "\\n".join(_escape(line) for line in lines) + '"'


def _spatial(values, default):
    values = list(values)
    return "x".join(str(v) for v in values) if values else str(default)


def layer_details(lp):
    """The parameters worth a line in a layer's box (Caffe's draw_net shows the same kind)."""
    if lp.type in ("Convolution", "Deconvolution"):
        c = lp.convolution_param
        kernel = _spatial(c.kernel_size, "") if c.kernel_size else f"{c.kernel_h}x{c.kernel_w}"
        stride = _spatial(c.stride, 1) if not c.stride_h else f"{c.stride_h}x{c.stride_w}"
        pad = _spatial(c.pad, 0) if not c.pad_h else f"{c.pad_h}x{c.pad_w}"
        lines = [f"num_output: {c.num_output}", f"kernel: {kernel} stride: {stride} pad: {pad}"]
        if c.group > 1:
            lines.append(f"group: {c.group}")
        return lines
    if lp.type == "Pooling":
        p = lp.pooling_param
        method = pb.PoolingParameter.PoolMethod.Name(p.pool)
        if p.global_pooling:
            return [f"{method} global"]
        kernel = str(p.kernel_size) if p.kernel_size else f"{p.kernel_h}x{p.kernel_w}"
        stride = str(p.stride) if not p.stride_h else f"{p.stride_h}x{p.stride_w}"
        pad = str(p.pad) if not p.pad_h else f"{p.pad_h}x{p.pad_w}"
        return [f"{method} kernel: {kernel} stride: {stride} pad: {pad}"]
    if lp.type == "InnerProduct":
        return [f"num_output: {lp.inner_product_param.num_output}"]
    if lp.type == "Dropout":
        return [f"ratio: {lp.dropout_param.dropout_ratio:g}"]
    if lp.type == "LRN":
        return [f"local_size: {lp.lrn_param.local_size}"]
    return []


def blob_shapes(model, phase=pb.TRAIN):
    """{blob name: shape} of the net built in `phase`; raises CyffeError if it does not build."""
    net = Net(model, phase)
    return {name: blob.shape for name, blob in net.blobs.items() if "_split_" not in name}


def to_dot(model, phase=pb.TRAIN, rankdir="LR", shapes=None):
    """The net's graph in Graphviz's DOT language (a string).

    model: a prototxt path or string or a NetParameter; the layers of `phase`
    are drawn. shapes: {blob name: shape} to print in the blob ellipses
    (blob_shapes gives them), or None.
    """
    if rankdir not in ("LR", "RL", "TB", "BT"):
        raise NetError(f"rankdir must be one of LR, RL, TB, BT, got {rankdir!r}")
    param, source = read_net(model)
    param = upgrade_net(param, source or "<net>")
    state = pb.NetState(phase=phase)
    lines = [f"digraph {_quote(param.name or 'net')} {{", f"  rankdir={rankdir};",
             '  node [fontname="Helvetica", fontsize=10];']
    versions = {}                                    # blob name -> how many writes so far
    declared = set()

    def blob_node(name, version):
        node = f"blob {name}" + (f" ({version + 1})" if version else "")
        if node in declared:
            return node
        declared.add(node)
        shape = (shapes or {}).get(name)
        extra = [] if shape is None else ["x".join(map(str, shape)) or "scalar"]
        label = _label(name, *extra)
        lines.append(f"  {_quote(node)} [shape=ellipse, style=filled, fillcolor="
                     f"{_quote(BLOB_COLOR)}, label={label}];")
        return node

    for i, lp in enumerate(l for l in param.layer if layer_included(l, state)):
        node = f"layer {i} {lp.name}"
        label = _label(lp.name, f"({lp.type})", *layer_details(lp))
        color = LAYER_COLORS.get(lp.type, LAYER_COLOR)
        lines.append(f"  {_quote(node)} [shape=box, style=filled, fillcolor={_quote(color)}, "
                     f"label={label}];")
        for b in lp.bottom:
            version = versions.get(b, 1) - 1
            lines.append(f"  {_quote(blob_node(b, version))} -> {_quote(node)};")
        for t in lp.top:
            versions[t] = versions.get(t, 0) + 1
            lines.append(f"  {_quote(node)} -> {_quote(blob_node(t, versions[t] - 1))};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw_net_to_file(model, path, phase=pb.TRAIN, rankdir="LR", shapes=None):
    """Write the graph to path, as DOT, PNG or SVG by its extension, atomically.

    PNG and SVG are rendered by Graphviz's `dot` program, which must be on PATH.
    """
    fmt = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
    if fmt not in FORMATS:
        raise NetError(f"{path}: unknown output format {fmt or '(no extension)'!r}; "
                       f"use one of {', '.join('.' + f for f in FORMATS)}")
    dot = to_dot(model, phase, rankdir, shapes).encode("utf-8")
    if fmt != "dot":
        program = shutil.which("dot")
        if program is None:
            raise CyffeError(f"{path}: drawing .{fmt} needs Graphviz's 'dot' program, which is "
                             "not on PATH; install Graphviz (apt-get install graphviz) or write "
                             ".dot instead")
        done = subprocess.run([program, f"-T{fmt}"], input=dot, capture_output=True)
        if done.returncode != 0:
            message = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise CyffeError(f"{path}: Graphviz's dot failed: {message[0] if message else ''}")
        dot = done.stdout
    write_bytes(path, dot)
