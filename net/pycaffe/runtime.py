"""pycaffe's process-wide names: Timer, and the multi-GPU ones (NCCL, solver count and rank).

pycaffe has these even in CPU builds, and scripts call them unconditionally:

    caffe.set_solver_count(1); caffe.set_solver_rank(0); caffe.set_multiprocess(False)
    if caffe.has_nccl(): ...

cyffe has no NCCL ring of pycaffe's kind: has_nccl() is False and NCCL says what
to use instead (`mpiexec -n N train_net`, or net/scaleout's DataParallel). The
count, rank and multiprocess flag are kept as pycaffe keeps them, for the
scripts that read them back; cyffe's data-parallel training takes its ranks
from the MPI launcher, not from these.
"""
import time

from ...proto.errors import NetError

_group = {"count": 1, "rank": 0, "multiprocess": False}


def solver_count():
    """How many solvers train together (pycaffe's; 1 unless set)."""
    return _group["count"]


def set_solver_count(count):
    _group["count"] = int(count)


def solver_rank():
    """This solver's rank among them (pycaffe's; 0 unless set)."""
    return _group["rank"]


def set_solver_rank(rank):
    _group["rank"] = int(rank)


def set_multiprocess(multiprocess):
    _group["multiprocess"] = bool(multiprocess)


def has_nccl():
    """Whether pycaffe's NCCL class can be used: never in cyffe."""
    return False


class NCCL:
    """pycaffe's multi-GPU gradient ring; cyffe has none (has_nccl() is False)."""

    def __init__(self, solver=None, uid=None):
        raise NetError(_NO_NCCL)

    @staticmethod
    def new_uid():
        raise NetError(_NO_NCCL)


_NO_NCCL = ("cyffe has no pycaffe NCCL (caffe.has_nccl() is False): train data-parallel with "
            "`mpiexec -n N train_net ...`, or DataParallel(solver, from_environment()) from "
            "cyffe.net.scaleout")


class Timer:
    """pycaffe's caffe.Timer: start(), stop(), and `ms`, the milliseconds between them.

    Reading `ms` while running stops the timer first, as Caffe's does.
    """

    def __init__(self):
        self._started = None
        self._elapsed = 0.0

    def start(self):
        self._started = time.perf_counter()

    def stop(self):
        if self._started is not None:
            self._elapsed = time.perf_counter() - self._started
            self._started = None

    @property
    def ms(self):
        self.stop()
        return self._elapsed * 1000.0
