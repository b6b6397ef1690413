"""Batches made ahead in a background thread (Caffe's prefetch).

A Prefetcher keeps a queue of at most `depth` ready batches of a layer, made by
layer.make_batch(k) from batch k on; next() takes the next one. The thread holds the
layer only weakly, so a layer nobody uses goes away with its thread. In GPU mode the
thread also copies each batch to the device, so forward hands the tops device arrays with
no copy on the way (Caffe's one-batch-ahead transfer); the host copies sync only if Python
reads them. An error in the thread is raised by the next() that wanted the batch.
"""
import queue
import threading
import weakref

from ...proto.errors import CyffeError, DataError
from ..backend import copy_to_device, gpu_mode

_POLL_S = 0.1       # how often a blocked thread looks whether it should stop


class Prefetcher:
    """The prefetch thread of one layer and its queue of ready batches."""

    def __init__(self, layer, depth):
        self._layer = weakref.ref(layer)
        self.depth = depth
        self.on_device = False
        self._thread = None

    def _start(self, batch):
        self._queue = queue.Queue(maxsize=self.depth)
        self._stop = threading.Event()
        self.on_device = gpu_mode()
        self._thread = threading.Thread(
            target=_produce, args=(self._layer, batch, self._queue, self._stop, self.on_device),
            name=f"prefetch {getattr(self._layer(), 'name', '?')}", daemon=True)
        self._thread.start()

    def stop(self):
        """End the thread and drop its batches (it restarts at the next next())."""
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

    def next(self, batch, where, describe_source):
        """Batch number `batch` (the thread starts there when not running); errors name
        `where` and, for errors not of our own, describe_source()."""
        if self._thread is not None and self.on_device != gpu_mode():
            self.stop()                 # the mode changed: batches ahead are on the wrong side
        if self._thread is None:
            self._start(batch)
        while True:
            try:
                item = self._queue.get(timeout=_POLL_S)
                break
            except queue.Empty:
                if not self._thread.is_alive():
                    self._thread = None
                    raise DataError(f"{where}: the prefetch thread ended without a batch") \
                        from None
        if isinstance(item, BaseException):
            self._thread = None
            if isinstance(item, CyffeError):
                raise item
            raise DataError(f"{where}: {describe_source()}: {type(item).__name__}: {item}") \
                from item
        return item


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
