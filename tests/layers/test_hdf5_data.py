
import h5py
import numpy as np
import pytest

from cyffe.layers.backend import set_random_seed
from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import DataError, NetError

from helpers.gradcheck import setup_layer


def write_h5(path, **datasets):
    with h5py.File(path, "w") as f:
        for name, values in datasets.items():
            f[name] = values


def write_list(path, *entries):
    path.write_text("".join(f"{e}\n" for e in entries))
    return path


def two_files(tmp_path, rows=(3, 4)):
    """Files a.h5 (rows 0..2) and b.h5 (rows 3..6): data[i] = i * ones(2, 2), label[i] = i."""
    start = 0
    names = []
    for name, n in zip("ab", rows):
        ids = np.arange(start, start + n, dtype=np.float64)
        write_h5(tmp_path / f"{name}.h5", data=ids[:, None, None] * np.ones((n, 2, 2)),
                 label=ids)
        names.append(f"{name}.h5")
        start += n
    return write_list(tmp_path / "list.txt", *names)


def hdf5(source, batch_size, shuffle=False, tops=("data", "label"), dtype=np.float32,
         base_dir=None):
    param = pb.LayerParameter(name="h5", type="HDF5Data")
    param.top.extend(tops)
    param.hdf5_data_param.source = str(source)
    param.hdf5_data_param.batch_size = batch_size
    param.hdf5_data_param.shuffle = shuffle
    layer = layer_class("HDF5Data")(param, pb.TRAIN, dtype)
    if base_dir is not None:
        layer.base_dir = str(base_dir)
    return layer


def batches(layer, top, k):
    out = []
    for _ in range(k):
        layer.reshape([], top)
        layer.forward([], top)
        out.append(top[-1].data.copy())
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shapes_dtype_and_values(tmp_path, dtype):
    layer = hdf5(two_files(tmp_path), 2, dtype=dtype)
    top = setup_layer(layer, [], num_top=2)
    assert [t.shape for t in top] == [(2, 2, 2), (2,)]
    layer.forward([], top)
    assert top[0].data.dtype == dtype and top[1].data.dtype == dtype
    np.testing.assert_array_equal(top[1].data, [0, 1])
    np.testing.assert_array_equal(top[0].data, np.array([0, 1])[:, None, None] * np.ones((2, 2, 2)))


def test_batches_span_files_and_wrap_around(tmp_path):
    layer = hdf5(two_files(tmp_path), 3)
    top = setup_layer(layer, [], num_top=2)
    got = batches(layer, top, 4)
    # 7 rows in all: 0 1 2 | 3 4 5 | 6 0 1 | 2 3 4
    np.testing.assert_array_equal(np.concatenate(got), [0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4])


def test_num_rows_counts_every_file(tmp_path):
    layer = hdf5(two_files(tmp_path), 3)
    setup_layer(layer, [], num_top=2)
    assert layer.num_rows == 7


def test_batch_larger_than_the_data(tmp_path):
    layer = hdf5(two_files(tmp_path), 10)
    top = setup_layer(layer, [], num_top=2)
    np.testing.assert_array_equal(batches(layer, top, 1)[0], [0, 1, 2, 3, 4, 5, 6, 0, 1, 2])


def test_one_file_wraps_onto_itself(tmp_path):
    write_h5(tmp_path / "x.h5", label=np.arange(5.0))
    layer = hdf5(write_list(tmp_path / "l.txt", "x.h5"), 4, tops=("label",))
    top = setup_layer(layer, [], num_top=1)
    np.testing.assert_array_equal(np.concatenate(batches(layer, top, 3)),
                                  [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1])


def test_shuffle_visits_every_row_once_per_pass_and_follows_the_seed(tmp_path):
    source = two_files(tmp_path)

    def run(seed):
        set_random_seed(seed)
        layer = hdf5(source, 7, shuffle=True)
        top = setup_layer(layer, [], num_top=2)
        got = batches(layer, top, 3)
        for t in got:           # one batch of 7 is exactly one pass (files are whole)
            assert sorted(t) == list(range(7))
        np.testing.assert_array_equal(top[0].data[:, 0, 0], top[1].data)  # rows stay paired
        return np.concatenate(got)

    first, again = run(3), run(3)
    np.testing.assert_array_equal(first, again)
    assert any(not np.array_equal(run(s), first) for s in (4, 5, 6))
    assert not np.array_equal(first[:7], np.arange(7))


def test_shuffle_keeps_each_files_rows_together(tmp_path):
    set_random_seed(0)
    layer = hdf5(two_files(tmp_path), 7, shuffle=True)
    top = setup_layer(layer, [], num_top=2)
    for order in batches(layer, top, 4):
        files = [0 if v < 3 else 1 for v in order]
        assert files in ([0] * 3 + [1] * 4, [1] * 4 + [0] * 3)


def test_entries_are_found_beside_the_list_and_source_under_base_dir(tmp_path, monkeypatch):
    two_files(tmp_path)
    monkeypatch.chdir(tmp_path.parent)
    layer = hdf5("list.txt", 2, base_dir=tmp_path)
    top = setup_layer(layer, [], num_top=2)
    layer.forward([], top)
    np.testing.assert_array_equal(top[1].data, [0, 1])


def test_relative_paths_prefer_the_current_directory(tmp_path, monkeypatch):
    two_files(tmp_path)
    here = tmp_path / "here"
    here.mkdir()
    write_h5(here / "a.h5", data=np.full((1, 2, 2), 9.0), label=[9.0])
    write_list(here / "list.txt", "a.h5")
    monkeypatch.chdir(here)
    layer = hdf5("list.txt", 1, base_dir=tmp_path)
    top = setup_layer(layer, [], num_top=2)
    layer.forward([], top)
    assert top[1].data[0] == 9


def test_absolute_entries_and_blank_lines(tmp_path):
    two_files(tmp_path)
    source = write_list(tmp_path / "abs.txt", "", str(tmp_path / "b.h5"), "  ")
    layer = hdf5(source, 2)
    top = setup_layer(layer, [], num_top=2)
    layer.forward([], top)
    np.testing.assert_array_equal(top[1].data, [3, 4])


def test_gpu_path_on_numpy_equals_cpu_path(tmp_path):
    source = two_files(tmp_path)
    runs = []
    for path in ("cpu", "gpu"):
        set_random_seed(1)      # the layers share one random stream: run them one at a time
        layer = hdf5(source, 3, shuffle=True)
        top = setup_layer(layer, [], num_top=2)
        forward = layer.forward_cpu if path == "cpu" else layer.forward_gpu
        got = []
        for _ in range(4):
            forward([], top)
            got.append([t.data.copy() for t in top])
        runs.append(got)
    for a, b in zip(*runs):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(y, x)


# -- errors ---------------------------------------------------------------------

def test_batch_size_must_be_positive(tmp_path):
    with pytest.raises(NetError, match="'h5'.*batch_size"):
        setup_layer(hdf5(two_files(tmp_path), 0), [], num_top=2)


def test_transform_param_is_refused(tmp_path):
    layer = hdf5(two_files(tmp_path), 2)
    layer.param.transform_param.scale = 2.0
    with pytest.raises(NetError, match="'h5'.*transform"):
        setup_layer(layer, [], num_top=2)


def test_missing_source(tmp_path):
    with pytest.raises(DataError, match="'h5'.*nope.txt"):
        setup_layer(hdf5(tmp_path / "nope.txt", 2), [], num_top=2)


def test_empty_source(tmp_path):
    with pytest.raises(DataError, match="'h5'.*no HDF5 files"):
        setup_layer(hdf5(write_list(tmp_path / "l.txt"), 2), [], num_top=2)


def test_missing_h5_file(tmp_path):
    source = write_list(tmp_path / "l.txt", "gone.h5")
    with pytest.raises(DataError, match="'h5'.*gone.h5"):
        setup_layer(hdf5(source, 2), [], num_top=2)


def test_missing_dataset(tmp_path):
    write_h5(tmp_path / "x.h5", data=np.zeros((2, 3)))
    source = write_list(tmp_path / "l.txt", "x.h5")
    with pytest.raises(DataError, match="'h5'.*x.h5.*'label'"):
        setup_layer(hdf5(source, 2), [], num_top=2)


def test_corrupt_file(tmp_path):
    (tmp_path / "x.h5").write_bytes(b"this is not HDF5")
    source = write_list(tmp_path / "l.txt", "x.h5")
    with pytest.raises(DataError, match="'h5'.*x.h5"):
        setup_layer(hdf5(source, 2), [], num_top=2)


def test_datasets_with_different_row_counts(tmp_path):
    write_h5(tmp_path / "x.h5", data=np.zeros((3, 2)), label=np.zeros(2))
    source = write_list(tmp_path / "l.txt", "x.h5")
    with pytest.raises(DataError, match="'h5'.*x.h5.*rows"):
        setup_layer(hdf5(source, 2), [], num_top=2)


def test_later_file_with_other_row_shape(tmp_path):
    write_h5(tmp_path / "a.h5", label=np.zeros((2, 3)))
    write_h5(tmp_path / "b.h5", label=np.zeros((2, 4)))
    layer = hdf5(write_list(tmp_path / "l.txt", "a.h5", "b.h5"), 2, tops=("label",))
    top = setup_layer(layer, [], num_top=1)
    with pytest.raises(DataError, match="'h5'.*b.h5"):
        layer.forward([], top)


def test_non_numeric_and_empty_datasets(tmp_path):
    write_h5(tmp_path / "s.h5", label=np.array([b"a", b"b"]))
    write_h5(tmp_path / "e.h5", label=np.zeros((0, 2)))
    for name in ("s.h5", "e.h5"):
        source = write_list(tmp_path / f"{name}.txt", name)
        with pytest.raises(DataError, match=f"'h5'.*{name}"):
            setup_layer(hdf5(source, 2, tops=("label",)), [], num_top=1)


def test_takes_no_bottom(tmp_path):
    with pytest.raises(NetError, match="'h5'"):
        setup_layer(hdf5(two_files(tmp_path), 2), [Blob((1,))], num_top=2)


# -- set_shard and skip: every size-th row from rank; skip equals that many forwards

def started(tmp_path, batch_size, shuffle=False):
    layer = hdf5(two_files(tmp_path), batch_size, shuffle=shuffle)
    top = [Blob(), Blob()]
    layer.setup([], top)
    return layer, top


def test_shard_takes_every_size_th_row_across_files_and_passes(tmp_path):
    layer, top = started(tmp_path, 3)
    layer.set_shard(1, 3)               # rows 0..6 loop: stream rows 1, 4, 7=0, 10=3, 13=6, ...
    got = [list(b) for b in batches(layer, top, 2)]
    assert got == [[1, 4, 0], [3, 6, 2]]


def test_shards_together_cover_the_stream(tmp_path):
    rows = []
    for rank in range(2):
        layer, top = started(tmp_path, 7)
        layer.set_shard(rank, 2)
        rows.append(batches(layer, top, 1)[0])
    stream = np.arange(14) % 7
    np.testing.assert_array_equal(rows[0], stream[0::2])
    np.testing.assert_array_equal(rows[1], stream[1::2])


@pytest.mark.parametrize("shuffle", [False, True])
def test_skip_equals_running_the_forwards(tmp_path, shuffle):
    set_random_seed(11)
    straight, top = started(tmp_path, 2, shuffle)
    straight.set_shard(1, 2)
    want = batches(straight, top, 6)[4:]
    set_random_seed(11)
    resumed, top = started(tmp_path, 2, shuffle)
    resumed.set_shard(1, 2)
    resumed.skip(4)
    for w, g in zip(want, batches(resumed, top, 2)):
        np.testing.assert_array_equal(g, w)


def test_bad_shard(tmp_path):
    layer, _ = started(tmp_path, 2)
    with pytest.raises(NetError, match="shard 2 of 2"):
        layer.set_shard(2, 2)
