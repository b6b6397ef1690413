"""HDF5Output: writes its two bottoms to an HDF5 file  (Caffe's HDF5Output layer).

The file `hdf5_output_param.file_name` is created (truncated) at setup with
datasets ``data`` and ``label``; every forward appends the bottoms' rows to
them and flushes, so the file holds every batch forwarded so far (Caffe
rewrites the datasets, which fails on the second batch). Backward does nothing.
"""
import numpy as np

from ..proto.errors import DataError, NetError
from .backend import array_module
from .base import Layer

DATASETS = ("data", "label")


class HDF5Output(Layer):
    """Appends bottom 0 to dataset 'data' and bottom 1 to 'label' at every forward."""

    type = "HDF5Output"
    bottoms = 2
    tops = 0

    def setup(self, bottom, top):
        import h5py
        self.file_name = self.param.hdf5_output_param.file_name
        if not self.file_name:
            raise NetError(f"layer '{self.name}' (HDF5Output): hdf5_output_param.file_name "
                           "is not set")
        for name, b in zip(DATASETS, bottom):
            if not b.shape:
                raise self.shape_error(f"bottom {name!r} has no axes (shape ()); it needs "
                                       "rows")
        try:
            self.file = h5py.File(self.file_name, "w")
        except OSError as err:
            raise DataError(f"layer '{self.name}' (HDF5Output): cannot create "
                            f"{self.file_name!r}: {err}") from None
        for name, b in zip(DATASETS, bottom):
            self.file.create_dataset(name, shape=(0,) + b.shape[1:], dtype=self.dtype,
                                     maxshape=(None,) + b.shape[1:], chunks=True)

    def reshape(self, bottom, top):
        if not bottom[0].shape or not bottom[1].shape:
            raise self.shape_error(f"the bottoms need rows, got shapes {bottom[0].shape} and "
                                   f"{bottom[1].shape}")
        if bottom[0].shape[0] != bottom[1].shape[0]:
            raise self.shape_error(f"data and label have different numbers of rows: "
                                   f"{bottom[0].shape} and {bottom[1].shape}")
        for name, b in zip(DATASETS, bottom):
            if self.file[name].shape[1:] != b.shape[1:]:
                raise self.shape_error(f"bottom {name!r} changed its row shape to "
                                       f"{b.shape[1:]}, the file has {self.file[name].shape[1:]}")

    def forward_cpu(self, bottom, top):
        for name, b in zip(DATASETS, bottom):
            dataset = self.file[name]
            n = len(dataset)
            dataset.resize(n + b.shape[0], axis=0)
            values = b.data.get() if array_module(b.data) is not np else b.data
            dataset[n:] = values
        self.file.flush()

    def backward_cpu(self, top, propagate_down, bottom):
        """Nothing, as Caffe: the written blobs take no gradient."""

    def close(self):
        """Close the file (also done when the layer is garbage-collected)."""
        if getattr(self, "file", None) is not None and self.file.id.valid:
            self.file.close()

    def __del__(self):
        self.close()

    forward_gpu = forward_cpu
    backward_gpu = backward_cpu
