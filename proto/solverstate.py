"""Caffe's .solverstate files, binary (SolverState message) or HDF5 (a `.h5` name).

A solver state is the iteration, the multistep position (current_step), the
solver's history blobs and the name of the .caffemodel written beside it
(learned_net). The weights themselves live in that file, not here.
"""
import os

from google.protobuf import message

from . import cyffe_pb2 as pb
from . import hdf5_format
from .errors import DataError
from .io import array_to_blobproto, blobproto_to_array, write_binary


def is_hdf5(path):
    """Caffe's rule: a name ending in .h5 is HDF5, anything else a binary proto."""
    return os.fspath(path).endswith(".h5")


def write_solver_state(path, iteration, learned_net, current_step, history):
    """Write a solver state atomically, in the format its name asks for."""
    if is_hdf5(path):
        hdf5_format.write_solver_state(path, iteration, learned_net, current_step, history)
        return
    state = pb.SolverState(iter=iteration, learned_net=learned_net, current_step=current_step)
    state.history.extend(array_to_blobproto(h) for h in history)
    write_binary(state, path)


def read_solver_state(path):
    """(iter, learned_net or None, current_step, [history arrays]) from a solver state file."""
    if is_hdf5(path):
        return hdf5_format.read_solver_state(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: solver state file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read solver state: {e.strerror or e}") from None
    state = pb.SolverState()
    try:
        state.ParseFromString(data)
    except message.DecodeError as e:
        raise DataError(f"{path}: not a binary SolverState (.solverstate): {e}") from None
    if not state.HasField("iter"):
        # Every solver state Caffe writes starts with iter; its absence means garbage.
        raise DataError(f"{path}: not a solver state (no iteration in it)")
    if state.iter < 0 or state.current_step < 0:
        raise DataError(f"{path}: not a solver state (iteration {state.iter}, step "
                        f"{state.current_step}: negative)")
    history = []
    for i, blob in enumerate(state.history):
        try:
            history.append(blobproto_to_array(blob))
        except DataError as e:
            raise DataError(f"{path}: history blob {i}: {e}") from None
    return state.iter, state.learned_net or None, state.current_step, history
