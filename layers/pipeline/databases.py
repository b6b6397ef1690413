"""Datum databases: reading and writing Caffe's LMDB records."""
import os

from google.protobuf.message import DecodeError

from ...proto import cyffe_pb2 as pb
from ...proto.atomic import atomic_path
from ...proto.errors import DataError, at

_open_envs = {}      # LMDB allows one Environment per database and process: nets share it


def open_lmdb(path, where=None):
    """A read-only lmdb Environment at path; a DataError naming it if it cannot be opened."""
    import lmdb
    if not os.path.exists(path):
        raise DataError(f"{at(where)}LMDB {path!r} not found")
    subdir = os.path.isdir(path)
    data_file = os.path.join(path, "data.mdb") if subdir else path
    try:
        info = os.stat(data_file)
    except OSError as err:
        raise DataError(f"{at(where)}{path!r} is not an LMDB: {err.strerror or err}") from None
    key = (os.path.realpath(path), info.st_ino, info.st_mtime_ns, info.st_size)
    env = _open_envs.get(key)
    if env is None:
        try:
            env = lmdb.open(path, readonly=True, lock=False, readahead=False, subdir=subdir,
                            max_readers=64)
        except lmdb.Error as err:
            raise DataError(f"{at(where)}{path!r} is not a readable LMDB: {err}") from None
        # Pages past the end of a truncated file would be a SIGBUS when read: check first.
        needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
        if needed > info.st_size:
            env.close()
            raise DataError(f"{at(where)}LMDB {path!r} is truncated ({info.st_size} bytes, its "
                            f"pages need {needed})")
        _open_envs[key] = env
    return env


def lmdb_keys(env, path, where=None):
    """Every key of an LMDB, in its (sorted) order."""
    import lmdb
    try:
        with env.begin() as txn:
            return list(txn.cursor().iternext(keys=True, values=False))
    except lmdb.Error as err:
        raise DataError(f"{at(where)}cannot read LMDB {path!r}: {err}") from None


def parse_datum(value, where):
    """The Datum serialized in value."""
    datum = pb.Datum()
    try:
        datum.ParseFromString(value)
    except DecodeError as err:
        raise DataError(f"{where}: not a Datum: {err}") from None
    return datum


def write_lmdb(path, records, map_size):
    """Write (key, value) pairs into a new LMDB folder at path, atomically.

    The database is built under a temporary name beside path and renamed when complete
    (proto.atomic), so an error (or Ctrl-C) never leaves a partial database. path must not
    exist yet. map_size is the most bytes the database may hold.
    """
    import lmdb
    path = os.fspath(path)
    if os.path.exists(path):
        raise DataError(f"{path}: already exists; remove it or choose another name")
    with atomic_path(path) as tmp:
        try:
            env = lmdb.open(tmp, map_size=max(int(map_size), 1 << 20), subdir=True)
        except lmdb.Error as err:
            raise DataError(f"{path}: cannot create LMDB: {err}") from None
        try:
            txn = env.begin(write=True)
            for n, (key, value) in enumerate(records, 1):
                txn.put(key, value)
                if n % 1000 == 0:
                    txn.commit()
                    txn = env.begin(write=True)
            txn.commit()
        except lmdb.Error as err:       # a full disk or map, an I/O error
            raise DataError(f"{path}: cannot write LMDB: {err}") from None
        finally:
            env.close()


DATABASE_BACKENDS = ("lmdb", "leveldb")


def write_database(path, records, map_size, backend="lmdb"):
    """Write (key, value) pairs into a new database of `backend` (Caffe's --backend), atomically."""
    if backend == "lmdb":
        return write_lmdb(path, records, map_size)
    if backend in DATABASE_BACKENDS:
        raise DataError(f"{path}: writing a {backend} database is not supported yet; "
                        "use --backend=lmdb (Caffe's Data layer reads either)")
    raise DataError(f"{path}: unknown database backend {backend!r}; known: "
                    f"{', '.join(DATABASE_BACKENDS)}")
