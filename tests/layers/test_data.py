"""Data over LMDB and LevelDB: Datums in key order, looping, transform_param, prefetch,
shard/skip, bad input."""
import io
import threading

import numpy as np
import pytest

import cyffe
from cyffe.layers.backend import set_random_seed
from cyffe.layers.pipeline.databases import write_lmdb
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import DataError
from helpers.data_layers import forward, make_layer, make_lmdb, raw_items


def data_layer(source, batch_size=3, extra="", transform="", phase=pb.TRAIN, tops=2):
    text = (f'name: "d" type: "Data" top: "data" top: "label" '
            f'data_param {{ source: "{source}" batch_size: {batch_size} backend: LMDB {extra} }} '
            f'transform_param {{ {transform} }}')
    return make_layer(text, phase, tops)


@pytest.fixture
def db(tmp_path):
    items, labels = raw_items(7)
    return make_lmdb(tmp_path / "db", items, labels), items, labels


def test_batches_in_key_order_looping_at_the_end(db):
    source, items, labels = db
    layer, top = data_layer(source)
    assert top[0].shape == (3, 2, 4, 5) and top[1].shape == (3,)
    for rows in ([0, 1, 2], [3, 4, 5], [6, 0, 1], [2, 3, 4]):
        data, label = forward(layer, top)
        np.testing.assert_array_equal(data, items[rows])
        np.testing.assert_array_equal(label, labels[rows])
    layer.stop()


def test_data_only_top(db):
    source, items, _ = db
    layer, top = data_layer(source, tops=1)
    np.testing.assert_array_equal(forward(layer, top)[0], items[:3])
    layer.stop()


def test_transform_param_applies_to_every_item(db):
    source, items, _ = db
    layer, top = data_layer(source, transform="scale: 0.5 crop_size: 2 mean_value: 10",
                            phase=pb.TEST)
    data, _ = forward(layer, top)
    np.testing.assert_allclose(data, (items[:3, :, 1:3, 1:3] - 10.0) * 0.5)
    layer.stop()


def test_float_data_and_encoded_datums(tmp_path):
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.full((3, 2, 3), (10, 20, 30), np.uint8)).save(buf, format="PNG")
    records = [(b"a", pb.Datum(channels=3, height=3, width=2, float_data=np.arange(18.0) / 4,
                               label=1)),
               (b"b", pb.Datum(data=buf.getvalue(), encoded=True, label=2))]
    write_lmdb(tmp_path / "mixed", ((k, d.SerializeToString()) for k, d in records), 1 << 20)
    layer, top = data_layer(tmp_path / "mixed", batch_size=2)
    data, label = forward(layer, top)
    np.testing.assert_allclose(data[0], (np.arange(18.0) / 4).reshape(3, 3, 2))
    np.testing.assert_array_equal(data[1, :, 0, 0], [30, 20, 10])      # BGR
    np.testing.assert_array_equal(label, [1, 2])
    layer.stop()


def test_prefetch_fills_a_bounded_queue_in_a_thread(db):
    source, items, _ = db
    layer, top = data_layer(source, batch_size=1, extra="prefetch: 2")
    forward(layer, top)
    assert layer.prefetcher._thread.is_alive() and layer.prefetcher._thread is not threading.current_thread()
    assert layer.prefetcher._queue.maxsize == 2
    layer.stop()
    assert layer.prefetcher._thread is None
    np.testing.assert_array_equal(forward(layer, top)[0], items[1:2])   # restarts where it was
    layer.stop()


def test_an_error_in_the_thread_is_raised_in_forward_naming_the_record(tmp_path):
    items, labels = raw_items(4)
    good = [pb.Datum(channels=2, height=4, width=5, data=x.tobytes()).SerializeToString()
            for x in items]
    write_lmdb(tmp_path / "bad", [(b"0", good[0]), (b"1", good[1]), (b"2", b"\xff\xfe junk")],
               1 << 20)
    layer, top = data_layer(tmp_path / "bad", batch_size=2)
    forward(layer, top)
    with pytest.raises(DataError, match=r"bad.*record '2'.*not a Datum"):
        forward(layer, top)
    layer.stop()


def test_item_of_another_shape_is_an_error(tmp_path):
    a = pb.Datum(channels=1, height=2, width=2, data=bytes(4)).SerializeToString()
    b = pb.Datum(channels=1, height=3, width=2, data=bytes(6)).SerializeToString()
    write_lmdb(tmp_path / "shapes", [(b"0", a), (b"1", b)], 1 << 20)
    layer, top = data_layer(tmp_path / "shapes", batch_size=2)
    with pytest.raises(DataError, match=r"record '1'.*\(1, 3, 2\).*\(1, 2, 2\)"):
        forward(layer, top)


def test_shard_reads_every_size_th_record_from_rank(db):
    source, items, _ = db
    layer, top = data_layer(source, batch_size=2)
    layer.set_shard(1, 3)   # stream positions 1, 4, 7, 10, 13, 16 of the 7 looping records
    for rows in ([1, 4], [0, 3], [6, 2]):
        np.testing.assert_array_equal(forward(layer, top)[0], items[rows])
    layer.stop()


def test_skip_gives_the_batch_a_straight_run_would_give(db):
    source, _, _ = db
    set_random_seed(5)
    straight, top_a = data_layer(source, transform="mirror: true crop_size: 3")
    set_random_seed(5)
    resumed, top_b = data_layer(source, transform="mirror: true crop_size: 3")
    expected = [forward(straight, top_a)[0] for _ in range(5)][3:]
    resumed.skip(3)
    for want in expected:
        np.testing.assert_array_equal(forward(resumed, top_b)[0], want)
    straight.stop(), resumed.stop()


def test_rand_skip_starts_below_it(db):
    source, items, _ = db
    set_random_seed(3)
    layer, top = data_layer(source, batch_size=1, extra="rand_skip: 5")
    assert 0 <= layer.start < 5
    np.testing.assert_array_equal(forward(layer, top)[0], items[layer.start:layer.start + 1])
    layer.stop()


def test_an_lmdb_read_as_leveldb_says_to_set_the_backend(db):
    pytest.importorskip("plyvel", reason="LevelDB needs plyvel (the leveldb extra)")
    source, _, _ = db
    # No backend: Caffe's default, LEVELDB.
    text = f'name: "d" type: "Data" top: "data" data_param {{ source: "{source}" batch_size: 1 }}'
    with pytest.raises(DataError, match="not a readable LevelDB.*set backend: LMDB"):
        make_layer(text, tops=1)


def test_leveldb_gives_the_batches_of_the_same_lmdb(tmp_path):
    pytest.importorskip("plyvel", reason="LevelDB needs plyvel (the leveldb extra)")
    items, labels = raw_items(7)
    lmdb_source = make_lmdb(tmp_path / "lmdb", items, labels)
    leveldb_source = make_lmdb(tmp_path / "leveldb", items, labels, backend="leveldb")
    from_lmdb, top_a = data_layer(lmdb_source)
    text = (f'name: "d" type: "Data" top: "data" top: "label" '
            f'data_param {{ source: "{leveldb_source}" batch_size: 3 backend: LEVELDB }}')
    from_leveldb, top_b = make_layer(text)
    for _ in range(4):                                       # past the end: it loops
        for want, got in zip(forward(from_lmdb, top_a), forward(from_leveldb, top_b)):
            np.testing.assert_array_equal(got, want)
    # A second net of the process (a test net) reads the same LevelDB through the same handle.
    again, top_c = make_layer(text)
    np.testing.assert_array_equal(forward(again, top_c)[0], items[:3])
    for layer in (from_lmdb, from_leveldb, again):
        layer.stop()


def test_leveldb_without_plyvel_says_how_to_get_it(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "plyvel", None)         # import plyvel fails
    (tmp_path / "db").mkdir()
    text = (f'name: "d" type: "Data" top: "data" '
            f'data_param {{ source: "{tmp_path / "db"}" batch_size: 1 backend: LEVELDB }}')
    with pytest.raises(DataError, match=r"needs plyvel: pip install 'cyffe\[leveldb\]'"):
        make_layer(text, tops=1)


def test_missing_empty_and_corrupt_databases(tmp_path):
    with pytest.raises(DataError, match="not found"):
        data_layer(tmp_path / "nope")
    write_lmdb(tmp_path / "empty", [], 1 << 20)
    with pytest.raises(DataError, match="is empty"):
        data_layer(tmp_path / "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "data.mdb").write_bytes(b"\0" * 100)
    with pytest.raises(DataError, match="junk"):
        data_layer(tmp_path / "junk")


def test_truncated_database_is_an_error_not_a_sigbus(tmp_path):
    make_lmdb(tmp_path / "whole", *raw_items(3000))
    raw = (tmp_path / "whole" / "data.mdb").read_bytes()
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "data.mdb").write_bytes(raw[:len(raw) // 2])
    with pytest.raises(DataError, match="cut.*is truncated"):
        data_layer(tmp_path / "cut")


def test_net_finds_the_source_beside_the_prototxt(tmp_path, monkeypatch):
    items, labels = raw_items(4)
    make_lmdb(tmp_path / "train_lmdb", items, labels)
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "d" type: "Data" top: "data" top: "label" '
        'data_param { source: "train_lmdb" batch_size: 2 backend: LMDB } }')
    monkeypatch.chdir("/")
    net = cyffe.Net(str(tmp_path / "net.prototxt"), pb.TRAIN)
    net.forward()
    np.testing.assert_array_equal(net.blobs["data"].data, items[:2])
    np.testing.assert_array_equal(net.blobs["label"].data, labels[:2])


def test_legacy_transformation_fields_are_refused_not_ignored(db):
    source, _, _ = db
    with pytest.raises(cyffe.NetError, match="scale, mirror in data_param.*transform_param"):
        data_layer(source, extra="scale: 0.5 mirror: true")


def test_the_thread_ends_when_the_layer_is_dropped(db):
    import gc
    source, _, _ = db
    layer, top = data_layer(source, batch_size=1, extra="prefetch: 1")
    forward(layer, top)
    thread = layer.prefetcher._thread
    del layer
    gc.collect()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_encoded_datum_forced_gray_through_the_layer(tmp_path):
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.full((2, 2, 3), (0, 100, 0), np.uint8)).save(buf, format="PNG")
    value = pb.Datum(data=buf.getvalue(), encoded=True, label=5).SerializeToString()
    write_lmdb(tmp_path / "enc", [(b"0", value)], 1 << 20)
    layer, top = data_layer(tmp_path / "enc", batch_size=1, transform="force_gray: true")
    data, label = forward(layer, top)
    assert data.shape == (1, 1, 2, 2) and label[0] == 5
    np.testing.assert_array_equal(data, round(100 * 0.587))
    layer.stop()


def test_in_gpu_mode_the_thread_copies_each_batch_to_the_device(db, mode, monkeypatch):
    from cyffe.layers.pipeline import prefetch
    cyffe.set_mode_gpu(emulate=True)
    threads = []

    def copy(array):
        threads.append(threading.current_thread().name)
        return mode.copy_to_device(array)

    monkeypatch.setattr(prefetch, "copy_to_device", copy)
    source, items, labels = db
    layer, top = data_layer(source)
    layer.forward([], top)
    synced = top[0]._data
    assert synced.head == "device" and synced.host is None     # nothing copied in forward
    np.testing.assert_array_equal(synced.device, items[[0, 1, 2]])
    np.testing.assert_array_equal(top[0].data, items[[0, 1, 2]])    # the host syncs lazily
    np.testing.assert_array_equal(top[1].data, labels[[0, 1, 2]])
    assert threads and set(threads) == {"prefetch d"}
    layer.stop()


def test_a_mode_change_moves_the_prefetch_without_losing_a_batch(db, mode):
    source, items, _ = db
    cyffe.set_mode_cpu()
    layer, top = data_layer(source)
    np.testing.assert_array_equal(forward(layer, top)[0], items[[0, 1, 2]])
    assert top[0]._data.head == "host"
    cyffe.set_mode_gpu(emulate=True)
    layer.forward([], top)
    assert top[0]._data.head == "device"
    np.testing.assert_array_equal(top[0].data, items[[3, 4, 5]])
    cyffe.set_mode_cpu()
    np.testing.assert_array_equal(forward(layer, top)[0], items[[6, 0, 1]])
    layer.stop()


def test_write_database_takes_a_backend_name(tmp_path):
    from cyffe.layers.pipeline.databases import open_database, write_database
    with pytest.raises(DataError, match="unknown backend 'rocksdb'; use one of lmdb, leveldb"):
        write_database(tmp_path / "x", [], "rocksdb", map_size=1 << 20)
    assert not (tmp_path / "x").exists()
    pytest.importorskip("plyvel", reason="LevelDB needs plyvel (the leveldb extra)")
    records = [(b"%08d" % i, b"value %d" % i) for i in (2, 0, 1)]
    write_database(tmp_path / "db", iter(records), "leveldb", map_size=0)
    db = open_database(str(tmp_path / "db"), pb.DataParameter.LEVELDB, "test")
    assert db.keys == [b"00000000", b"00000001", b"00000002"]        # sorted, as LevelDB keeps
    assert db.get(b"00000001", "test") == b"value 1"
    with pytest.raises(DataError, match="already exists"):
        write_database(tmp_path / "db", iter(records), "leveldb", map_size=0)
