"""Blob: a named-free pair of arrays, data and diff, of one shape, synced host <-> device."""
import math

import numpy as np

from .backend import device_module, on_device_side, only_read

# Bumped by every change of a blob's shape or memory; each blob keeps the value of its own
# last change (its stamp). A net reshapes a layer only when one of its blobs has a stamp newer
# than that layer's last reshape.
_generation = 0


def generation():
    """A number that grows whenever any blob's shape or memory changes."""
    return _generation


def _changed(blob):
    global _generation
    _generation += 1
    blob._stamp = _generation


class SyncedArray:
    """One array's host and device copies, and which is current (Caffe's SyncedMemory).

    `head` is None (nothing allocated yet), "host" or "device" (that copy is the
    only current one: it was handed out for writing) or "synced" (both agree).
    A copy crosses over only when the other side asks for it, so a net that
    trains on the device never comes back to the host unless Python reads.
    """

    __slots__ = ("shape", "dtype", "host", "device", "head")

    def __init__(self, shape, dtype, array=None, on_device=False):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.host = self.device = None
        self.head = None
        if array is not None:
            self.shape = tuple(array.shape)
            if on_device:
                self.device, self.head = array, "device"
            else:
                self.host, self.head = array, "host"

    def host_array(self, write=True):
        """The host copy, brought up to date; write=True makes it the only current one."""
        if self.host is None:
            self.host = np.zeros(self.shape, self.dtype)
        if self.head == "device":
            self.host[...] = _to_numpy(self.device)
            self.head = "synced"
        if write or self.head is None:
            self.head = "host"
        return self.host

    def device_array(self, write=True):
        """The device copy, brought up to date; write=True makes it the only current one."""
        xp = device_module()
        if self.device is None or not isinstance(self.device, xp.ndarray):
            fresh = xp.zeros(self.shape, self.dtype)
            if self.device is not None:          # the mode changed under this blob
                fresh[...] = xp.asarray(_to_numpy(self.device))
            self.device = fresh
        if self.head == "host":
            self.device[...] = xp.asarray(self.host)
            self.head = "synced"
        if write or self.head is None:
            self.head = "device"
        return self.device

    def adopt_device(self, array):
        """Take `array` (as many elements, this dtype, in device memory) as the current
        device copy."""
        if array.size != math.prod(self.shape) or array.dtype != self.dtype:
            raise ValueError(f"a device array of shape {tuple(array.shape)} and dtype "
                             f"{array.dtype} for an array of {self.shape} {self.dtype}")
        self.device, self.head = array.reshape(self.shape), "device"

    def current(self):
        """The copy the running code should see: the device one inside a GPU-mode layer pass."""
        if on_device_side():
            return self.device_array(not only_read(self))
        if self.device is None and self.host is not None:    # one copy (CPU mode): no bookkeeping
            return self.host
        return self.host_array(not only_read(self))


def _to_numpy(array):
    return array if isinstance(array, np.ndarray) else array.get()


class Blob:
    """Data and its gradient, as Caffe's Blob.

    `data` and `diff` are live arrays: writing into them (``blob.data[...] = x``)
    changes what the net computes. Reshaping to a new element count allocates
    new arrays; reshaping to the same count keeps the memory.

    In GPU mode each array has a host and a device copy, synced lazily as
    Caffe's SyncedMemory does: layer passes see the device copy, Python code
    the host one (pycaffe's semantics: read `.data` again after a forward, and
    a write into it is seen by the next forward).
    """

    def __init__(self, shape=(), dtype=np.float32):
        self.dtype = np.dtype(dtype)
        self._shape = tuple(int(d) for d in shape)
        self._data = SyncedArray(self._shape, self.dtype)
        self._diff = SyncedArray(self._shape, self.dtype)
        self._views = {}
        _changed(self)

    def _shaped(self, which, array):
        """array under this blob's shape (a view, kept so repeated reads give the same object)."""
        if array.shape == self._shape:
            return array
        cached = self._views.get(which)
        if cached is None or cached[0] is not array or cached[1].shape != self._shape:
            cached = self._views[which] = (array, array.reshape(self._shape))
        return cached[1]

    @property
    def data(self):
        """The values (device copy inside a GPU layer pass, host copy otherwise)."""
        return self._shaped("data", self._data.current())

    def _hands_back(self, which, synced, array):
        """Whether array is what the getter handed out: `blob.diff += x` assigns it back,
        and nothing needs rewrapping."""
        view = self._views.get(which)
        return (array is synced.host or array is synced.device or
                (view is not None and array is view[1]))

    @data.setter
    def data(self, array):
        if self._hands_back("data", self._data, array):
            return
        self._data = SyncedArray(array.shape, array.dtype, array, on_device_side())
        self._shape = tuple(array.shape)
        self._views.pop("data", None)
        _changed(self)

    @property
    def diff(self):
        """The gradient (device copy inside a GPU layer pass, host copy otherwise)."""
        return self._shaped("diff", self._diff.current())

    @diff.setter
    def diff(self, array):
        if self._hands_back("diff", self._diff, array):
            return
        if array.size != self.count:
            raise ValueError(f"diff of {array.size} elements for a blob of shape {self.shape}")
        self._diff = SyncedArray(array.shape, array.dtype, array, on_device_side())
        self._views.pop("diff", None)
        _changed(self)

    def adopt_device_data(self, array):
        """Make `array`, already in device memory, the current data: no copy is made (a data
        layer hands over a batch its prefetch thread copied ahead). The host copy syncs
        lazily when Python reads .data."""
        self._data.adopt_device(array)

    def host_data(self):
        """The data on the host, for reading only: no copy back to the device follows."""
        return self._shaped("data", self._data.host_array(write=False))

    def host_diff(self):
        """The diff on the host, for reading only: no copy back to the device follows."""
        return self._shaped("diff", self._diff.host_array(write=False))

    @property
    def head(self):
        """Where the current data is: None, 'host', 'device' or 'synced' (Caffe's head())."""
        return self._data.head

    @property
    def shape(self):
        return self._shape

    @property
    def count(self):
        return math.prod(self._shape)

    @property
    def num(self):
        return self.shape[0]

    @property
    def channels(self):
        return self.shape[1]

    @property
    def height(self):
        return self.shape[2]

    @property
    def width(self):
        return self.shape[3]

    def reshape(self, *shape):
        """Give the blob a new shape; values are kept only if the count is unchanged."""
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = shape[0]
        shape = tuple(int(d) for d in shape)
        if shape == self.shape:
            return
        if any(d < 0 for d in shape):
            raise ValueError(f"negative blob dimension in {shape}")
        if math.prod(shape) != self.count:
            self._data = SyncedArray(shape, self.dtype)
            self._diff = SyncedArray(shape, self.dtype)
            self._views.clear()
        self._shape = shape
        _changed(self)

    def share_data(self, other):
        """Make this blob use other's data memory, both copies (Caffe's ShareData)."""
        if self._data is not other._data:
            self._data = other._data
            self._views.pop("data", None)
            _changed(self)

    def share_diff(self, other):
        """Make this blob use other's diff memory, both copies (Caffe's ShareDiff)."""
        if self._diff is not other._diff:
            self._diff = other._diff
            self._views.pop("diff", None)
            _changed(self)

    def shares_data_with(self, other):
        """Whether this blob's data is other's memory (after share_data either way)."""
        return self._data is other._data

    def shares_diff_with(self, other):
        """Whether this blob's diff is other's memory (after share_diff either way)."""
        return self._diff is other._diff

    def view(self, shape):
        """A Blob of another shape, same count, sharing this blob's data and diff."""
        view = Blob((), self.dtype)
        view._data, view._diff = self._data, self._diff
        view._shape = tuple(int(d) for d in shape)
        if view.count != self.count:
            raise ValueError(f"a view of shape {view.shape} on a blob of shape {self.shape}")
        return view

    def __repr__(self):
        return f"Blob(shape={self.shape}, dtype={self.dtype})"
