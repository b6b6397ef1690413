"""The Layer contract: setup, reshape, forward, backward (Caffe's, in Python clothes).

A layer sees only its bottom and top Blobs, its LayerParameter and the array
backend; the graph (net/) does the wiring. Param diffs accumulate (``+=``);
bottom diffs are written (``=``).
"""
import contextlib

import numpy as np

from ..proto import cyffe_pb2 as pb
from ..proto.errors import NetError, ShapeError
from . import registry
from .backend import array_module, device_side, gpu_mode
from .blob import Blob


class Layer:
    """Base class of every layer; subclasses set `type` and override the hooks."""

    type = None                 # Caffe's type name, the registry key
    bottoms = (0, None)         # how many bottoms: exactly n, or (least, most); most None: any
    tops = (0, None)            # how many tops, the same way
    is_loss = False             # loss layers weigh top 0 by 1 unless told otherwise
    keeps_input = False         # backward reads bottom 0, which running in place overwrites
    # reshape depends on nothing but the shapes and memory of the bottoms and tops: a net
    # skips it while none of them changed. False where it reads values (Filter), must run
    # every time (data layers) or is the user's (Python layers).
    reshape_by_shapes = True
    # Set by the net on the layers whose backward it will never run: what forward keeps only
    # for backward then lives in scratch (kernels/arena) or is not made at all.
    forward_only = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("type"):
            registry.register(cls)

    def __init__(self, param=None, phase=pb.TRAIN, dtype=np.float32, base_dir=None):
        self.param = param if param is not None else pb.LayerParameter(type=self.type)
        self.phase = phase
        self.base_dir = base_dir        # the prototxt's folder: relative paths, Python modules
        self.dtype = np.dtype(dtype)
        self.blobs = [self._blob_from_proto(b) for b in self.param.blobs]

    @property
    def name(self):
        return self.param.name

    def _blob_from_proto(self, proto):
        from ..proto.io import blobproto_to_array
        values = blobproto_to_array(proto)
        blob = Blob(values.shape, self.dtype)
        blob.data[...] = values
        return blob

    # -- the contract ---------------------------------------------------------

    def setup(self, bottom, top):
        """Read the parameter message, create self.blobs, check bottoms."""

    def reshape(self, bottom, top):
        """Shape the tops from the bottoms."""
        raise NotImplementedError(f"{type(self).__name__}.reshape")

    def reshape_side(self, bottom, top):
        """The context the net reshapes this layer in: its forward's side, blobs only read.

        In GPU mode, scratch buffers a reshape allocates then live where forward
        uses them, and looking at a blob there costs no copy. A layer that
        overrides forward itself (a Python layer) runs on the host.
        """
        if not gpu_mode():
            return contextlib.nullcontext()
        on_device = bool(bottom) and type(self).forward is Layer.forward
        blobs = list(bottom) + list(top)
        return device_side(on_device, [b._data for b in blobs] + [b._diff for b in blobs])

    def forward(self, bottom, top):
        """Compute the tops: forward_cpu, or in GPU mode forward_gpu on the blobs' device copies.

        A layer without bottoms is a data source: it fills its tops on the host
        (prefetching there), and the first layer to read them copies the batch
        to the device once, through the blobs' lazy sync (Caffe's data layers).
        """
        if not gpu_mode():
            return self.forward_cpu(bottom, top)
        reads = [b._data for b in bottom]         # params may change (BatchNorm's statistics)
        with device_side(bool(bottom), _only(reads, [t._data for t in top])):
            return (self.forward_gpu if bottom else self.forward_cpu)(bottom, top)

    def backward(self, top, propagate_down, bottom):
        """Write bottom diffs where propagate_down says so; accumulate param diffs."""
        if not gpu_mode():
            return self.backward_cpu(top, propagate_down, bottom)
        reads = [t._data for t in top] + [t._diff for t in top] + [b._data for b in bottom]
        writes = [b._diff for b in bottom] + [p._diff for p in self.blobs]
        with device_side(bool(bottom), _only(reads, writes)):
            return (self.backward_gpu if bottom else self.backward_cpu)(top, propagate_down,
                                                                        bottom)

    def forward_cpu(self, bottom, top):
        raise NotImplementedError(f"layer type {self.type} has no CPU forward")

    def step(self, bottom, top):
        """This layer's CPU forward compiled for the blobs' current shapes and memory: a
        kernels.step.Step that a settled TEST net runs instead of forward (see
        kernels/step.pyx), or None to be run through forward."""
        return None

    def backward_cpu(self, top, propagate_down, bottom):
        raise NotImplementedError(f"layer type {self.type} has no CPU backward")

    def forward_gpu(self, bottom, top):
        """Without a GPU path: the CPU one on the host copies (Caffe's fallback)."""
        with device_side(False):
            return self.forward_cpu(bottom, top)

    def backward_gpu(self, top, propagate_down, bottom):
        """Without a GPU path: the CPU one on the host copies (Caffe's fallback)."""
        with device_side(False):
            return self.backward_cpu(top, propagate_down, bottom)

    # -- helpers for subclasses ------------------------------------------------

    def check_blob_counts(self, bottom, top):
        """A NetError unless the bottom and top counts suit this layer type."""
        for what, blobs, allowed in (("bottom", bottom, self.bottoms), ("top", top, self.tops)):
            low, high = (allowed, allowed) if isinstance(allowed, int) else allowed
            n = len(blobs)
            if n < low or high is not None and n > high:
                bound = (low if low == high else f"{low} to {high}" if high is not None
                         else f"at least {low}")
                raise NetError(f"layer '{self.name}' ({self.type}) takes {bound} {what} "
                               f"blob(s), got {n}")

    def shape_error(self, text):
        """A ShapeError whose message names this layer."""
        return ShapeError(f"layer '{self.name}' ({self.type}): {text}")

    def allow_backward(self, bottom_index):
        """Whether gradients may flow to bottom i (labels, for instance, take none)."""
        return True

    def new_blob(self, shape):
        """A parameter blob of this layer's dtype."""
        return Blob(shape, self.dtype)

    def keep_input(self, bottom, top):
        """If keeps_input and in place, copy bottom 0 aside before forward overwrites it
        (Caffe's bottom_memory_), unless forward_only: no backward will read it."""
        if self.keeps_input and top[0] is bottom[0] and not self.forward_only:
            x = bottom[0].data
            self._kept_input = scratch_like(getattr(self, "_kept_input", None), x)
            self._kept_input[...] = x

    def input_data(self, bottom, top):
        """Bottom 0's data as forward saw it, if keeps_input; else as it is now (in place,
        the output)."""
        return self._kept_input if self.keeps_input and top[0] is bottom[0] else bottom[0].data


class NeuronLayer(Layer):
    """One bottom, one top of the same shape, computed elementwise; may run in place.

    A subclass gives its rule twice, as hooks the four passes call. For the CPU:
    forward_kernel(x, y) and backward_kernel(x, y, dy, dx), its Cython kernels
    writing y or dx, on the arrays as `view` shows them (flat). For the GPU:
    forward_array(xp, x) and backward_array(xp, x, y, dy), array-API
    expressions that return y and dx. In backward, x is input_data: the input
    forward saw when `keeps_input`, otherwise the bottom's data (in place, the output).
    """

    bottoms = tops = 1

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def view(self, array):
        """An array as the kernels take it: flat."""
        return array.reshape(-1)

    def forward_cpu(self, bottom, top):
        self.keep_input(bottom, top)
        self.forward_kernel(self.view(bottom[0].data), self.view(top[0].data))

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            self.backward_kernel(self.view(self.input_data(bottom, top)), self.view(top[0].data),
                                 self.view(top[0].diff), self.view(bottom[0].diff))

    def forward_gpu(self, bottom, top):
        self.keep_input(bottom, top)
        x = bottom[0].data
        top[0].data[...] = self.forward_array(array_module(x), x)

    def backward_gpu(self, top, propagate_down, bottom):
        if propagate_down[0]:
            x, dy = self.input_data(bottom, top), top[0].diff
            bottom[0].diff[...] = self.backward_array(array_module(dy), x, top[0].data, dy)


class ViewLayer(Layer):
    """One bottom, one top that is a reshaped view of it (Flatten, Reshape).

    Data and diff share memory, so neither pass copies anything, unless someone
    rebound the top's arrays to ones of their own. Subclasses give top_shape.
    """

    bottoms = tops = 1

    def setup(self, bottom, top):
        if top[0] is bottom[0]:
            raise NetError(f"layer '{self.name}' ({self.type}) cannot run in place "
                           "(its top is its bottom)")

    def top_shape(self, shape):
        raise NotImplementedError

    def reshape(self, bottom, top):
        b, t = bottom[0], top[0]
        t.reshape(self.top_shape(b.shape))
        # Shared every time: the bottom may have new memory.
        t.share_data(b)
        t.share_diff(b)

    def forward_cpu(self, bottom, top):
        if not top[0].shares_data_with(bottom[0]):
            top[0].data[...] = bottom[0].data.reshape(top[0].shape)

    forward_gpu = forward_cpu

    def backward_cpu(self, top, propagate_down, bottom):
        if propagate_down[0] and not top[0].shares_diff_with(bottom[0]):
            bottom[0].diff[...] = top[0].diff.reshape(bottom[0].shape)

    backward_gpu = backward_cpu


def scratch_like(buffer, x):
    """buffer if it has x's shape and array type, else a new uninitialized array like x.

    For buffers a layer keeps from pass to pass, allocated again only when the
    shape or the device changes.
    """
    if buffer is None or buffer.shape != x.shape or type(buffer) is not type(x):
        return array_module(x).empty_like(x)
    return buffer


def _only(reads, writes):
    """The arrays a pass reads and does not write (in place, a bottom is also written)."""
    written = set(map(id, writes))
    return [a for a in reads if id(a) not in written]


def canonical_axis(axis, num_axes, layer=None):
    """Caffe's CanonicalAxisIndex: allow negative axes, reject out-of-range ones."""
    if not -num_axes <= axis < num_axes:
        who = f"layer '{layer.name}': " if layer is not None else ""
        raise ShapeError(f"{who}axis {axis} is out of range for a {num_axes}-D blob")
    return axis % num_axes


def split_shape(shape, axis):
    """(outer, channels, inner) of a blob shape around axis."""
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    return outer, shape[axis], inner


def param_blob_shape(layer, shape, axis, num_axes):
    """The learnable blob's shape: shape[axis:axis + num_axes] (num_axes -1: to the end)."""
    if num_axes < -1:
        raise NetError(f"layer '{layer.name}' ({layer.type}): num_axes must be -1 or "
                       f"non-negative, got {num_axes}")
    axis = canonical_axis(axis, len(shape), layer)
    if num_axes == -1:
        return tuple(shape[axis:])
    if axis + num_axes > len(shape):
        raise layer.shape_error(f"axis {axis} + num_axes {num_axes} exceeds the "
                                f"{len(shape)} axes of the bottom {shape}")
    return tuple(shape[axis:axis + num_axes])


def channel_split(layer, shape, parts=1, what=""):
    """(num, channels, spatial) of an (N, C, ...) bottom shape whose C splits evenly by parts.

    what names the parts in the error (as "num_groups 4").
    """
    if len(shape) < 2:
        raise layer.shape_error(f"bottom must have at least 2 axes (num, channels, ...), "
                                f"got shape {shape}")
    num, channels = shape[0], shape[1]
    if channels % parts:
        raise NetError(f"layer '{layer.name}' ({layer.type}): {channels} channels do not split "
                       f"into {what} (bottom shape {shape})")
    return num, channels, int(np.prod(shape[2:], dtype=np.int64))


def broadcast_dims(layer, shape, operand_shape, axis):
    """(outer, dim, inner) of `shape` for an operand of `operand_shape` placed at `axis`."""
    axis = 0 if len(operand_shape) == 0 else canonical_axis(axis, len(shape), layer)
    end = axis + len(operand_shape)
    if end > len(shape) or tuple(shape[axis:end]) != tuple(operand_shape):
        raise layer.shape_error(f"operand of shape {tuple(operand_shape)} does not match "
                                f"the bottom {tuple(shape)} from axis {axis} on")
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    dim = int(np.prod(operand_shape, dtype=np.int64))
    inner = int(np.prod(shape[end:], dtype=np.int64))
    return outer, dim, inner


def steppable(*arrays):
    """Whether arrays are what the layers' steps take (kernels/step.pyx): float32, C-ordered,
    not empty."""
    return all(a.dtype == np.float32 and a.flags.c_contiguous and a.size for a in arrays)
