"""The base of the data layers that read records: batches made ahead in a thread (Caffe's prefetch).

A subclass says how many records it has (`num_records`) and how to make batch k
(`load_batch`). Batch k holds the records at stream positions ``skip + k*batch_size
+ i``; the stream loops over the records epoch after epoch, and a subclass maps a
position to a record (in order, or shuffled per epoch). Each batch draws its random
crops and flips from its own generator, seeded from the layer's seed (taken from
backend.rng() at setup) and k, so batches are the same whichever thread makes them,
and `skip(batches)` moves to batch k+batches without reading anything.

A background thread fills a queue of at most `data_param.prefetch` ready batches
(Caffe's default, 4); forward takes the next one. In GPU mode the thread also copies each
batch to the device, so forward hands the tops device arrays with no copy on the way
(Caffe's one-batch-ahead transfer); the host copies sync only if Python reads them. An error in the thread is raised
by the forward that wanted the batch. `set_shard(rank, size)` keeps every size-th
record, starting at rank, for data-parallel training.
"""
import queue
import threading
import weakref

import numpy as np

from ..proto.errors import CyffeError, DataError, NetError
from .backend import copy_to_device, gpu_mode, rng
from .base import Layer
from .data_transformer import DataTransformer

_POLL_S = 0.1       # how often a blocked thread looks whether it should stop


class PrefetchingDataLayer(Layer):
    """Data and optional label tops, filled from batches a background thread prepares."""

    num_bottom = 0
    min_top = 1
    max_top = 2
    base_dir = None             # the prototxt's folder, set by the net
    source_field = None         # the LayerParameter field with source, batch_size, rand_skip

    # -- what a subclass provides ---------------------------------------------------

    def open_source(self):
        """Open the data source; return (batch_size, item shape before transform)."""
        raise NotImplementedError

    @property
    def num_records(self):
        """Records in this layer's shard."""
        raise NotImplementedError

    def load_item(self, position, data, rng, where):
        """Transform the item at stream position into data; return its label."""
        raise NotImplementedError

    # -- setup ------------------------------------------------------------------------

    def setup(self, bottom, top):
        self._refuse_legacy_fields()
        self.transformer = DataTransformer(self.param.transform_param, self.phase,
                                           self.base_dir, f"layer '{self.name}' ({self.type})")
        self.rank, self.size = 0, 1
        self.batch_size, item_shape = self.open_source()
        if self.batch_size <= 0:
            raise NetError(f"layer '{self.name}' ({self.type}): batch_size must be positive")
        self.item_shape = self.transformer.output_shape(item_shape)
        self.seed = int(rng().integers(2 ** 63))
        self.prefetch = max(1, self.param.data_param.prefetch)
        self.start = 0              # stream position of batch 0 (rand_skip moves it)
        rand_skip = getattr(self.param, self.source_field).rand_skip
        if rand_skip:
            self.start = int(rng().integers(rand_skip))
        self.next_batch = 0
        self._thread = None

    def _refuse_legacy_fields(self):
        """Old nets put scale/mean_file/crop_size/mirror in the data params: never ignore them."""
        for field in ("data_param", "image_data_param"):
            params = getattr(self.param, field)
            legacy = [f for f in ("scale", "mean_file", "crop_size", "mirror")
                      if params.HasField(f)]
            if legacy:
                raise NetError(f"layer '{self.name}' ({self.type}): {', '.join(legacy)} in "
                               f"{field} is the old format; move it to "
                               "transform_param (upgrade_net does this)")

    def reshape(self, bottom, top):
        top[0].reshape((self.batch_size,) + tuple(self.item_shape))
        if len(top) > 1:
            top[1].reshape((self.batch_size,))

    # -- cursor ---------------------------------------------------------------------

    def set_shard(self, rank, size):
        """Read only every size-th record, starting at record rank (data-parallel training)."""
        if not 0 <= rank < size:
            raise NetError(f"layer '{self.name}' ({self.type}): shard {rank} of {size} "
                           "does not exist")
        self.stop()
        self.rank, self.size = int(rank), int(size)
        if self.num_records == 0:
            raise DataError(f"layer '{self.name}' ({self.type}): shard {rank} of {size} "
                            "has no records")

    def skip(self, batches):
        """Move on as if `batches` forwards had run, without reading (resume at an iteration)."""
        if batches < 0:
            raise ValueError(f"skip: batches must be non-negative, got {batches}")
        self.stop()
        self.next_batch += int(batches)

    def batch_generator(self, batch):
        """The random stream of one batch: the same in any thread, after any skip."""
        return np.random.default_rng((self.seed, batch))

    def make_batch(self, batch):
        """(data, labels) arrays of batch number `batch`."""
        data = np.empty((self.batch_size,) + tuple(self.item_shape), self.dtype)
        labels = np.empty(self.batch_size, self.dtype)
        generator = self.batch_generator(batch)
        first = self.start + batch * self.batch_size
        for i in range(self.batch_size):
            labels[i] = self.load_item(first + i, data[i], generator,
                                       f"layer '{self.name}' ({self.type})")
        return data, labels

    # -- the thread -----------------------------------------------------------------------

    def _start(self):
        self._queue = queue.Queue(maxsize=self.prefetch)
        self._stop = threading.Event()
        self._on_device = gpu_mode()
        self._thread = threading.Thread(
            target=_produce, args=(weakref.ref(self), self.next_batch, self._queue, self._stop,
                                   self._on_device),
            name=f"prefetch {self.name}", daemon=True)
        self._thread.start()

    def stop(self):
        """End the prefetch thread and drop its batches (it restarts at the next forward)."""
        if self._thread is None:
            return
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                pass
        self._thread = None

    def __del__(self):
        if getattr(self, "_thread", None) is not None:
            self._stop.set()

    def _next(self):
        if self._thread is not None and self._on_device != gpu_mode():
            self.stop()                 # the mode changed: batches ahead are on the wrong side
        if self._thread is None:
            self._start()
        while True:
            try:
                item = self._queue.get(timeout=_POLL_S)
                break
            except queue.Empty:
                if not self._thread.is_alive():
                    self._thread = None
                    raise DataError(f"layer '{self.name}' ({self.type}): the prefetch "
                                    "thread ended without a batch") from None
        if isinstance(item, BaseException):
            self._thread = None
            if isinstance(item, CyffeError):
                raise item
            raise DataError(f"layer '{self.name}' ({self.type}): {self.describe_source()}: "
                            f"{type(item).__name__}: {item}") from item
        self.next_batch += 1
        return item

    def describe_source(self):
        """The file or folder the layer reads, for error messages."""
        return repr(getattr(self, "source", "?"))

    # -- the contract ----------------------------------------------------------------------

    def forward_cpu(self, bottom, top):
        batch = self._next()
        for blob, values in zip(top, batch):
            if self._on_device:         # the thread made this batch's device copies
                blob.adopt_device_data(values)
            else:
                blob.data[...] = values

    def backward_cpu(self, top, propagate_down, bottom):
        """Nothing: a data layer has no bottoms."""

    forward_gpu = forward_cpu
    backward_gpu = backward_cpu


def _produce(layer_ref, batch, out, stop, on_device):
    """The prefetch thread: make batches from `batch` on until stopped or the layer is gone
    (copied to the device when on_device)."""
    while not stop.is_set():
        layer = layer_ref()
        if layer is None:
            return
        try:
            item = layer.make_batch(batch)
            if on_device:
                item = tuple(copy_to_device(a) for a in item)
        except BaseException as err:        # handed to forward, which raises it
            item = err
        del layer                           # no strong reference while blocked: the layer may go
        while not stop.is_set():
            try:
                out.put(item, timeout=_POLL_S)
                break
            except queue.Full:
                if layer_ref() is None:
                    return
        if isinstance(item, BaseException):
            return
        batch += 1


def record_order(count, rank, size):
    """The record indices of shard rank of size, in order."""
    return np.arange(rank, count, size)

