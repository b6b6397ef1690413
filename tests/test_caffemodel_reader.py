"""proto/caffemodel.py: a .caffemodel's layers read one at a time, the values left in the
file until they are copied into the net; older or unusual files go to the whole-file reader."""
import numpy as np
import pytest

import cyffe
from cyffe.proto import caffemodel
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.io import blobproto_to_array, read_net_weights, write_binary

NET = """
name: "small"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 6 dim: 6 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 1 }
                              bias_filler { type: "gaussian" std: 1 } } }
"""


def saved(tmp_path, seed=0):
    cyffe.set_random_seed(seed)
    net = cyffe.Net(NET, cyffe.TEST)
    path = tmp_path / "small.caffemodel"
    net.save(str(path))
    return net, path


def test_the_records_name_the_layers_and_where_their_values_lie(tmp_path):
    net, path = saved(tmp_path)
    records = caffemodel.layer_records(path)
    whole = read_net_weights(path)
    assert [lp.name for lp, _ in records] == [lp.name for lp in whole.layer]
    with open(path, "rb") as f:
        for (lp, values), full in zip(records, whole.layer):
            assert [tuple(b.shape.dim) for b in lp.blobs] == [tuple(b.shape.dim) for b in full.blobs]
            assert not any(len(b.data) for b in lp.blobs)       # left in the file
            for (offset, count), bp in zip(values, full.blobs):
                out = np.empty(count, np.float64)
                caffemodel.read_values(f, offset, count, out)
                np.testing.assert_array_equal(out, blobproto_to_array(bp).reshape(-1))


def test_a_net_loads_the_same_weights_either_way(tmp_path):
    net, path = saved(tmp_path, seed=1)
    for dtype in (np.float32, np.float64):
        other = cyffe.Net(NET, cyffe.TEST, weights=str(path), dtype=dtype)
        for name, blobs in net.params.items():
            for mine, theirs in zip(blobs, other.params[name]):
                np.testing.assert_array_equal(mine.data, theirs.data.astype(np.float32))


def unusual(path, edit):
    param = read_net_weights(path)
    edit(param)
    write_binary(param, path)
    return path


def v1(param):
    param.layers.add(name="old", type=pb.V1LayerParameter.CONVOLUTION)


def doubles(param):
    blob = param.layer[1].blobs[0]
    blob.double_data.extend(blob.data)
    del blob.data[:]


@pytest.mark.parametrize("edit", [v1, doubles])
def test_older_or_unusual_files_go_to_the_whole_file_reader(tmp_path, edit):
    _, path = saved(tmp_path)
    assert caffemodel.layer_records(unusual(path, edit)) is None


def test_a_file_cut_inside_the_values_is_left_to_the_whole_file_reader(tmp_path):
    _, path = saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-7])
    assert caffemodel.layer_records(path) is None
    with pytest.raises(cyffe.DataError, match="truncated or corrupt"):
        cyffe.Net(NET, cyffe.TEST, weights=str(path))
