import numpy as np
import pytest

from cyffe.layers.backend import set_random_seed
from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError

from helpers.gradcheck import setup_layer


def dummy(shapes=(), fillers=(), legacy=None, dtype=np.float32):
    param = pb.LayerParameter(name="dummy", type="DummyData")
    p = param.dummy_data_param
    for s in shapes:
        p.shape.add().dim.extend(s)
    for f in fillers:
        p.data_filler.add().CopyFrom(f)
    if legacy:
        for name, values in legacy.items():
            getattr(p, name).extend(values)
    return layer_class("DummyData")(param, pb.TRAIN, dtype)


def constant(value):
    return pb.FillerParameter(type="constant", value=value)


def gaussian(std=1.0):
    return pb.FillerParameter(type="gaussian", std=std)


def run(layer, num_top=1):
    top = setup_layer(layer, [], num_top=num_top)
    layer.reshape([], top)
    layer.forward([], top)
    return top


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_filler_is_zeros(dtype):
    top = run(dummy([(2, 3)], dtype=dtype), 2)
    for t in top:
        assert t.shape == (2, 3) and t.data.dtype == dtype
        np.testing.assert_array_equal(t.data, np.zeros((2, 3)))


def test_one_filler_for_all_tops_and_shape_per_top():
    top = run(dummy([(2, 3), (4,)], [constant(1.5)]), 2)
    assert [t.shape for t in top] == [(2, 3), (4,)]
    np.testing.assert_array_equal(top[0].data, 1.5)
    np.testing.assert_array_equal(top[1].data, 1.5)


def test_filler_per_top():
    set_random_seed(0)
    top = run(dummy([(50, 40)], [constant(2.0), gaussian(3.0)]), 2)
    np.testing.assert_array_equal(top[0].data, 2.0)
    assert abs(top[1].data.std() - 3.0) < 0.3


def test_legacy_dimensions():
    legacy = {"num": [2, 5], "channels": [3], "height": [4], "width": [1, 6]}
    top = run(dummy(legacy=legacy), 2)
    assert [t.shape for t in top] == [(2, 3, 4, 1), (5, 3, 4, 6)]


def test_constant_tops_are_filled_once_random_tops_every_forward():
    set_random_seed(1)
    layer = dummy([(3, 4)], [constant(1.0), gaussian()])
    top = run(layer, 2)
    top[0].data[...] = 7                    # a constant top is not refilled
    first = top[1].data.copy()
    layer.reshape([], top)
    layer.forward([], top)
    np.testing.assert_array_equal(top[0].data, 7)
    assert not np.array_equal(top[1].data, first)


def test_random_fill_follows_the_seed():
    set_random_seed(5)
    a = run(dummy([(3, 4)], [gaussian()]))[0].data.copy()
    set_random_seed(5)
    b = run(dummy([(3, 4)], [gaussian()]))[0].data.copy()
    np.testing.assert_array_equal(a, b)


def test_gpu_path_on_numpy_equals_cpu_path():
    cpu, gpu = dummy([(3, 4)], [gaussian()]), dummy([(3, 4)], [gaussian()])
    set_random_seed(9)
    t1 = setup_layer(cpu, [], num_top=1)
    cpu.forward_cpu([], t1)
    set_random_seed(9)
    t2 = setup_layer(gpu, [], num_top=1)
    gpu.forward_gpu([], t2)
    np.testing.assert_array_equal(t2[0].data, t1[0].data)
    cpu.backward_cpu(t1, [], [])
    gpu.backward_gpu(t2, [], [])


@pytest.mark.parametrize("kwargs,num_top,message", [
    (dict(shapes=[(1,), (2,)]), 3, "2 shapes given for 3 tops"),
    (dict(shapes=[(1,)], fillers=[constant(0), constant(1)]), 3, "2 data_filler"),
    (dict(shapes=[(1,)], legacy={"num": [1]}), 1, "not both"),
    (dict(legacy={"num": [1, 2], "channels": [1], "height": [1], "width": [1]}), 3, "2 num"),
    (dict(shapes=[(2, -3)]), 1, "negative"),
])
def test_bad_params_name_the_layer(kwargs, num_top, message):
    with pytest.raises(NetError, match=f"'dummy'.*{message}"):
        setup_layer(dummy(**kwargs), [], num_top=num_top)


def test_unknown_filler_is_refused():
    with pytest.raises(NetError, match="unknown filler"):
        setup_layer(dummy([(2,)], [pb.FillerParameter(type="nope")]), [], num_top=1)


def test_takes_no_bottom():
    with pytest.raises(NetError, match="'dummy'"):
        setup_layer(dummy([(1,)]), [Blob((1,))])
