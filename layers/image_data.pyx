"""ImageData: batches of image files named in a list file  (Caffe's ImageData layer).

Each line of `source` is ``path label`` (split at the last space, so paths may
hold spaces); paths are under `root_folder`. Images are read with Pillow as
Caffe reads them with OpenCV: BGR, or 1-channel gray when `is_color` is false,
resized (bilinear) to new_height x new_width when both are set. `shuffle`
permutes the list at setup and again at each pass (from the backend's random
stream); `rand_skip` starts at a random line below it; transform_param applies.
Every image of the run must have one shape (set new_height/new_width for
images of mixed sizes). Top 0 is (batch_size, C, H, W), top 1 the labels.
"""
import os

import numpy as np

from ..proto.errors import DataError, NetError, at
from ..proto.paths import resolve_path
from .base_data import PrefetchingDataLayer, record_order
from .pipeline.images import read_image


def read_image_list(path, where=None):
    """[(path, label)] from a list file of ``path label`` lines."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{at(where)}cannot read list file {path!r}: {err}") from None
    entries = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        name, _, label = line.rstrip().rpartition(" ")
        try:
            entries.append((name, int(label)))
        except ValueError:
            raise DataError(f"{path}:{number}: expected 'path label' with an integer "
                            f"label, got {line!r}") from None
        if not name:
            raise DataError(f"{path}:{number}: expected 'path label', got {line!r}")
    if not entries:
        raise DataError(f"{at(where)}list file {path!r} names no images")
    return entries


class ImageData(PrefetchingDataLayer):
    """Images from a list file, resized, transformed and batched in a background thread."""

    type = "ImageData"
    source_field = "image_data_param"

    def open_source(self):
        p = self.param.image_data_param
        self.where = f"layer '{self.name}' (ImageData)"
        if not p.source:
            raise NetError(f"{self.where}: image_data_param.source is not set")
        self.source = resolve_path(p.source, self.base_dir)
        self.entries = read_image_list(self.source, self.where)
        self.root_folder = p.root_folder
        if (p.new_height > 0) != (p.new_width > 0) or p.new_height < 0 or p.new_width < 0:
            raise NetError(f"{self.where}: new_height and new_width must both be set (positive) "
                           f"or both be 0, got {p.new_height} and {p.new_width}")
        self.shape_args = (p.new_height, p.new_width, p.is_color)
        self.shuffle = p.shuffle
        self.order = record_order(len(self.entries), 0, 1)
        self._epoch = None
        return p.batch_size, self._read(0).shape

    def _read(self, index):
        name = self.entries[index][0]
        return read_image(os.path.join(self.root_folder, name), *self.shape_args,
                          where=f"{self.where}: {self.source}")

    def set_shard(self, rank, size):
        self.stop()
        self.order = record_order(len(self.entries), rank, size)
        self._epoch = None
        super().set_shard(rank, size)

    @property
    def num_records(self):
        return len(self.order)

    def _index(self, position):
        """The entry at a stream position: the shard in order, or its pass's permutation."""
        epoch, offset = divmod(position, len(self.order))
        if not self.shuffle:
            return self.order[offset]
        if self._epoch is None or self._epoch[0] != epoch:
            permutation = np.random.default_rng((self.seed, 1, epoch)).permutation(self.order)
            self._epoch = (epoch, permutation)
        return self._epoch[1][offset]

    def load_item(self, position, data, generator, where):
        index = self._index(position)
        self.transformer.transform(self._read(index), data, generator,
                                   f"{where}: {self.entries[index][0]}")
        return self.entries[index][1]
