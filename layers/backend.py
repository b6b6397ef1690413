"""The array backend (NumPy on the CPU, CuPy on a GPU) and the random stream."""
import contextlib
import os
import threading

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


_blas = None


def one_blas_thread():
    """A context in which NumPy's BLAS runs on one thread.

    Our kernels parallelize across the batch themselves; multithreaded BLAS on
    top of them (or beside another process on a small machine) spin-waits and
    turns a 20 s training run into minutes.
    """
    return _OneBlasThread()


class _OneBlasThread:
    """Sets the BLAS libraries that run more than one thread to one, and back on the way out
    (a few microseconds: threadpoolctl's limit() took 15 per forward)."""

    __slots__ = ("restore",)

    def __enter__(self):
        global _blas
        if _blas is None:
            _blas = ThreadpoolController().select(user_api="blas").lib_controllers
        self.restore = [(lib, n) for lib in _blas if (n := lib.get_num_threads()) not in (1, None)]
        for lib, _ in self.restore:
            lib.set_num_threads(1)

    def __exit__(self, *exc):
        for lib, n in self.restore:
            lib.set_num_threads(n)
        return False


_device = 0

# "cpu": Cython kernels on numpy arrays. "gpu": the forward_gpu/backward_gpu paths on CuPy
# arrays in device memory. "gpu-emulated": the same GPU paths and the same host/device
# syncing, with numpy standing in for CuPy (device arrays are separate numpy buffers).
MODES = ("cpu", "gpu", "gpu-emulated")
BACKEND_VARIABLE = "CYFFE_BACKEND"
CUPY_MISSING = "CuPy is not installed: pip install 'cyffe[gpu]'"

_mode = "cpu"
_environment_error = None   # a $CYFFE_BACKEND that could not be honoured, raised at first use
_side = threading.local()   # which copy of a blob the running code reads: host or device


def mode():
    """The backend mode: 'cpu', 'gpu' or 'gpu-emulated'."""
    return _mode


def gpu_mode():
    """Whether layers run their GPU paths (real or emulated)."""
    if _environment_error is not None:
        raise _environment_error
    return _mode != "cpu"


def set_mode_cpu():
    """Run nets on the CPU with the Cython kernels (pycaffe's caffe.set_mode_cpu)."""
    global _mode, _environment_error
    _mode, _environment_error = "cpu", None


def set_mode_gpu(emulate=None):
    """Run layers through their GPU paths on CuPy (pycaffe's caffe.set_mode_gpu).

    emulate=True runs the same paths with numpy in place of CuPy, on the CPU.
    By default it emulates only when $CYFFE_BACKEND says gpu-emulated; otherwise
    CuPy is required and a CyffeError says how to install it.
    """
    global _mode, _environment_error
    if emulate is None:
        emulate = _env_mode() == "gpu-emulated"
    if not emulate:
        _use_device(_device)
    _mode, _environment_error = ("gpu-emulated" if emulate else "gpu"), None


def _use_device(device_id):
    cupy = _import_cupy()
    try:
        cupy.cuda.Device(device_id).use()
    except Exception as e:          # no driver, no such device: CuPy's own error types
        raise CyffeError(f"cannot use GPU {device_id}: {e}") from None


def _import_cupy():
    try:
        import cupy
    except ImportError:
        raise CyffeError(CUPY_MISSING) from None
    return cupy


def set_device(device_id):
    """Choose the GPU that GPU mode uses (pycaffe's caffe.set_device)."""
    global _device
    if isinstance(device_id, bool) or not isinstance(device_id, (int, np.integer)) or device_id < 0:
        raise CyffeError(f"set_device: device id must be a non-negative integer, not {device_id!r}")
    _device = int(device_id)
    if _mode == "gpu":
        _use_device(_device)


def device():
    """The GPU id last given to set_device (0 by default)."""
    return _device


def device_module():
    """The array module of device memory: cupy in GPU mode, numpy otherwise."""
    return _import_cupy() if _mode == "gpu" else np


def copy_to_device(array):
    """A device copy of host `array`, made from a thread of a data layer's prefetch.

    On a GPU: on the device set_device chose (the device is per thread in CUDA), on a
    stream of its own, and complete when this returns, so the batch is ready when forward
    takes it. Emulated: a separate numpy copy, as device memory is elsewhere.
    """
    if _mode != "gpu":
        return np.array(array, copy=True)
    cupy = _import_cupy()
    with cupy.cuda.Device(_device):
        stream = cupy.cuda.Stream(non_blocking=True)
        with stream:
            copy = cupy.asarray(array)
        stream.synchronize()
    return copy


def on_device_side():
    """Whether the running code reads blobs' device copies (inside a GPU-mode layer pass)."""
    return _mode != "cpu" and getattr(_side, "device", False)


@contextlib.contextmanager
def device_side(device=True, reading=()):
    """Within: blobs hand out their device arrays (or host ones, device=False), syncing lazily.

    `reading` lists the synced arrays the code within only reads (a layer's
    bottoms in forward, as Caffe's const gpu_data): handing them out leaves
    both copies current, so the host may refill them without a copy back.
    """
    before = getattr(_side, "device", False), getattr(_side, "reading", frozenset())
    _side.device, _side.reading = device, frozenset(map(id, reading))
    try:
        yield
    finally:
        _side.device, _side.reading = before


def only_read(array):
    """Whether the running code only reads this synced array (see device_side)."""
    return id(array) in getattr(_side, "reading", ())


def to_host(array):
    """A numpy copy of array, wherever it lives (solver history at snapshot time, say)."""
    if on_gpu(array):
        return array_module(array).asnumpy(array)
    return np.array(array, copy=True)


def _env_mode():
    value = os.environ.get(BACKEND_VARIABLE, "").strip().lower() or "cpu"
    if value not in MODES:
        raise CyffeError(f"${BACKEND_VARIABLE} is {value!r}; use one of {', '.join(MODES)}")
    return value


def mode_from_environment():
    """Set the mode $CYFFE_BACKEND names (cpu, gpu, gpu-emulated); done once at import."""
    value = _env_mode()
    if value == "cpu":
        set_mode_cpu()
    else:
        set_mode_gpu(emulate=value == "gpu-emulated")


try:
    mode_from_environment()
except CyffeError as e:
    # Raised when a net first runs (inside the tools' error handling: one line), not
    # as a traceback out of `import cyffe`; set_mode_cpu/gpu() clear it.
    _environment_error = e
