"""DataParallel: synchronous data-parallel SGD, one solver per process, as Caffe's P2PSync.

Every rank runs the same net and solver on its own shard of the data. After
backward and before the update (the solver's `before_update` hook) the param
diffs of all ranks are averaged, so every rank applies the same update and the
weights stay equal. Averaging N gradients of batch B each is the gradient of
one batch of N*B (the losses average over their batch), so a run on N ranks
follows a single process with an N-times larger batch at the same base_lr.
"""
import time

import numpy as np

from ...layers.backend import array_module, device_side, on_gpu, set_random_seed, to_host


class DataParallel:
    """Wire `solver` into `comm` (a Communicator): shard, seed, broadcast, average gradients.

    On construction: the train net's layers that have `set_shard(rank, size)`
    read every size-th record from `rank`; ranks other than 0 get their own seed
    (random_seed + rank) for Dropout and shuffling, and go quiet (no log lines,
    tests or snapshots: only rank 0 does those, as in Caffe); rank 0's weights
    are broadcast. Call `broadcast_state()` again after loading weights or
    restoring a snapshot on rank 0. `comm_seconds` adds up the time spent
    averaging gradients.
    """

    def __init__(self, solver, comm):
        self.solver, self.comm = solver, comm
        with self._side():
            self.buckets = _buckets(solver.net.learnable_params)
        self.comm_seconds = 0.0
        if comm.size > 1:
            for layer in solver.net.layers:
                if hasattr(layer, "set_shard"):
                    layer.set_shard(comm.rank, comm.size)
        if not comm.is_root:
            if solver.param.random_seed >= 0:
                set_random_seed(solver.param.random_seed + comm.rank)
            self._quiet()
        self.broadcast_state()
        solver.before_update.append(self.average_gradients)

    def _side(self):
        """Where the collectives' buffers live: the device copies for a device communicator
        (NCCL) in GPU mode, the host copies otherwise (MPI moves host memory)."""
        return device_side(self.comm.on_device)

    def _quiet(self):
        p = self.solver.param
        self.solver.log = lambda line: None
        p.display = 0
        p.test_interval = 0
        p.snapshot = 0
        p.snapshot_after_train = False

    def broadcast_state(self):
        """Give every rank rank 0's params and solver history (momentum and the like)."""
        with self._side():
            for blobs, buffer in self.buckets:
                _pack(buffer, [b.data for b in blobs])
                self.comm.broadcast(buffer)
                _unpack(buffer, [b.data for b in blobs])
        for history in self.solver.history:
            if self.comm.on_device or not on_gpu(history):
                self.comm.broadcast(history)
            else:                           # MPI moves host memory: a round trip
                host = to_host(history)
                self.comm.broadcast(host)
                history[...] = array_module(history).asarray(host)

    def average_gradients(self, solver=None):
        """Replace every param diff by its mean over the ranks (the solver's before_update hook)."""
        start = time.perf_counter()
        with self._side():
            for blobs, buffer in self.buckets:
                _pack(buffer, [b.diff for b in blobs])
                self.comm.allreduce_mean(buffer)
                _unpack(buffer, [b.diff for b in blobs])
        self.comm_seconds += time.perf_counter() - start


def _buckets(blobs):
    """[(blobs, flat buffer)], one per dtype and array module, so each collective is one call.

    Caffe lays the diffs out in that buffer; here the blobs keep their own
    arrays (layers may hold views of them) and are copied in and out: a
    memcpy of the params, small next to a forward-backward pass.
    """
    groups = {}
    for blob in blobs:
        xp = array_module(blob.data)
        groups.setdefault((xp.__name__, np.dtype(blob.dtype).str), (xp, []))[1].append(blob)
    return [(members, xp.empty(sum(b.count for b in members), members[0].dtype))
            for xp, members in groups.values()]


def _pack(buffer, arrays):
    at = 0
    for a in arrays:
        buffer[at:at + a.size] = a.ravel()
        at += a.size


def _unpack(buffer, arrays):
    at = 0
    for a in arrays:
        a[...] = buffer[at:at + a.size].reshape(a.shape)
        at += a.size
