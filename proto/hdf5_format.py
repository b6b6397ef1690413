"""Caffe's HDF5 files: weights (.caffemodel.h5) and solver state (.solverstate.h5).

The layouts are Caffe's (Net::ToHDF5, SGDSolver::SnapshotSolverStateToHDF5):

    weights     /data/<layer name>/<blob index>   one group per layer, even without blobs;
                /diff/<layer name>/<blob index>   only when the diffs are written too
    state       /iter (int, shape (1,)), /learned_net (string), /current_step (int),
                /history/<i>                      one dataset per history blob

Files are written to a temporary file beside the target and renamed, so a
reader never sees half a file. Anything h5py cannot read becomes one DataError
naming the file; every dataset's kind, type and size are checked before it is read.
"""
import contextlib
import io
import os

import numpy as np

from .atomic import write_bytes
from .errors import DataError
from .io import check_shape


@contextlib.contextmanager
def _atomic_h5(path):
    """An h5py File made in memory, written to path atomically (write_bytes) on success.

    HDF5 never writes to the disk itself: a full disk fails in Python's write, as a
    DataError naming path with nothing left behind, not inside HDF5's close (an abort).
    """
    import h5py
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        yield f
    write_bytes(path, buffer.getbuffer())


@contextlib.contextmanager
def _reading(path, kind):
    """Open path with h5py; any failure to read or a missing dataset is a DataError."""
    import h5py
    try:
        with h5py.File(os.fspath(path), "r") as f:
            yield f
    except FileNotFoundError:
        raise DataError(f"{path}: {kind} file not found") from None
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path}: not a readable HDF5 {kind} file: {e}") from None


def read_array(node, where):
    """The numbers of an HDF5 dataset, checked before reading: a dataset (not a group or a
    dangling link), of a numeric type, of at most INT_MAX elements. where names it."""
    import h5py
    if not isinstance(node, h5py.Dataset):
        raise DataError(f"{where}: not a dataset ({_kind(node)})")
    if node.dtype.kind not in "biuf":
        raise DataError(f"{where}: holds {node.dtype} values, not numbers")
    check_shape(node.shape or (), where)
    try:
        return node[()]
    except (OSError, ValueError, TypeError, RuntimeError) as e:
        raise DataError(f"{where}: cannot read: {e}") from None


def _group(node, where):
    """node if it is an HDF5 group, else a DataError naming where."""
    import h5py
    if not isinstance(node, h5py.Group):
        raise DataError(f"{where}: not a group ({_kind(node)})")
    return node


def _kind(node):
    return "missing or a dangling link" if node is None else type(node).__name__.lower()


def write_weights(path, layers, diffs=False):
    """Write [(layer name, [(index, blob, owned)]), ...] as Caffe's HDF5 weights.

    `blob` has .data and .diff; the /diff group is written only when `diffs`.
    As Caffe, a weight-shared blob (owned False) is left out of /data but its
    diff is written.
    """
    with _atomic_h5(path) as f:
        data = f.create_group("data")
        diff = f.create_group("diff") if diffs else None
        for name, blobs in layers:
            group = data.create_group(name)
            diff_group = diff.create_group(name) if diffs else None
            for index, blob, owned in blobs:
                if owned:
                    group.create_dataset(str(index), data=np.asarray(blob.data))
                if diffs:
                    diff_group.create_dataset(str(index), data=np.asarray(blob.diff))


def read_weights(path):
    """{layer name: {blob index: array}} from the /data group of an HDF5 weights file."""
    with _reading(path, "weights") as f:
        if "data" not in f:
            raise DataError(f"{path}: no /data group; not Caffe HDF5 weights")
        layers = {}
        data = _group(f.get("data"), f"{path}: /data")
        for name in data.keys():
            group = _group(data.get(name), f"{path}: layer '{name}'")
            blobs = {}
            for key in group.keys():
                if not key.isdigit():
                    raise DataError(f"{path}: layer '{name}' has a dataset '{key}' that is not "
                                    "a blob index")
                blobs[int(key)] = read_array(group.get(key),
                                             f"{path}: layer '{name}' blob {key}")
            layers[name] = blobs
        return layers


def write_solver_state(path, iteration, learned_net, current_step, history):
    """Write Caffe's HDF5 solver state: iter, learned_net, current_step, history/<i>."""
    with _atomic_h5(path) as f:
        f.create_dataset("iter", data=np.array([iteration], np.int32))
        f.create_dataset("learned_net", data=np.bytes_(learned_net.encode()))
        f.create_dataset("current_step", data=np.array([current_step], np.int32))
        group = f.create_group("history")
        for i, array in enumerate(history):
            group.create_dataset(str(i), data=np.asarray(array))


def read_solver_state(path):
    """(iter, learned_net or None, current_step, [history arrays]) from an HDF5 solver state."""
    import h5py
    with _reading(path, "solver state") as f:
        for name in ("iter", "history"):
            if name not in f:
                raise DataError(f"{path}: no '{name}' in this HDF5 solver state")
        iteration = _scalar_int(f.get("iter"), path, "iter")
        current_step = _scalar_int(f.get("current_step"), path, "current_step") \
            if "current_step" in f else 0
        learned_net = None
        if "learned_net" in f:
            node = f.get("learned_net")
            if not isinstance(node, h5py.Dataset) or node.shape != () or \
                    node.dtype.kind not in "SOU":
                raise DataError(f"{path}: 'learned_net' is not one string")
            value = node[()]
            try:
                learned_net = value.decode() if isinstance(value, bytes) else str(value)
            except UnicodeDecodeError:
                raise DataError(f"{path}: 'learned_net' is not UTF-8 text") from None
        group = _group(f.get("history"), f"{path}: history")
        keys = sorted(group.keys(), key=lambda k: int(k) if k.isdigit() else -1)
        if keys != [str(i) for i in range(len(keys))]:
            raise DataError(f"{path}: history datasets are not numbered 0..{len(keys) - 1}")
        history = [read_array(group.get(k), f"{path}: history {k}") for k in keys]
        return iteration, learned_net, current_step, history


def _scalar_int(node, path, name):
    value = np.ravel(read_array(node, f"{path}: '{name}'"))
    if value.size != 1 or value.dtype.kind not in "iu":
        raise DataError(f"{path}: '{name}' should hold one integer, not {value.size} "
                        f"{value.dtype} values")
    if value[0] < 0:
        raise DataError(f"{path}: '{name}' is negative ({value[0]})")
    return int(value[0])
