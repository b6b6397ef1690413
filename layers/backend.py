"""The array backend (NumPy on the CPU, CuPy on a GPU) and the random stream."""
import numpy as np
from threadpoolctl import ThreadpoolController

_rng = np.random.default_rng()


def rng():
    """The generator every filler and random layer draws from."""
    return _rng


def set_random_seed(seed):
    """Make fillers, Dropout and data shuffling repeatable."""
    global _rng
    _rng = np.random.default_rng(seed)


def array_module(array):
    """numpy or cupy, whichever owns array."""
    module = type(array).__module__
    if module.startswith("cupy"):
        import cupy
        return cupy
    return np


def on_gpu(array):
    """Whether array lives on a GPU."""
    return array_module(array) is not np


_threadpools = None


def one_blas_thread():
    """A context in which NumPy's BLAS runs on one thread.

    Our kernels parallelize across the batch themselves; multithreaded BLAS on
    top of them (or beside another process on a small machine) spin-waits and
    turns a 20 s training run into minutes.
    """
    global _threadpools
    if _threadpools is None:
        _threadpools = ThreadpoolController()
    return _threadpools.limit(limits=1, user_api="blas")
