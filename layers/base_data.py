"""The base of the data layers that read records (Caffe's BasePrefetchingDataLayer).

A subclass says how many records it has (`num_records`) and how to make batch k
(`load_batch`). Batch k holds the records at stream positions ``skip + k*batch_size
+ i``; the stream loops over the records epoch after epoch, and a subclass maps a
position to a record (in order, or shuffled per epoch). Each batch draws its random
crops and flips from its own generator, seeded from the layer's seed (taken from
backend.rng() at setup) and k, so batches are the same whichever thread makes them,
and `skip(batches)` moves to batch k+batches without reading anything.

Batches are made ahead by a pipeline.prefetch.Prefetcher (at most `data_param.prefetch`
of them, Caffe's default 4); forward takes the next one. `set_shard(rank, size)` keeps
every size-th record, starting at rank, for data-parallel training.
"""
import numpy as np

from ..proto.errors import DataError, NetError
from .backend import rng
from .base import Layer
from .pipeline.prefetch import Prefetcher
from .pipeline.transformer import DataTransformer


class PrefetchingDataLayer(Layer):
    """Data and optional label tops, filled from batches a background thread prepares."""

    bottoms = 0
    reshape_by_shapes = False       # the batch's shape is the layer's to say, every time
    tops = (1, 2)
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
        self.start = 0              # stream position of batch 0 (rand_skip moves it)
        rand_skip = getattr(self.param, self.source_field).rand_skip
        if rand_skip:
            self.start = int(rng().integers(rand_skip))
        self.next_batch = 0
        self.prefetcher = Prefetcher(self, max(1, self.param.data_param.prefetch))

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

    def stop(self):
        """End the prefetch thread and drop its batches (it restarts at the next forward)."""
        self.prefetcher.stop()

    def _next(self):
        batch = self.prefetcher.next(self.next_batch, f"layer '{self.name}' ({self.type})",
                                     self.describe_source)
        self.next_batch += 1
        return batch

    def describe_source(self):
        """The file or folder the layer reads, for error messages."""
        return repr(getattr(self, "source", "?"))

    # -- the contract ----------------------------------------------------------------------

    def forward_cpu(self, bottom, top):
        batch = self._next()
        for blob, values in zip(top, batch):
            if self.prefetcher.on_device:       # the thread made this batch's device copies
                blob.adopt_device_data(values)
            else:
                blob.data[...] = values

    def backward_cpu(self, top, propagate_down, bottom):
        """Nothing: a data layer has no bottoms."""

    forward_gpu = forward_cpu
    backward_gpu = backward_cpu


def record_order(count, rank, size):
    """The record indices of shard rank of size, in order."""
    return np.arange(rank, count, size)

