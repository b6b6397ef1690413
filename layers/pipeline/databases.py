"""Datum databases: reading and writing Caffe's LMDB and LevelDB records.

LMDB comes with cyffe (the lmdb package); LevelDB needs plyvel, the `leveldb`
extra (pip install "cyffe[leveldb]"). Either is read through open_database,
which gives every key in the database's (sorted) order and each record's value.
"""
import os

from google.protobuf.message import DecodeError

from ...proto import cyffe_pb2 as pb
from ...proto.atomic import atomic_path
from ...proto.errors import DataError, at

BACKENDS = {"lmdb": pb.DataParameter.LMDB, "leveldb": pb.DataParameter.LEVELDB}
_open_envs = {}      # LMDB allows one Environment per database and process: nets share it
_open_leveldbs = {}  # LevelDB locks a database to one handle: nets of a process share it


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


class LmdbRecords:
    """The records of an LMDB: `keys` in order, get(key) the value of one."""

    def __init__(self, path, where):
        self.path = path
        self.env = open_lmdb(path, where)
        self.keys = lmdb_keys(self.env, path, where)

    def get(self, key, where):
        import lmdb
        try:
            with self.env.begin() as txn:
                return txn.get(key)
        except lmdb.Error as err:
            raise DataError(f"{where}: cannot read LMDB {self.path!r}: {err}") from None


def _plyvel(path, where):
    try:
        import plyvel
    except ImportError:
        raise DataError(f"{where}: reading or writing the LevelDB {path!r} needs plyvel: "
                        "pip install 'cyffe[leveldb]' (or convert the data to LMDB and set "
                        "backend: LMDB)") from None
    return plyvel


class LevelDBRecords:
    """The records of a LevelDB (Caffe's default backend): `keys` in order, get(key)."""

    def __init__(self, path, where):
        plyvel = _plyvel(path, where)
        self.path = path
        if not os.path.isdir(path):
            raise DataError(f"{where}: LevelDB {path!r} not found")
        key = os.path.realpath(path)
        self.db = _open_leveldbs.get(key)
        if self.db is None:
            try:
                self.db = plyvel.DB(path, create_if_missing=False)
            except plyvel.Error as err:
                hint = (" (it looks like an LMDB: set backend: LMDB)"
                        if os.path.isfile(os.path.join(path, "data.mdb")) else "")
                raise DataError(f"{where}: {path!r} is not a readable LevelDB: {err}{hint}") \
                    from None
            _open_leveldbs[key] = self.db
        try:
            self.keys = list(self.db.iterator(include_value=False))
        except plyvel.Error as err:
            raise DataError(f"{where}: cannot read LevelDB {path!r}: {err}") from None

    def get(self, key, where):
        import plyvel
        try:
            return self.db.get(key)
        except plyvel.Error as err:
            raise DataError(f"{where}: cannot read LevelDB {self.path!r}: {err}") from None


def open_database(path, backend, where):
    """The records of a Datum database: LmdbRecords or LevelDBRecords, by DataParameter.backend."""
    if backend == pb.DataParameter.LEVELDB:
        return LevelDBRecords(path, where)
    return LmdbRecords(path, where)


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


def write_leveldb(path, records):
    """Write (key, value) pairs into a new LevelDB folder at path, atomically (as write_lmdb)."""
    path = os.fspath(path)
    plyvel = _plyvel(path, path)
    if os.path.exists(path):
        raise DataError(f"{path}: already exists; remove it or choose another name")
    with atomic_path(path) as tmp:
        db = plyvel.DB(tmp, create_if_missing=True, error_if_exists=True)
        try:
            batch = db.write_batch()
            for n, (key, value) in enumerate(records, 1):
                batch.put(key, value)
                if n % 1000 == 0:
                    batch.write()
                    batch = db.write_batch()
            batch.write()
        finally:
            db.close()


def write_database(path, records, backend, map_size):
    """Write (key, value) pairs into a new database of backend "lmdb" or "leveldb", atomically.

    map_size is the most bytes an LMDB may hold (LevelDB grows as it needs).
    """
    if backend not in BACKENDS:
        raise DataError(f"{path}: unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend == "leveldb":
        write_leveldb(path, records)
    else:
        write_lmdb(path, records, map_size)
