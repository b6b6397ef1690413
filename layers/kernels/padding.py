"""Padding, once for every windowed layer: SAME's pads, filling a padded copy, and folding
a padded copy's gradient back onto the image (array-API code: numpy or cupy arrays).

Fills: "constant" (a value), "reflect" (mirror without the edge pixel: needs every pad
smaller than the axis) and "replicate" (the edge pixel). Images are (N, C, *spatial); pads
are given per spatial axis. Corners come out as np.pad's: axis by axis over the full extent.
"""
import numpy as np


def same_padding(size, kernel, stride, dilation=1):
    """SAME's (pad before, pad after) on one axis: output ceil(size / stride), the odd
    pixel after (TensorFlow's and PyTorch's 'same')."""
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def _along(axis, index):
    """An index tuple that takes `index` on `axis` and everything elsewhere."""
    return (slice(None),) * axis + (index,)


def _interior(shape, pad_before, pad_after):
    return (slice(None), slice(None)) + tuple(
        slice(b, shape[2 + d] - a) for d, (b, a) in enumerate(zip(pad_before, pad_after)))


def pad_into(out, x, pad_before, pad_after, fill, value=0.0):
    """out (N, C, *padded) = x with its padding filled; returns out."""
    out[_interior(out.shape, pad_before, pad_after)] = x
    for d, (before, after) in enumerate(zip(pad_before, pad_after)):
        axis = 2 + d
        end = out.shape[axis] - after
        if fill == "constant":
            out[_along(axis, slice(0, before))] = value
            out[_along(axis, slice(end, None))] = value
        elif fill == "replicate":
            out[_along(axis, slice(0, before))] = out[_along(axis, slice(before, before + 1))]
            out[_along(axis, slice(end, None))] = out[_along(axis, slice(end - 1, end))]
        elif fill == "reflect":
            if before:
                out[_along(axis, slice(0, before))] = \
                    out[_along(axis, slice(2 * before, before, -1))]
            if after:
                stop = end - 2 - after
                out[_along(axis, slice(end, None))] = \
                    out[_along(axis, slice(end - 2, stop if stop >= 0 else None, -1))]
        else:
            raise ValueError(f"unknown padding fill {fill!r}")
    return out


def fold(g, pad_before, pad_after, fill):
    """The adjoint of pad_into: the padding's gradient added onto the pixels it copies.

    g (N, C, *padded) is changed in place; returns the view of its interior.
    """
    for d, (before, after) in enumerate(zip(pad_before, pad_after)):
        axis = 2 + d
        end = g.shape[axis] - after
        if fill == "replicate":
            if before:
                g[_along(axis, slice(before, before + 1))] += \
                    g[_along(axis, slice(0, before))].sum(axis=axis, keepdims=True)
            if after:
                g[_along(axis, slice(end - 1, end))] += \
                    g[_along(axis, slice(end, None))].sum(axis=axis, keepdims=True)
        elif fill == "reflect":
            if before:
                g[_along(axis, slice(2 * before, before, -1))] += \
                    g[_along(axis, slice(0, before))]
            if after:
                stop = end - 2 - after
                g[_along(axis, slice(end - 2, stop if stop >= 0 else None, -1))] += \
                    g[_along(axis, slice(end, None))]
    return g[_interior(g.shape, pad_before, pad_after)]


def source_positions(size, before, after, fill):
    """For each position of an axis padded by (before, after): the image pixel it holds
    (-1: none, a constant)."""
    k = np.arange(-before, size + after)
    if fill == "reflect":
        k = np.abs(k)
        return np.where(k >= size, 2 * (size - 1) - k, k)
    if fill == "replicate":
        return np.clip(k, 0, size - 1)
    return np.where((k >= 0) & (k < size), k, -1)
