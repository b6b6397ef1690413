"""Python: a layer written in Python by the user (Caffe's PythonLayer, as pycaffe has it).

    layer { type: "Python" python_param { module: "pyloss" layer: "EuclideanLossLayer"
                                          param_str: "..." } }

imports `module` (from sys.path, the working directory, or else the folder of
the prototxt) and builds its class `layer`, a subclass of `cyffe.Layer`, the
way pycaffe does: called with the LayerParameter, then given `phase` and
`param_str`. That object is the layer in the net: its setup(bottom, top),
reshape(bottom, top), forward(bottom, top) and backward(top, propagate_down,
bottom) run as they are, on whatever arrays the blobs hold, and what they raise
reaches the caller. As in pycaffe, a class may leave out what its net never
calls (backward in a TEST net); calling it then raises NotImplementedError
naming the layer. Learnable blobs it appends to
`self.blobs` (`self.blobs.add_blob(*shape)`) are params like any other
(lr_mult, solver updates, caffemodels). A Python loss layer weighs its top
only when the prototxt says `loss_weight: 1`, as in Caffe.
"""
import importlib
import os
import sys

import numpy as np

from ..proto import cyffe_pb2 as pb
from ..proto.errors import NetError
from .base import Layer
from .blob import Blob


class BlobList(list):
    """A Python layer's learnable blobs: a list, plus pycaffe's add_blob(*shape)."""

    def __init__(self, dtype, blobs=()):
        super().__init__(blobs)
        self.dtype = dtype

    def add_blob(self, *shape):
        """Append a zero Blob of this shape (pycaffe's spelling; returns nothing)."""
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = shape[0]
        self.append(Blob(tuple(int(d) for d in shape), self.dtype))


def _import_user_module(name, where, base_dir):
    """The module `name`: from sys.path, the working directory (as `python -i`), or base_dir.

    base_dir, the prototxt's folder, comes last, as relative paths in a prototxt
    are read from the working directory first (proto/paths.py).
    """
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        # A console script's sys.path starts at its bin/ folder, not at the
        # working directory, where Caffe's users keep their layer modules.
        sys.path.insert(0, cwd)
    if base_dir and base_dir not in sys.path:
        sys.path.append(base_dir)
    importlib.invalidate_caches()
    try:
        return importlib.import_module(name)
    except Exception as e:
        missing = isinstance(e, ModuleNotFoundError) and (
            e.name == name or name.startswith(f"{e.name}."))
        looked = ""
        if missing:
            folders = [cwd if p == "" else p for p in sys.path]
            beside = f"beside the prototxt ({base_dir}), " if base_dir else ""
            looked = (f"; looked {beside}in the working directory ({cwd}) and on sys.path: "
                      + ", ".join(dict.fromkeys(folders)))
        raise NetError(f"{where}: cannot import python_param.module '{name}': "
                       f"{type(e).__name__}: {e}{looked}") from e


def _user_class(param, where, base_dir):
    """The class python_param names, checked to be a cyffe.Layer."""
    p = param.python_param
    if not p.module or not p.layer:
        raise NetError(f"{where}: needs python_param {{ module: ... layer: ... }}, got "
                       f"module {p.module!r} and layer {p.layer!r}")
    module = _import_user_module(p.module, where, base_dir)
    cls = getattr(module, p.layer, None)
    if cls is None:
        raise NetError(f"{where}: module '{p.module}' ({getattr(module, '__file__', '?')}) "
                       f"has no class '{p.layer}'")
    if not isinstance(cls, type) or not issubclass(cls, Layer):
        raise NetError(f"{where}: '{p.module}.{p.layer}' must be a class that subclasses "
                       f"cyffe.Layer, got {cls!r}")
    return cls


def _not_defined(where, cls, method):
    """A stand-in for a method the user's class leaves out: raises when the net calls it."""
    def missing(*args):
        raise NotImplementedError(f"{where}: class '{cls.__module__}.{cls.__name__}' does not "
                                  f"define {method}, and the net calls it")
    return missing


class PythonLayer(Layer):
    """The registry's "Python": constructing it builds and returns the user's layer object."""

    type = "Python"

    def __new__(cls, param=None, phase=pb.TRAIN, dtype=np.float32, base_dir=None):
        param = param if param is not None else pb.LayerParameter(type=cls.type)
        where = f"layer '{param.name}' (Python)"
        user_class = _user_class(param, where, base_dir)
        layer = user_class(param)
        layer.base_dir = base_dir
        for method in ("reshape", "forward", "backward"):
            if getattr(user_class, method) is getattr(Layer, method):
                setattr(layer, method, _not_defined(where, user_class, method))
        layer.type = cls.type
        layer.reshape_by_shapes = False     # the user's reshape may do anything
        layer.phase = phase
        layer.dtype = np.dtype(dtype)
        layer.param_str = param.python_param.param_str
        layer.blobs = BlobList(layer.dtype, [layer._blob_from_proto(b) for b in param.blobs])
        return layer
