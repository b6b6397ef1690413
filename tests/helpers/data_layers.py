"""Small LMDBs and LevelDBs of Datums, and a way to run a data layer by itself, for the tests."""
import numpy as np

from cyffe.layers.blob import Blob
from cyffe.layers.pipeline.databases import write_database
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from google.protobuf import text_format


def raw_items(count, shape=(2, 4, 5), seed=0):
    """(items (count, C, H, W) uint8, labels (count,)) with distinct values."""
    r = np.random.default_rng(seed)
    return r.integers(0, 256, (count,) + shape).astype(np.uint8), np.arange(count) * 3 + 1


def make_lmdb(path, items, labels, backend="lmdb"):
    """An LMDB (or a LevelDB) of raw-pixel Datums under Caffe's %08d keys."""
    def records():
        for i, (item, label) in enumerate(zip(items, labels)):
            c, h, w = item.shape
            datum = pb.Datum(channels=c, height=h, width=w, data=item.tobytes(), label=int(label))
            yield b"%08d" % i, datum.SerializeToString()
    write_database(path, records(), backend, map_size=1 << 24)
    return str(path)


def make_layer(text, phase=pb.TRAIN, tops=2, base_dir=None):
    """A data layer built from a LayerParameter in prototxt text, set up with fresh top blobs."""
    param = text_format.Parse(text, pb.LayerParameter())
    layer = layer_class(param.type)(param, phase)
    layer.base_dir = base_dir
    top = [Blob() for _ in range(tops)]
    layer.setup([], top)
    layer.reshape([], top)
    return layer, top


def forward(layer, top):
    """One forward; copies of (data, label)."""
    layer.forward([], top)
    return top[0].data.copy(), (top[1].data.copy() if len(top) > 1 else None)
