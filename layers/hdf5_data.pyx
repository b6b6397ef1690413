"""HDF5Data: tops read in batches of rows from HDF5 files  (Caffe's HDF5Data).

`source` is a text file listing .h5 files, one per line. In each file, top
``name`` reads the dataset of that name; all of a file's datasets have the same
number of rows (first axis). Batches take rows in order, running on into the
next file and wrapping around after the last, so a batch may span files. With
`shuffle`, the file order and the rows within each file are permuted (by the
layer's generator, seeded from the backend's stream at setup), and re-permuted at
every wrap, as Caffe does.
A top's shape is ``(batch_size,) + dataset.shape[1:]``. `set_shard(rank, size)` keeps
every size-th row of that stream, from row rank; `skip(batches)` moves on as
``batches`` forwards would.

Relative paths: `source` is looked for under the current directory, then under
`base_dir` (the net sets it to the prototxt's folder); a listed file under the
current directory, then beside the list file.
"""
import os

import numpy as np

from ..proto.errors import DataError, NetError
from ..proto.paths import resolve_path
from .backend import array_module, rng
from .base import Layer


class HDF5Data(Layer):
    """Rows of named HDF5 datasets, batch by batch, looping over rows and files."""

    type = "HDF5Data"
    bottoms = 0
    reshape_by_shapes = False       # the batch's shape is the layer's to say, every time
    tops = (1, None)
    base_dir = None             # the prototxt's folder, set by the net

    def setup(self, bottom, top):
        p = self.param.hdf5_data_param
        if p.batch_size <= 0:
            raise NetError(f"layer '{self.name}' (HDF5Data): batch_size must be positive, "
                           f"got {p.batch_size}")
        if self.param.HasField("transform_param"):
            raise NetError(f"layer '{self.name}' (HDF5Data): HDF5Data does not transform "
                           "data; drop transform_param")
        if len(self.param.top) != len(top):
            raise NetError(f"layer '{self.name}' (HDF5Data): the tops need names (each reads "
                           f"the dataset of its name), got {list(self.param.top)}")
        self.batch_size = p.batch_size
        self.shuffle = p.shuffle
        self.datasets = list(self.param.top)
        self.source = self._find(p.source, self.base_dir, "source file")
        self.files = self._read_list(self.source)
        # The permutations come from the layer's own generator, seeded once from the
        # backend's stream at setup: every rank of a data-parallel job (all seeded alike
        # until then) and a resumed run (skip) walk the same ones, whatever else draws.
        self.shuffler = np.random.default_rng(int(rng().integers(2 ** 63))) if self.shuffle \
            else None
        self.file_order = np.arange(len(self.files))
        if self.shuffle:
            self.file_order = self.shuffler.permutation(len(self.files))
        self.file_pos = 0
        self.rank, self.size = 0, 1     # the shard: every size-th row from row rank
        self.stream_pos = 0             # rows passed since the start, over files and passes
        self.row_shapes = None
        self._load(self.files[self.file_order[0]])
        self.reshape(bottom, top)

    @property
    def num_rows(self):
        """Rows in all the listed files together: one pass over the data."""
        import h5py
        total = 0
        for path in self.files:
            try:
                with h5py.File(path, "r") as f:
                    total += f[self.datasets[0]].shape[0]
            except (OSError, KeyError) as e:
                raise DataError(f"{path}: cannot read dataset '{self.datasets[0]}': {e}") from None
        return total

    # -- files ----------------------------------------------------------------

    def _find(self, path, folder, what):
        """path by proto.paths' rule (the working directory, then folder); a DataError
        saying where it looked when neither holds a file."""
        found = resolve_path(path, folder)
        if os.path.isfile(found):
            return found
        looked = [path] + ([os.path.join(folder, path)] if folder and not os.path.isabs(path)
                           else [])
        raise DataError(f"layer '{self.name}' (HDF5Data): {what} {path!r} not found "
                        f"(looked for {' and '.join(map(repr, looked))})")

    def _read_list(self, source):
        try:
            with open(source, encoding="utf-8") as f:
                lines = [line.strip() for line in f]
        except (OSError, UnicodeDecodeError) as err:
            raise DataError(f"layer '{self.name}' (HDF5Data): cannot read source file "
                            f"{source!r}: {err}") from None
        entries = [line for line in lines if line]
        if not entries:
            raise DataError(f"layer '{self.name}' (HDF5Data): source file {source!r} lists "
                            "no HDF5 files")
        folder = os.path.dirname(source)
        return [self._find(entry, folder, f"HDF5 file (listed in {source!r})")
                for entry in entries]

    def _load(self, path):
        """Read every top's dataset of one file into memory, in the layer's dtype."""
        import h5py     # here, not at the top: only nets with HDF5 data pay its import
        arrays = []
        try:
            with h5py.File(path, "r") as f:
                for name in self.datasets:
                    if not isinstance(f.get(name), h5py.Dataset):
                        raise DataError(f"layer '{self.name}' (HDF5Data): {path!r} has no "
                                        f"dataset {name!r}")
                    try:
                        arrays.append(np.asarray(f[name][()], dtype=self.dtype))
                    except (ValueError, TypeError) as err:
                        raise DataError(f"layer '{self.name}' (HDF5Data): dataset {name!r} in "
                                        f"{path!r} is not numeric: {err}") from None
        except OSError as err:
            if isinstance(err, DataError):
                raise
            raise DataError(f"layer '{self.name}' (HDF5Data): cannot read HDF5 file "
                            f"{path!r}: {err}") from None
        for name, a in zip(self.datasets, arrays):
            if a.ndim == 0 or a.shape[0] == 0:
                raise DataError(f"layer '{self.name}' (HDF5Data): dataset {name!r} in "
                                f"{path!r} has no rows (shape {a.shape})")
        rows = {name: a.shape[0] for name, a in zip(self.datasets, arrays)}
        if len(set(rows.values())) > 1:
            raise DataError(f"layer '{self.name}' (HDF5Data): the datasets in {path!r} have "
                            f"different numbers of rows: {rows}")
        row_shapes = [a.shape[1:] for a in arrays]
        if self.row_shapes is not None and row_shapes != self.row_shapes:
            raise DataError(f"layer '{self.name}' (HDF5Data): {path!r} has rows of shapes "
                            f"{row_shapes}, earlier files {self.row_shapes}")
        self.row_shapes = row_shapes
        self.arrays = arrays
        self.rows = arrays[0].shape[0]
        self.row_pos = 0
        self.row_order = self.shuffler.permutation(self.rows) if self.shuffle else None

    def _next_file(self):
        """After a file's last row: the next file (re-shuffled at the wrap), or the same one."""
        if len(self.files) > 1:
            self.file_pos += 1
            if self.file_pos == len(self.files):
                self.file_pos = 0
                if self.shuffle:
                    self.file_order = self.shuffler.permutation(len(self.files))
            self._load(self.files[self.file_order[self.file_pos]])
        else:
            self.row_pos = 0
            if self.shuffle:
                self.row_order = self.shuffler.permutation(self.rows)

    # -- the contract -----------------------------------------------------------

    def reshape(self, bottom, top):
        for t, shape in zip(top, self.row_shapes):
            t.reshape((self.batch_size,) + shape)

    def forward_cpu(self, bottom, top):
        self._take(self.batch_size, top)

    def _take(self, count, top=None):
        """Move past the next count rows of this shard, writing them into the tops if given."""
        filled = 0
        while filled < count:
            left = self.rows - self.row_pos
            first = (self.rank - self.stream_pos) % self.size      # first row of this shard
            offsets = np.arange(first, left, self.size)[:count - filled]
            n = len(offsets)
            if n:
                if top is not None:
                    picked = self.row_pos + offsets
                    if self.row_order is not None:
                        picked = self.row_order[picked]
                    xp = array_module(top[0].data)
                    for t, a in zip(top, self.arrays):
                        t.data[filled:filled + n] = xp.asarray(a[picked])
                filled += n
            used = offsets[-1] + 1 if n and filled == count else left
            self.row_pos += used
            self.stream_pos += used
            if self.row_pos == self.rows:
                self._next_file()

    def set_shard(self, rank, size):
        """Read only every size-th row of the stream, starting at row rank (data-parallel)."""
        if not 0 <= rank < size:
            raise NetError(f"layer '{self.name}' (HDF5Data): shard {rank} of {size} "
                           "does not exist")
        self.rank, self.size = int(rank), int(size)

    def skip(self, batches):
        """Move on as if `batches` forwards had run (resume at an iteration)."""
        self._take(int(batches) * self.batch_size)

    def backward_cpu(self, top, propagate_down, bottom):
        """Nothing: HDF5Data has no bottoms."""

    forward_gpu = forward_cpu
    backward_gpu = backward_cpu
