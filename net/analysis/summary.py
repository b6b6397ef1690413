"""A Net as a table: each layer's type, top shapes, learnable parameters and memory.

What Caffe logs at net setup ("Top shape: 64 20 24 24 (737280)", "Memory required
for data"), as one table, the way `print(model)` reads for a PyTorch user:

    >>> print(net)                      # or net.summary()
"""
import numpy as np

from ...proto import cyffe_pb2 as pb


def layer_rows(net):
    """(name, type, [(top name, shape)], param count, bytes) per layer, in run order.

    A layer's bytes are its tops' data and its params' data; an in-place top
    (ReLU's, say) is counted with the layer that made it, a shared param with
    the layer that owns it. Diffs, when the net trains, take as much again.
    """
    seen = set()
    rows = []
    for name, layer, tops in zip(net._layer_names, net.layers, net._top):
        size = 0
        for blob in list(tops) + list(layer.blobs):
            if id(blob) not in seen:
                seen.add(id(blob))
                size += blob.count * np.dtype(blob.dtype).itemsize
        params = sum(b.count for b in layer.blobs)
        shapes = [(top, tuple(blob.shape)) for top, blob in zip(layer.param.top, tops)]
        rows.append((name, layer.type, shapes, params, size))
    return rows


def learnable_count(net):
    """The number of learnable values (shared params once)."""
    return sum(b.count for b in net.learnable_params)


def describe(net):
    """One line: the net's name, phase, layers and parameters (Net's repr)."""
    phase = pb.Phase.Name(net.phase)
    return (f"<cyffe.Net '{net.name or net.where}' {phase}: {len(net.layers)} layers, "
            f"{learnable_count(net):,} params>")


def summary(net):
    """The table of layer_rows, with the totals under it."""
    rows = layer_rows(net)
    table = [("layer", "type", "top shapes", "params", "memory")]
    for name, kind, shapes, params, size in rows:
        tops = [f"{top} {'x'.join(map(str, shape)) or 'scalar'}" for top, shape in shapes]
        table.append((name, kind, tops[0] if tops else "", f"{params:,}" if params else "",
                      _bytes(size)))
        table += [("", "", more, "", "") for more in tops[1:]]
    widths = [max(len(row[k]) for row in table) for k in range(5)]
    lines = [f"{net.name or net.where} ({pb.Phase.Name(net.phase)})"]
    for row in table:
        left = "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths))
        right = "  ".join(cell.rjust(w) for cell, w in zip(row[3:], widths[3:]))
        lines.append(f"{left}  {right}".rstrip())
    total = sum(r[4] for r in rows)
    lines.append(f"{len(rows)} layers, {learnable_count(net):,} learnable params, "
                 f"{_bytes(total)} of blobs (data; training doubles it with the diffs)")
    return "\n".join(lines)


def _bytes(size):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""
