"""Data: batches of Caffe Datums read from an LMDB database  (Caffe's Data layer).

Each record's value is a serialized Datum: raw uint8 pixels (`data`), floats
(`float_data`) or an encoded image (`encoded`, decoded with Pillow), with its
`label`. Records are read in key order, looping at the end; `rand_skip` skips a
random number of records (below it) at the start; transform_param applies to
every item; batches are prefetched in a thread (see base_data.py). LevelDB has
no maintained Python binding that installs cleanly, so `backend: LEVELDB` is an
error that says how to convert to LMDB. Top 0 is (batch_size, C, H, W), top 1
(optional) the labels, (batch_size,). After `set_shard(rank, size)` the layer
keeps every size-th record of the looping stream from rank on, as Caffe's ranks.
"""
import os

from ..proto import cyffe_pb2 as pb
from ..proto.errors import DataError, NetError
from ..proto.paths import resolve_path
from .base_data import PrefetchingDataLayer, record_order
from .pipeline.databases import lmdb_keys, open_lmdb, parse_datum


class Data(PrefetchingDataLayer):
    """Datums from an LMDB, transformed and batched in a background thread."""

    type = "Data"
    source_field = "data_param"

    def open_source(self):
        p = self.param.data_param
        where = f"layer '{self.name}' (Data)"
        if not p.source:
            raise NetError(f"{where}: data_param.source is not set")
        self.source = resolve_path(p.source, self.base_dir)
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
