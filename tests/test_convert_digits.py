import gzip
from pathlib import Path

import h5py
import numpy as np
import pytest

from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import DataError
from cyffe.tools import convert_digits

from helpers.gradcheck import setup_layer

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"


def read(path):
    with h5py.File(path, "r") as f:
        return f["data"][()], f["label"][()]


@pytest.fixture(scope="module")
def committed():
    return {name: read(DIGITS / f"{name}.h5") for name in ("train", "test")}


def test_committed_shapes_and_types(committed):
    for name, n in (("train", 1437), ("test", 360)):
        data, label = committed[name]
        assert data.shape == (n, 1, 8, 8) and data.dtype == np.float32
        assert label.shape == (n,) and label.dtype == np.float32


def test_committed_values(committed):
    for data, label in committed.values():
        assert data.min() == 0 and data.max() == 1
        np.testing.assert_array_equal(data * 16, np.round(data * 16))   # pixels / 16
        assert set(np.unique(label)) == set(range(10))


def test_committed_split_is_balanced(committed):
    train = np.bincount(committed["train"][1].astype(int))
    test = np.bincount(committed["test"][1].astype(int))
    share = test / (train + test)
    assert np.all(np.abs(share - 0.2) < 0.01)


def test_committed_split_is_disjoint(committed):
    seen = {row.tobytes() for row in committed["train"][0]}
    assert len(seen) == 1437
    assert not any(row.tobytes() in seen for row in committed["test"][0])


def test_committed_list_files_name_the_h5_beside_them():
    assert (DIGITS / "train.txt").read_text() == "train.h5\n"
    assert (DIGITS / "test.txt").read_text() == "test.h5\n"


def test_committed_files_are_what_the_converter_makes(committed, tmp_path):
    source = convert_digits.find_source()
    if source is None:
        pytest.skip("scikit-learn (the source of the digits csv) is not installed")
    convert_digits.convert(tmp_path, source)
    for name in ("train", "test"):
        data, label = read(tmp_path / f"{name}.h5")
        np.testing.assert_array_equal(data, committed[name][0])
        np.testing.assert_array_equal(label, committed[name][1])
    np.testing.assert_array_equal(np.load(tmp_path / "samples.npy"),
                                  np.load(DIGITS / "samples.npy"))


def test_committed_samples_are_the_first_test_image_of_each_digit(committed):
    data, label = committed["test"]
    samples = np.load(DIGITS / "samples.npy")
    assert samples.shape == (10, 8, 8) and samples.dtype == np.float32
    for digit in range(10):
        np.testing.assert_array_equal(samples[digit], data[np.flatnonzero(label == digit)[0], 0])


def test_hdf5_data_layer_reads_the_committed_set():
    param = pb.LayerParameter(name="digits", type="HDF5Data")
    param.top.extend(["data", "label"])
    param.hdf5_data_param.source = "test.txt"
    param.hdf5_data_param.batch_size = 100
    layer = layer_class("HDF5Data")(param, pb.TEST)
    layer.base_dir = str(DIGITS)
    top = setup_layer(layer, [], num_top=2)
    layer.forward([], top)
    assert top[0].shape == (100, 1, 8, 8) and top[1].shape == (100,)


# -- the converter on synthetic data ------------------------------------------------

def synthetic_csv(path, per_class=5, compress=False):
    """per_class rows of each digit; image k has pixel values k % 17."""
    lines = []
    for i in range(10 * per_class):
        digit = i % 10
        lines.append(",".join([str(i % 17)] * 64 + [str(digit)]))
    text = "\n".join(lines) + "\n"
    if compress:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("compress", [False, True])
def test_converter_on_a_tiny_csv(tmp_path, compress):
    source = synthetic_csv(tmp_path / ("d.csv.gz" if compress else "d.csv"), compress=compress)
    out = tmp_path / "out"
    assert convert_digits.main([str(out), "--source", str(source)]) == 0
    train, test = read(out / "train.h5"), read(out / "test.h5")
    assert train[0].shape == (40, 1, 8, 8) and test[0].shape == (10, 1, 8, 8)
    np.testing.assert_array_equal(np.sort(test[1]), np.arange(10))    # one of each digit
    # image i is (i % 17) / 16 everywhere and labelled i % 10: rows keep their pairing
    values = np.concatenate([train[0][:, 0, 0, 0], test[0][:, 0, 0, 0]]) * 16
    labels = np.concatenate([train[1], test[1]])
    assert sorted(zip(values, labels)) == sorted((i % 17, i % 10) for i in range(50))
    assert (out / "train.txt").read_text() == "train.h5\n"
    assert (out / "test.txt").read_text() == "test.h5\n"
    assert sorted(p.name for p in out.iterdir()) == ["samples.npy", "test.h5", "test.txt",
                                                     "train.h5", "train.txt"]   # no temporaries


def test_split_is_stratified_and_deterministic():
    labels = np.repeat(np.arange(3), [10, 7, 3])
    train, test = convert_digits.stratified_split(labels, 0.5, seed=1)
    assert len(test) == 10 and len(train) == 10
    assert np.intersect1d(train, test).size == 0
    # shares 5, 3.5, 1.5: the one leftover place goes to the tie's smaller label
    np.testing.assert_array_equal(np.bincount(labels[test]), [5, 4, 1])
    again = convert_digits.stratified_split(labels, 0.5, seed=1)
    np.testing.assert_array_equal(again[1], test)


def test_a_malformed_line_names_the_file_and_line(tmp_path):
    source = tmp_path / "bad.csv"
    source.write_text(",".join(["0"] * 65) + "\n" + ",".join(["0"] * 63 + ["17", "1"]) + "\n")
    with pytest.raises(DataError, match=r"bad.csv:2"):
        convert_digits.read_digits(str(source))


def test_missing_source_exits_non_zero_with_one_line(tmp_path, capsys):
    assert convert_digits.main([str(tmp_path), "--source", str(tmp_path / "none.csv")]) == 1
    err = capsys.readouterr().err
    assert "none.csv" in err and err.count("\n") == 1


def test_without_scikit_learn_it_says_how_to_get_the_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(convert_digits, "find_source", lambda: None)
    assert convert_digits.main([str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "--source" in err and "optdigits" in err and "scikit-learn" in err
    assert not (tmp_path / "out").exists()
