"""The array backend (NumPy on the CPU, CuPy on a GPU) and the random stream."""
import numpy as np
from threadpoolctl import ThreadpoolController

from ..proto.errors import CyffeError

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


_device = 0


def set_mode_cpu():
    """Run nets on the CPU (pycaffe's caffe.set_mode_cpu). The CPU is the only mode so far."""


def set_mode_gpu():
    """pycaffe's caffe.set_mode_gpu: not available yet; raises a CyffeError saying why."""
    try:
        import cupy  # noqa: F401
    except ImportError:
        raise CyffeError("set_mode_gpu: the GPU backend needs CuPy, which is not installed, and "
                         "is not available yet; use set_mode_cpu()") from None
    raise CyffeError("set_mode_gpu: CuPy is installed but cyffe's GPU backend is not available "
                     "yet (it lands with its own issue); use set_mode_cpu()")


def set_device(device_id):
    """Choose the GPU that set_mode_gpu() will use (pycaffe's caffe.set_device)."""
    global _device
    if isinstance(device_id, bool) or not isinstance(device_id, (int, np.integer)) or device_id < 0:
        raise CyffeError(f"set_device: device id must be a non-negative integer, not {device_id!r}")
    _device = int(device_id)


def device():
    """The GPU id last given to set_device (0 by default)."""
    return _device
