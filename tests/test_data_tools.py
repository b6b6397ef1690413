"""convert_mnist, convert_imageset, compute_image_mean: what they write, read back; bad input."""
import gzip
import os
import struct

import numpy as np
import pytest

from cyffe.layers.pipeline.databases import lmdb_keys, open_lmdb, parse_datum
from cyffe.layers.pipeline.images import datum_to_array
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.io import blobproto_to_array
from cyffe.tools import compute_image_mean, convert_imageset, convert_mnist
from helpers.data_layers import make_lmdb, raw_items

PIL = pytest.importorskip("PIL.Image")


def read_db(path):
    """[(key, Datum)] of an LMDB."""
    env = open_lmdb(str(path), "test")
    keys = lmdb_keys(env, str(path), "test")
    with env.begin() as txn:
        return [(k, parse_datum(txn.get(k), "test")) for k in keys]


def idx(path, magic, array, gz=False, cut=0):
    raw = struct.pack(f">{1 + array.ndim}i", magic, *array.shape) + array.tobytes()
    raw = raw[:len(raw) - cut]
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return str(path)


@pytest.fixture
def mnist_like(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 3, 4)).astype(np.uint8)
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    return (idx(tmp_path / "img.gz", 0x803, images, gz=True),
            idx(tmp_path / "lab", 0x801, labels), images, labels)


def test_convert_mnist_writes_caffe_datums(mnist_like, tmp_path, capsys):
    images_path, labels_path, images, labels = mnist_like
    assert convert_mnist.main([images_path, labels_path, str(tmp_path / "db")]) == 0
    records = read_db(tmp_path / "db")
    assert [k for k, _ in records] == [b"%08d" % i for i in range(5)]
    for (_, datum), image, label in zip(records, images, labels):
        assert (datum.channels, datum.height, datum.width, datum.label) == (1, 3, 4, label)
        np.testing.assert_array_equal(datum_to_array(datum)[0], image)
    assert "wrote 5 items" in capsys.readouterr().out


@pytest.mark.parametrize("make, message", [
    (lambda d, i, l: (idx(d / "t", 0x803, i, cut=3), l), "truncated or padded IDX"),
    (lambda d, i, l: (idx(d / "t", 0x801, i), l), "magic 0x801"),
    (lambda d, i, l: (i_path(d), l), "truncated IDX file"),
    (lambda d, i, l: (idx(d / "t", 0x803, i[:4]), l), "has 4 images but"),
    (lambda d, i, l: (gz_cut(d), l), "corrupt gzip"),
])
def test_convert_mnist_bad_idx_is_one_line_and_no_output(mnist_like, tmp_path, capsys,
                                                         make, message):
    _, labels_path, images, _ = mnist_like
    bad, labels = make(tmp_path, images, labels_path)
    assert convert_mnist.main([bad, labels, str(tmp_path / "db")]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not os.path.exists(tmp_path / "db")
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]


def i_path(d):
    (d / "short").write_bytes(b"\0\0\x08\x03\0\0")
    return str(d / "short")


def gz_cut(d):
    raw = gzip.compress(b"\0" * 1000)
    (d / "cut.gz").write_bytes(raw[:len(raw) // 2])
    return str(d / "cut.gz")


def test_convert_mnist_refuses_to_overwrite(mnist_like, tmp_path, capsys):
    images_path, labels_path, _, _ = mnist_like
    (tmp_path / "db").mkdir()
    assert convert_mnist.main([images_path, labels_path, str(tmp_path / "db")]) == 1
    assert "already exists" in capsys.readouterr().err


@pytest.fixture
def image_list(tmp_path):
    r = np.random.default_rng(2)
    (tmp_path / "img").mkdir()
    rgb = r.integers(0, 256, (3, 4, 6, 3)).astype(np.uint8)
    for i, pixels in enumerate(rgb):
        PIL.fromarray(pixels).save(tmp_path / "img" / f"{i}.png")
    (tmp_path / "list.txt").write_text("".join(f"{i}.png {i + 7}\n" for i in range(3)))
    return tmp_path, rgb


def test_convert_imageset_raw_bgr(image_list):
    folder, rgb = image_list
    assert convert_imageset.main([f"{folder}/img/", str(folder / "list.txt"),
                                  str(folder / "db")]) == 0
    records = read_db(folder / "db")
    assert [k for k, _ in records] == [b"00000000_0.png", b"00000001_1.png", b"00000002_2.png"]
    for (_, datum), pixels, label in zip(records, rgb, (7, 8, 9)):
        assert not datum.encoded and datum.label == label
        np.testing.assert_array_equal(datum_to_array(datum), pixels[..., ::-1].transpose(2, 0, 1))


def test_convert_imageset_encoded_keeps_the_file_and_reencodes_when_resized(image_list):
    folder, rgb = image_list
    assert convert_imageset.main([f"{folder}/img", str(folder / "list.txt"), str(folder / "e"),
                                  "--encoded"]) == 0
    datum = read_db(folder / "e")[0][1]
    assert datum.encoded and datum.data == (folder / "img" / "0.png").read_bytes()
    assert convert_imageset.main([f"{folder}/img", str(folder / "list.txt"), str(folder / "g"),
                                  "--encoded", "--encode_type", "png", "--gray",
                                  "--resize_height", "2", "--resize_width", "3"]) == 0
    datum = read_db(folder / "g")[0][1]
    assert datum.encoded and datum_to_array(datum).shape == (1, 2, 3)


def test_convert_imageset_shuffle_keeps_every_image(image_list):
    folder, _ = image_list
    assert convert_imageset.main([f"{folder}/img", str(folder / "list.txt"), str(folder / "s"),
                                  "--shuffle", "--seed", "3"]) == 0
    assert sorted(d.label for _, d in read_db(folder / "s")) == [7, 8, 9]


def test_convert_imageset_bad_image_names_it_and_leaves_nothing(image_list, capsys):
    folder, _ = image_list
    (folder / "img" / "1.png").write_bytes(b"garbage")
    assert convert_imageset.main([f"{folder}/img", str(folder / "list.txt"),
                                  str(folder / "db")]) == 1
    assert "1.png" in capsys.readouterr().err
    assert not os.path.exists(folder / "db")


def test_compute_image_mean(tmp_path, capsys):
    items, labels = raw_items(6, shape=(3, 2, 2))
    make_lmdb(tmp_path / "db", items, labels)
    out = tmp_path / "mean.binaryproto"
    assert compute_image_mean.main([str(tmp_path / "db"), str(out)]) == 0
    blob = pb.BlobProto()
    blob.ParseFromString(out.read_bytes())
    np.testing.assert_allclose(blobproto_to_array(blob), items.mean(axis=0, keepdims=True),
                               rtol=1e-6)
    out_text = capsys.readouterr().out
    assert "mean_value channel [2]" in out_text
    assert f"Wrote the mean image (3x2x2) to {out}" in out_text


def test_compute_image_mean_bad_database(tmp_path, capsys):
    assert compute_image_mean.main([str(tmp_path / "nope"), str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err
    assert "not found" in err
    assert err.startswith("compute_image_mean: error: LMDB "), err   # the tool's name once
    assert not os.path.exists(tmp_path / "m")


def test_convert_mnist_takes_caffes_backend_flag(mnist_like, tmp_path, capsys):
    images_path, labels_path, _, _ = mnist_like
    assert convert_mnist.main([images_path, labels_path, str(tmp_path / "db"),
                               "--backend=lmdb"]) == 0
    assert len(read_db(tmp_path / "db")) == 5
    pytest.importorskip("plyvel", reason="LevelDB needs plyvel (the leveldb extra)")
    from cyffe.layers.pipeline.databases import open_database
    assert convert_mnist.main(["-backend", "leveldb", images_path, labels_path,
                               str(tmp_path / "ldb")]) == 0
    records = open_database(str(tmp_path / "ldb"), pb.DataParameter.LEVELDB, "test")
    assert len(records.keys) == 5


def test_convert_imageset_takes_caffes_flags(image_list):
    folder, _ = image_list
    db = str(folder / "db")
    assert convert_imageset.main([f"{folder}/img/", str(folder / "list.txt"), db, "-gray", "--shuffle=true",
                                  "-resize_height=3", "--resize_width", "2",
                                  "--backend=LMDB"]) == 0
    records = read_db(db)
    assert records and all((d.channels, d.height, d.width) == (1, 3, 2) for _, d in records)
