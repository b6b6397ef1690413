"""MemoryData and Net.set_input_arrays: batches cut from arrays, wrapping; bad input."""
import numpy as np
import pytest

import cyffe
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError
from helpers.data_layers import forward, make_layer

LAYER = ('name: "m" type: "MemoryData" top: "data" top: "label" '
         'memory_data_param { batch_size: 2 channels: 1 height: 2 width: 3 }')


def arrays(n=6):
    data = np.arange(n * 6, dtype=np.float64).reshape(n, 1, 2, 3)
    return data, np.arange(n) + 10


def test_batches_in_order_wrapping_around():
    layer, top = make_layer(LAYER)
    data, labels = arrays()
    layer.reset(data, labels)
    assert top[0].shape == (2, 1, 2, 3) and top[1].shape == (2,)
    for rows in ([0, 1], [2, 3], [4, 5], [0, 1]):
        d, l = forward(layer, top)
        np.testing.assert_array_equal(d, data[rows])
        np.testing.assert_array_equal(l, labels[rows])


def test_skip():
    layer, top = make_layer(LAYER)
    layer.reset(*arrays())
    layer.skip(2)
    np.testing.assert_array_equal(forward(layer, top)[1], [14, 15])


def test_net_set_input_arrays_as_pycaffe():
    net = cyffe.Net(f"layer {{ {LAYER} }} layer {{ name: 'flat' type: 'Flatten' bottom: 'data' "
                    "top: 'flat' }", pb.TEST)
    data, labels = arrays()
    net.set_input_arrays(data.astype(np.float32), labels.reshape(-1, 1, 1, 1))
    net.forward()
    np.testing.assert_array_equal(net.blobs["flat"].data, data[:2].reshape(2, 6))
    np.testing.assert_array_equal(net.blobs["label"].data, [10, 11])


def test_bad_input():
    layer, top = make_layer(LAYER)
    with pytest.raises(NetError, match="set_input_arrays"):
        layer.forward([], top)
    with pytest.raises(ShapeError, match=r"must be \(N, 1, 2, 3\)"):
        layer.reset(np.zeros((2, 3, 2, 3)), np.zeros(2))
    with pytest.raises(ShapeError, match="multiple of batch_size 2"):
        layer.reset(*arrays(3))
    with pytest.raises(ShapeError, match="4 data rows but 3 labels"):
        layer.reset(arrays(4)[0], np.zeros(3))
    with pytest.raises(NetError, match="must be given and positive"):
        make_layer('name: "m" type: "MemoryData" top: "a" top: "b" '
                   'memory_data_param { batch_size: 2 }')
    with pytest.raises(NetError, match="not transformed"):
        make_layer(LAYER + " transform_param { scale: 2 }")
    net = cyffe.Net("layer { name: 'i' type: 'Input' top: 'x' input_param { shape { dim: 1 } } }")
    with pytest.raises(NetError, match="MemoryData first layer"):
        net.set_input_arrays(*arrays())
