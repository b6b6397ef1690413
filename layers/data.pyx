"""Data: batches of Caffe Datums read from an LMDB or LevelDB database (Caffe's Data layer).

Each record's value is a serialized Datum: raw uint8 pixels (`data`), floats
(`float_data`) or an encoded image (`encoded`, decoded with Pillow), with its
`label`. Records are read in key order, looping at the end; `rand_skip` skips a
random number of records (below it) at the start; transform_param applies to
every item; batches are prefetched in a thread (see base_data.py). `backend:
LEVELDB` (Caffe's default) needs plyvel (pip install "cyffe[leveldb]"); as in
Caffe, one process at a time can open a LevelDB. Top 0 is (batch_size, C, H, W), top 1
(optional) the labels, (batch_size,). After `set_shard(rank, size)` the layer
keeps every size-th record of the looping stream from rank on, as Caffe's ranks.
"""
from ..proto import cyffe_pb2 as pb
from ..proto.errors import DataError, NetError
from ..proto.paths import resolve_path
from .base_data import PrefetchingDataLayer, record_order
from .pipeline.databases import open_database, parse_datum


class Data(PrefetchingDataLayer):
    """Datums from an LMDB or a LevelDB, transformed and batched in a background thread."""

    type = "Data"
    source_field = "data_param"

    def open_source(self):
        p = self.param.data_param
        where = f"layer '{self.name}' (Data)"
        if not p.source:
            raise NetError(f"{where}: data_param.source is not set")
        self.source = resolve_path(p.source, self.base_dir)
        self.records = open_database(self.source, p.backend, where)
        self.keys = self.records.keys
        if not self.keys:
            kind = pb.DataParameter.DB.Name(p.backend)
            raise DataError(f"{where}: {kind} {self.source!r} is empty")
        first = self._datum(0, where)
        item = self.transformer.to_array(first, self._where_key(0))
        return p.batch_size, item.shape

    def _where_key(self, index):
        return f"{self.source}: record {self.keys[index].decode(errors='replace')!r}"

    def _datum(self, index, where):
        value = self.records.get(self.keys[index], where)
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
