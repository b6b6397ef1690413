"""HDF5Data: tops read in batches of rows from HDF5 files  (Caffe's HDF5Data).

`source` is a text file listing .h5 files, one per line. In each file, top
``name`` reads the dataset of that name; all of a file's datasets have the same
number of rows (first axis). Batches take rows in order, running on into the
next file and wrapping around after the last, so a batch may span files. With
`shuffle`, the file order and the rows within each file are permuted, and
re-permuted at every wrap, as Caffe does: pass p's file order and the row order of
its k-th file come from generators seeded (seed, p) and (seed, p, k), the seed drawn
from the backend's stream at setup, so a position in the stream alone says where
the layer is.
A top's shape is ``(batch_size,) + dataset.shape[1:]``. `set_shard(rank, size)` keeps
every size-th row of that stream, from row rank; `skip(batches)` moves on as
``batches`` forwards would, by arithmetic on the files' row counts (reading one file).

Relative paths: `source` is looked for under the current directory, then under
`base_dir` (the net sets it to the prototxt's folder); a listed file under the
current directory, then beside the list file.
"""
import os

import numpy as np

from ..proto.errors import DataError, NetError
from ..proto.hdf5_format import read_array
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
        # The permutations' seed is drawn once from the backend's stream at setup: every
        # rank of a data-parallel job (all seeded alike until then) and a resumed run
        # (skip) walk the same ones, whatever else draws.
        self.seed = int(rng().integers(2 ** 63)) if self.shuffle else None
        self.rank, self.size = 0, 1     # the shard: every size-th row from row rank
        self.stream_pos = 0             # rows passed since the start, over files and passes
        self.row_shapes = None
        self.loaded = None              # the index of the listed file in memory
        self.file_rows = None           # rows of each listed file, counted when needed
        self.epoch = None
        self._open(0, 0)
        self.reshape(bottom, top)

    @property
    def num_rows(self):
        """Rows in all the listed files together: one pass over the data."""
        return sum(self._file_rows())

    def _file_rows(self):
        """The rows of each listed file, from the files' metadata (no data read)."""
        import h5py
        if self.file_rows is None:
            rows = []
            for path in self.files:
                try:
                    with h5py.File(path, "r") as f:
                        rows.append(self._rows_of(f.get(self.datasets[0]), path,
                                                  self.datasets[0]))
                except (OSError, RuntimeError) as err:
                    if isinstance(err, DataError):
                        raise
                    raise DataError(f"layer '{self.name}' (HDF5Data): cannot read HDF5 file "
                                    f"{path!r}: {err}") from None
            self.file_rows = rows
        return self.file_rows

    def _rows_of(self, node, path, name):
        """The rows (first axis) of dataset `name` of a file, checked: a dataset with rows."""
        import h5py
        if not isinstance(node, h5py.Dataset):
            raise DataError(f"layer '{self.name}' (HDF5Data): {path!r} has no dataset {name!r}")
        if not node.shape or node.shape[0] == 0:
            raise DataError(f"layer '{self.name}' (HDF5Data): dataset {name!r} in {path!r} has "
                            f"no rows (shape {node.shape})")
        return int(node.shape[0])

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
        """Read every top's dataset of one file into memory, in the layer's dtype; each is
        checked (a numeric dataset with rows, of a blob's size at most) before it is read."""
        import h5py     # here, not at the top: only nets with HDF5 data pay its import
        arrays = []
        try:
            with h5py.File(path, "r") as f:
                for name in self.datasets:
                    node = f.get(name)
                    self._rows_of(node, path, name)
                    values = read_array(node, f"layer '{self.name}' (HDF5Data): dataset "
                                              f"{name!r} in {path!r}")
                    arrays.append(np.asarray(values, dtype=self.dtype))
        except (OSError, RuntimeError) as err:
            if isinstance(err, DataError):
                raise
            raise DataError(f"layer '{self.name}' (HDF5Data): cannot read HDF5 file "
                            f"{path!r}: {err}") from None
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

    def _order(self, epoch):
        """The order of the listed files in pass `epoch`."""
        if not self.shuffle:
            return np.arange(len(self.files))
        return np.random.default_rng((self.seed, epoch)).permutation(len(self.files))

    def _open(self, epoch, slot):
        """Stand at the first row of the slot-th file of pass `epoch` (loading it if needed)."""
        if epoch != self.epoch:
            self.file_order = self._order(epoch)
        self.epoch, self.file_pos = epoch, slot
        index = int(self.file_order[slot])
        if index != self.loaded:
            self.loaded = None
            self._load(self.files[index])
            self.loaded = index
        self.row_pos = 0
        self.row_order = np.random.default_rng((self.seed, epoch, slot)).permutation(
            self.rows) if self.shuffle else None

    def _next_file(self):
        """After a file's last row: the next file, or the first of the next pass."""
        if self.file_pos + 1 < len(self.files):
            self._open(self.epoch, self.file_pos + 1)
        else:
            self._open(self.epoch + 1, 0)

    def _seek(self, position):
        """Stand at a stream position, found from the files' row counts."""
        rows = self._file_rows()
        epoch, offset = divmod(position, sum(rows))
        order = self._order(epoch)
        slot = 0
        while offset >= rows[order[slot]]:
            offset -= rows[order[slot]]
            slot += 1
        self._open(epoch, slot)
        if self.rows != rows[order[slot]]:
            raise DataError(f"layer '{self.name}' (HDF5Data): {self.files[order[slot]]!r} "
                            "changed while it was read")
        self.row_pos = offset
        self.stream_pos = position

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
        """Move on as if `batches` forwards had run (resume at an iteration), at once."""
        count = int(batches) * self.batch_size
        if count > 0:
            first = self.stream_pos + (self.rank - self.stream_pos) % self.size
            self._seek(first + (count - 1) * self.size + 1)

    def backward_cpu(self, top, propagate_down, bottom):
        """Nothing: HDF5Data has no bottoms."""

    forward_gpu = forward_cpu
    backward_gpu = backward_cpu
