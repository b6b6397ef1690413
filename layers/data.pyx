"""Data: batches of Caffe Datums read from an LMDB database  (Caffe's Data layer).

Each record's value is a serialized Datum: raw uint8 pixels (`data`), floats
(`float_data`) or an encoded image (`encoded`, decoded with Pillow), with its
`label`. Records are read in key order, looping at the end; `rand_skip` skips a
random number of records (below it) at the start; transform_param applies to
every item; batches are prefetched in a thread (see data_prefetch). LevelDB has
no maintained Python binding that installs cleanly, so `backend: LEVELDB` is an
error that says how to convert to LMDB. Top 0 is (batch_size, C, H, W), top 1
(optional) the labels, (batch_size,). After `set_shard(rank, size)` the layer
keeps every size-th record of the looping stream from rank on, as Caffe's ranks.
"""
import os

from google.protobuf.message import DecodeError

from ..proto import cyffe_pb2 as pb
from ..proto.errors import DataError, NetError
from .data_prefetch import PrefetchingDataLayer, record_order
from .data_transformer import beside


_open_envs = {}      # LMDB allows one Environment per database and process: nets share it


def open_lmdb(path, where):
    """A read-only lmdb Environment at path; a DataError naming it if it cannot be opened."""
    import lmdb
    if not os.path.exists(path):
        raise DataError(f"{where}: LMDB {path!r} not found")
    subdir = os.path.isdir(path)
    data_file = os.path.join(path, "data.mdb") if subdir else path
    try:
        info = os.stat(data_file)
    except OSError as err:
        raise DataError(f"{where}: {path!r} is not an LMDB: {err.strerror or err}") from None
    key = (os.path.realpath(path), info.st_ino, info.st_mtime_ns, info.st_size)
    env = _open_envs.get(key)
    if env is None:
        try:
            env = lmdb.open(path, readonly=True, lock=False, readahead=False, subdir=subdir,
                            max_readers=64)
        except lmdb.Error as err:
            raise DataError(f"{where}: {path!r} is not a readable LMDB: {err}") from None
        # Pages past the end of a truncated file would be a SIGBUS when read: check first.
        needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
        if needed > info.st_size:
            env.close()
            raise DataError(f"{where}: LMDB {path!r} is truncated ({info.st_size} bytes, its "
                            f"pages need {needed})")
        _open_envs[key] = env
    return env


def lmdb_keys(env, path, where):
    """Every key of an LMDB, in its (sorted) order."""
    import lmdb
    try:
        with env.begin() as txn:
            return list(txn.cursor().iternext(keys=True, values=False))
    except lmdb.Error as err:
        raise DataError(f"{where}: cannot read LMDB {path!r}: {err}") from None


def parse_datum(value, where):
    """The Datum serialized in value."""
    datum = pb.Datum()
    try:
        datum.ParseFromString(value)
    except DecodeError as err:
        raise DataError(f"{where}: not a Datum: {err}") from None
    return datum


class Data(PrefetchingDataLayer):
    """Datums from an LMDB, transformed and batched in a background thread."""

    type = "Data"
    source_field = "data_param"

    def open_source(self):
        p = self.param.data_param
        where = f"layer '{self.name}' (Data)"
        if not p.source:
            raise NetError(f"{where}: data_param.source is not set")
        self.source = beside(p.source, self.base_dir)
        if p.backend != pb.DataParameter.LMDB:
            hint = (" (it looks like an LMDB: set backend: LMDB)"
                    if os.path.isfile(os.path.join(self.source, "data.mdb")) else "")
            raise DataError(f"{where}: {self.source!r}: LevelDB is not supported (no maintained "
                            "Python binding installs cleanly); convert the data to LMDB "
                            "(e.g. with Caffe's convert_imageset -backend lmdb, or cyffe's "
                            f"convert_imageset / convert_mnist) and set backend: LMDB{hint}")
        self.env = open_lmdb(self.source, where)
        self.keys = lmdb_keys(self.env, self.source, where)
        if not self.keys:
            raise DataError(f"{where}: LMDB {self.source!r} is empty")
        first = self._datum(0, where)
        item = self.transformer.to_array(first, self._where_key(0))
        return p.batch_size, item.shape

    def _where_key(self, index):
        return f"{self.source}: record {self.keys[index].decode(errors='replace')!r}"

    def _datum(self, index, where):
        import lmdb
        try:
            with self.env.begin() as txn:
                value = txn.get(self.keys[index])
        except lmdb.Error as err:
            raise DataError(f"{where}: cannot read LMDB {self.source!r}: {err}") from None
        if value is None:
            raise DataError(f"{where}: {self._where_key(index)} vanished while reading")
        return parse_datum(value, f"{where}: {self._where_key(index)}")

    @property
    def num_records(self):
        return len(record_order(len(self.keys), self.rank, self.size))

    def load_item(self, position, data, generator, where):
        # As Caffe's DataLayer::Skip, rank r of N keeps every N-th record of the looping
        # stream (not of one pass): together the ranks read, batch by batch, the records
        # of one process with an N-times larger batch, whatever the number of records.
        index = (position * self.size + self.rank) % len(self.keys)
        datum = self._datum(index, where)
        place = f"{where}: {self._where_key(index)}"
        self.transformer.transform(self.transformer.to_array(datum, place), data, generator, place)
        return datum.label


def write_lmdb(path, records, map_size):
    """Write (key, value) pairs into a new LMDB folder at path, atomically.

    The database is built in a temporary folder beside path and renamed when
    complete, so an error (or Ctrl-C) never leaves a partial database. path
    must not exist yet. map_size is the most bytes the database may hold.
    """
    import shutil
    import tempfile

    import lmdb
    path = os.fspath(path)
    if os.path.exists(path):
        raise DataError(f"{path}: already exists; remove it or choose another name")
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".tmp-" + os.path.basename(path))
    try:
        env = lmdb.open(tmp, map_size=max(int(map_size), 1 << 20), subdir=True)
        try:
            txn = env.begin(write=True)
            for n, (key, value) in enumerate(records, 1):
                txn.put(key, value)
                if n % 1000 == 0:
                    txn.commit()
                    txn = env.begin(write=True)
            txn.commit()
        finally:
            env.close()
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
