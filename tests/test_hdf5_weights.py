"""HDF5 weights (.caffemodel.h5) in Caffe's layout, and pycaffe's forward_all / backward_all."""
import h5py
import numpy as np
import pytest

import cyffe

NET = """
name: "tiny"
layer { name: "data" type: "Input" top: "x" input_param { shape { dim: 3 dim: 4 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "h"
        param { name: "shared_w" } inner_product_param { num_output: 4
        weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "ip2" type: "InnerProduct" bottom: "h" top: "y"
        param { name: "shared_w" } inner_product_param { num_output: 4 bias_term: false } }
layer { name: "relu" type: "ReLU" bottom: "y" top: "z" }
"""


def test_save_and_load_in_caffes_hdf5_layout(tmp_path):
    cyffe.set_random_seed(1)
    net = cyffe.Net(NET, cyffe.TEST)
    path = tmp_path / "tiny.caffemodel.h5"
    net.save(str(path))
    with h5py.File(path, "r") as f:
        assert sorted(f["data"].keys()) == ["data", "ip1", "ip2", "relu"]
        assert sorted(f["data/ip1"].keys()) == ["0", "1"]
        assert list(f["data/ip2"].keys()) == []        # its weight is ip1's, stored once
        assert f["data/ip1/0"].dtype == np.float32
        np.testing.assert_array_equal(f["data/ip1/0"][()], net.params["ip1"][0].data)
        assert "diff" not in f
    cyffe.set_random_seed(2)
    other = cyffe.Net(NET, cyffe.TEST, weights=str(path))
    for name in ("ip1", "ip2"):
        for mine, theirs in zip(net.params[name], other.params[name]):
            np.testing.assert_array_equal(mine.data, theirs.data)
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_array_equal(net.forward(x=x)["z"], other.forward(x=x)["z"])


def test_diffs_are_written_when_asked(tmp_path):
    net = cyffe.Net(NET, cyffe.TEST)
    net.params["ip1"][0].diff[...] = 7
    path = tmp_path / "d.caffemodel.h5"
    net.save(str(path), write_diff=True)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["diff/ip1/0"][()], 7)
        np.testing.assert_array_equal(f["diff/ip2/0"][()], 7)    # every diff, shared or not


def test_reads_a_file_written_by_h5py_in_caffes_layout(tmp_path):
    path = tmp_path / "hand.caffemodel.h5"
    w = np.arange(16, dtype=np.float32).reshape(4, 4)
    with h5py.File(path, "w") as f:
        f.create_dataset("data/ip1/0", data=w)
        f.create_dataset("data/ip1/1", data=np.ones(4, np.float32))
        f.create_group("data/unknown_layer")
    net = cyffe.Net(NET, cyffe.TEST)
    net.copy_from(str(path))
    np.testing.assert_array_equal(net.params["ip1"][0].data, w)
    np.testing.assert_array_equal(net.params["ip2"][0].data, w)


def test_wrong_shape_names_the_layer_and_both_shapes(tmp_path):
    path = tmp_path / "bad.caffemodel.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data/ip1/0", data=np.zeros((5, 4), np.float32))
    with pytest.raises(cyffe.ShapeError, match=r"layer 'ip1' blob 0 has shape \(5, 4\) there but "
                                               r"\(4, 4\)"):
        cyffe.Net(NET, cyffe.TEST).copy_from(str(path))


def test_missing_owned_blob_or_extra_blob_is_an_error(tmp_path):
    path = tmp_path / "few.caffemodel.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data/ip1/0", data=np.zeros((4, 4), np.float32))
    with pytest.raises(cyffe.ShapeError, match="layer 'ip1' has no blob 1"):
        cyffe.Net(NET, cyffe.TEST).copy_from(str(path))
    with h5py.File(path, "w") as f:
        f.create_dataset("data/ip2/3", data=np.zeros((4, 4), np.float32))
    with pytest.raises(cyffe.ShapeError, match="layer 'ip2'"):
        cyffe.Net(NET, cyffe.TEST).copy_from(str(path))


@pytest.mark.parametrize("content", [b"", b"\x89HDF\r\n\x1a\n truncated", b"not hdf5 at all"])
def test_corrupt_h5_is_one_data_error_naming_the_file(tmp_path, content):
    path = tmp_path / "broken.caffemodel.h5"
    path.write_bytes(content)
    with pytest.raises(cyffe.DataError, match="broken.caffemodel.h5"):
        cyffe.Net(NET, cyffe.TEST, weights=str(path))


def test_h5_without_data_group_or_missing_file(tmp_path):
    path = tmp_path / "empty.caffemodel.h5"
    with h5py.File(path, "w") as f:
        f.create_group("other")
    with pytest.raises(cyffe.DataError, match="no /data group"):
        cyffe.Net(NET, cyffe.TEST).copy_from(str(path))
    with pytest.raises(cyffe.DataError, match="not found"):
        cyffe.Net(NET, cyffe.TEST).copy_from(str(tmp_path / "none.caffemodel.h5"))


def test_save_is_atomic_and_leaves_no_temporary(tmp_path):
    net = cyffe.Net(NET, cyffe.TEST)
    net.save(str(tmp_path / "a.caffemodel.h5"))
    assert [p.name for p in tmp_path.iterdir()] == ["a.caffemodel.h5"]


# -- pycaffe's forward_all / backward_all ---------------------------------------------------

def test_forward_all_batches_pads_and_returns_every_row():
    net = cyffe.Net(NET, cyffe.TEST)
    x = np.random.default_rng(1).normal(size=(7, 4)).astype(np.float32)
    out = net.forward_all(x=x, blobs=["h"])
    assert set(out) == {"z", "h"} and out["z"].shape == (7, 4) and out["h"].shape == (7, 4)
    w, b = net.params["ip1"][0].data, net.params["ip1"][1].data
    h = x @ w.T + b
    np.testing.assert_allclose(out["h"], h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["z"], np.maximum(h @ w.T, 0), rtol=1e-5, atol=1e-6)
    assert net.blobs["x"].shape == (3, 4)           # batches of the input blob's batch size


def test_backward_all_returns_input_diffs_for_every_row():
    net = cyffe.Net(NET.replace('name: "tiny"', 'name: "tiny" force_backward: true'), cyffe.TEST)
    net.forward(x=np.ones((3, 4), np.float32))
    dy = np.random.default_rng(2).normal(size=(5, 4)).astype(np.float32)
    out = net.backward_all(z=dy)
    assert out["x"].shape == (5, 4)
    w = net.params["ip1"][0].data
    mask = (net.blobs["z"].data > 0)[0]             # every row saw the same (ones) input
    np.testing.assert_allclose(out["x"], (dy * mask) @ w @ w, rtol=1e-4, atol=1e-5)


def test_forward_all_needs_inputs_and_equal_lengths():
    net = cyffe.Net(NET, cyffe.TEST)
    with pytest.raises(cyffe.NetError, match="forward_pass|forward\\(\\)"):
        net.forward_all()
    with pytest.raises(cyffe.NetError, match="no blob named 'q'"):
        net.forward_all(q=np.zeros((3, 4)))
    with pytest.raises(cyffe.ShapeError, match="different lengths"):
        net.forward_all(x=np.zeros((3, 4)), h=np.zeros((2, 4)))
