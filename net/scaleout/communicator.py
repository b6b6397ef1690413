"""Communicators: how the processes of a data-parallel run talk (rank, size, collectives).

A Communicator offers what synchronous SGD needs: `rank` and `size`,
`allreduce_mean(buffer)` (every rank ends with the element-wise mean),
`broadcast(buffer, root)`, `barrier()` and `abort(code)`. Three backends:

* Communicator -- one process, rank 0 of 1: every collective is the identity
  (the default; no dependency);
* MPICommunicator -- MPI through mpi4py (``pip install "cyffe[mpi]"``), on
  host (numpy) buffers;
* NCCLCommunicator -- NCCL through CuPy for device (cupy) buffers, set up over
  MPI. Untested here: the machines this was written on have no GPUs.

`from_environment()` picks MPI when the process was started by mpiexec.
"""
import os
import sys
import time
import traceback

from ...proto.errors import NetError

# Seconds an aborting MPI rank waits after flushing its output (see MPICommunicator.abort).
ABORT_GRACE = 0.2


# What the common launchers export to each process: Open MPI, and MPICH/Hydra
# and Intel MPI (PMI); Slurm's srun sets SLURM_NTASKS with a SLURM_PROCID.
def launched_size():
    """The number of processes the MPI launcher says it started (1 when not launched by one)."""
    for name in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    # A batch script sees SLURM_NTASKS too; only a task started by srun has a rank.
    if os.environ.get("SLURM_PROCID") is not None and os.environ.get("SLURM_NTASKS", "").isdigit():
        return int(os.environ["SLURM_NTASKS"])
    return 1


def from_environment():
    """MPICommunicator when an MPI launcher started more than one process, else one process."""
    size = launched_size()
    if size <= 1:
        return Communicator()
    try:
        return MPICommunicator()
    except ImportError as e:
        raise NetError(f"started by an MPI launcher with {size} processes, but mpi4py cannot "
                       f"be imported ({e}); install it with: pip install \"cyffe[mpi]\"") from e


class Communicator:
    """One process: rank 0 of 1; every collective leaves its buffer as it is."""

    rank = 0
    size = 1
    # Whether collectives take device (cupy) buffers: then, in GPU mode, DataParallel packs
    # the device copies of the params and their diffs, with no trip through the host.
    on_device = False

    @property
    def is_root(self):
        """True on the rank that logs, tests and writes files (rank 0)."""
        return self.rank == 0

    def allreduce_mean(self, buffer):
        """Replace `buffer` (a contiguous array) in place by its mean over all ranks."""
        return buffer

    def broadcast(self, buffer, root=0):
        """Replace `buffer` in place by rank `root`'s copy."""
        return buffer

    def allreduce_max(self, values):
        """Replace `values` (a small numpy array, host side with every backend) in place by
        its elementwise maximum over all ranks."""
        return values

    def barrier(self):
        """Wait until every rank gets here."""

    def abort(self, code=1):
        """End every rank with exit status `code` (one process: nothing else to end)."""

    def describe(self):
        """`rank R of N: ` for messages, or nothing in a single process."""
        return f"rank {self.rank} of {self.size}: " if self.size > 1 else ""


class MPICommunicator(Communicator):
    """MPI over mpi4py (COMM_WORLD unless given `comm`), on numpy buffers.

    Constructing one installs an excepthook: an uncaught exception on any rank
    prints that rank's traceback and aborts the whole job, so the other ranks
    do not hang in their next collective.
    """

    def __init__(self, comm=None):
        from mpi4py import MPI
        self._mpi = MPI
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        sys.excepthook = self._abort_on_uncaught

    def allreduce_mean(self, buffer):
        self.comm.Allreduce(self._mpi.IN_PLACE, buffer, op=self._mpi.SUM)
        buffer /= self.size
        return buffer

    def broadcast(self, buffer, root=0):
        self.comm.Bcast(buffer, root=root)
        return buffer

    def allreduce_max(self, values):
        self.comm.Allreduce(self._mpi.IN_PLACE, values, op=self._mpi.MAX)
        return values

    def barrier(self):
        self.comm.Barrier()

    def abort(self, code=1):
        sys.stdout.flush()
        sys.stderr.flush()
        # mpiexec forwards each rank's output through a pipe, and Abort has it kill every
        # rank and exit, sometimes before it read the error just written (once in a loaded
        # test run, the whole message was lost): give it a moment to drain.
        time.sleep(ABORT_GRACE)
        self.comm.Abort(code)

    def _abort_on_uncaught(self, kind, value, tb):
        print(f"{self.describe()}uncaught error; aborting all {self.size} ranks", file=sys.stderr)
        traceback.print_exception(kind, value, tb, file=sys.stderr)
        self.abort(1)


class NCCLCommunicator(MPICommunicator):
    """NCCL (cupy.cuda.nccl) for cupy buffers, one GPU per rank; MPI carries the setup.

    Each rank takes the GPU numbered by its rank on its machine (modulo the
    GPUs there); rank 0 makes the NCCL id and broadcasts it over MPI; barrier
    and abort stay MPI's. Buffers must be cupy arrays on that device.
    """

    on_device = True

    def __init__(self, comm=None):
        super().__init__(comm)
        import cupy
        from cupy.cuda import nccl
        self._nccl = nccl
        local = self.comm.Split_type(self._mpi.COMM_TYPE_SHARED).Get_rank()
        cupy.cuda.Device(local % cupy.cuda.runtime.getDeviceCount()).use()
        uid = nccl.get_unique_id() if self.rank == 0 else None
        uid = self.comm.bcast(uid, root=0)
        self.nccl_comm = nccl.NcclCommunicator(self.size, uid, self.rank)

    def _nccl_type(self, buffer):
        kinds = {"float32": self._nccl.NCCL_FLOAT32, "float64": self._nccl.NCCL_FLOAT64,
                 "float16": self._nccl.NCCL_FLOAT16}
        return kinds[buffer.dtype.name]

    def allreduce_mean(self, buffer):
        import cupy
        stream = cupy.cuda.get_current_stream().ptr
        self.nccl_comm.allReduce(buffer.data.ptr, buffer.data.ptr, buffer.size,
                                 self._nccl_type(buffer), self._nccl.NCCL_SUM, stream)
        buffer /= self.size
        return buffer

    def broadcast(self, buffer, root=0):
        import cupy
        stream = cupy.cuda.get_current_stream().ptr
        self.nccl_comm.bcast(buffer.data.ptr, buffer.size, self._nccl_type(buffer), root, stream)
        return buffer
