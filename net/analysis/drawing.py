"""Drawing a net as a graph: DOT text, or PNG/SVG via Graphviz (pycaffe's caffe.draw is this).

Layers are boxes (name, type and the parameters that shape their output),
blobs are ellipses (name and shape, when the net builds). An in-place layer
makes a new version of its blob, drawn as its own ellipse, so the graph stays
acyclic. The DOT text is ours; only PNG/SVG need Graphviz's `dot` program.
`cyffe.draw` (net/pycaffe/draw.py) gives these functions pycaffe's names.
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
LEARNING_LAYERS = ("Convolution", "Deconvolution", "InnerProduct")
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


def layer_details(lp, display_lrm=False):
    """The parameters worth a line in a layer's box (Caffe's draw_net shows the same kind).

    display_lrm adds the learning rate multipliers of Convolution, Deconvolution and
    InnerProduct (pycaffe's draw_net --display_lrm).
    """
    lines = _shape_details(lp)
    if display_lrm and lp.type in LEARNING_LAYERS:
        mults = [spec.lr_mult for spec in lp.param] or [1.0, 1.0]
        lines.append("lr mult: " + ", ".join(f"{m:g}" for m in mults))
    return lines


def edge_label(lp):
    """What pycaffe writes on the edges out of a layer: the batch of Data, the outputs of
    Convolution, Deconvolution and InnerProduct; None for others."""
    if lp.type == "Data":
        return f"Batch {lp.data_param.batch_size}"
    if lp.type in ("Convolution", "Deconvolution"):
        return str(lp.convolution_param.num_output)
    if lp.type == "InnerProduct":
        return str(lp.inner_product_param.num_output)
    return None


def _shape_details(lp):
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


def to_dot(model, phase=pb.TRAIN, rankdir="LR", shapes=None, display_lrm=False,
           label_edges=False):
    """The net's graph in Graphviz's DOT language (a string).

    model: a prototxt path or string or a NetParameter; the layers of `phase`
    are drawn (None: every layer, whatever its rules, as pycaffe's phase=None).
    shapes: {blob name: shape} to print in the blob ellipses (blob_shapes gives
    them), or None. display_lrm and label_edges add pycaffe's learning rate
    multipliers (layer_details) and edge labels (edge_label).
    """
    if rankdir not in ("LR", "RL", "TB", "BT"):
        raise NetError(f"rankdir must be one of LR, RL, TB, BT, got {rankdir!r}")
    param, source = read_net(model)
    param = upgrade_net(param, source or "<net>")
    state = pb.NetState(phase=phase) if phase is not None else None
    lines = [f"digraph {_quote(param.name or 'net')} {{", f"  rankdir={rankdir};",
             '  node [fontname="Helvetica", fontsize=10];']
    versions = {}                                    # blob name -> in-place writes so far
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

    drawn = (l for l in param.layer if state is None or layer_included(l, state))
    for i, lp in enumerate(drawn):
        node = f"layer {i} {lp.name}"
        label = _label(lp.name, f"({lp.type})", *layer_details(lp, display_lrm))
        color = LAYER_COLORS.get(lp.type, LAYER_COLOR)
        lines.append(f"  {_quote(node)} [shape=box, style=filled, fillcolor={_quote(color)}, "
                     f"label={label}];")
        for b in lp.bottom:
            lines.append(f"  {_quote(blob_node(b, versions.get(b, 0)))} -> {_quote(node)};")
        out_label = edge_label(lp) if label_edges else None
        attributes = f" [label={_quote(out_label)}]" if out_label is not None else ""
        for t in lp.top:
            # Only an in-place write makes a new version; layers of different phases
            # that write one name (TRAIN and TEST data) share its ellipse.
            if t in lp.bottom:
                versions[t] = versions.get(t, 0) + 1
            lines.append(f"  {_quote(node)} -> {_quote(blob_node(t, versions.get(t, 0)))}"
                         f"{attributes};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(dot, fmt, where="draw_net"):
    """DOT text as the bytes of a `fmt` file: the text itself for dot, else Graphviz's output.

    Any format Graphviz's `dot` program knows (png, svg, pdf, ...) needs it on PATH.
    """
    data = dot.encode("utf-8")
    if fmt in ("dot", "gv"):
        return data
    program = shutil.which("dot")
    if program is None:
        raise CyffeError(f"{where}: drawing .{fmt} needs Graphviz's 'dot' program, which is "
                         "not on PATH; install Graphviz (apt-get install graphviz) or write "
                         ".dot instead")
    done = subprocess.run([program, f"-T{fmt}"], input=data, capture_output=True)
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise CyffeError(f"{where}: Graphviz's dot failed: {message[0] if message else ''}")
    return done.stdout


def draw_net_to_file(model, path, rankdir="LR", phase=None, display_lrm=False, shapes=None):
    """Write the graph to path, as DOT, PNG or SVG by its extension, atomically.

    pycaffe's signature (phase None draws every layer); shapes as in to_dot.
    PNG and SVG are rendered by Graphviz's `dot` program, which must be on PATH.
    """
    fmt = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
    if fmt not in FORMATS:
        raise NetError(f"{path}: unknown output format {fmt or '(no extension)'!r}; "
                       f"use one of {', '.join('.' + f for f in FORMATS)}")
    dot = to_dot(model, phase, rankdir, shapes, display_lrm)
    write_bytes(path, render(dot, fmt, path))
