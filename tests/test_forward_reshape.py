"""forward() reshapes a layer only when its blobs changed shape or memory, and still picks up
every change Caffe's reshape-before-every-forward would: a new input shape, an input given
new memory, a Filter's new count, a Python layer's reshape (always run)."""
import textwrap

import numpy as np
import pytest

import cyffe

NET = """
name: "small"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.3 }
                            bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "side" type: "Convolution" bottom: "pool" top: "side"
        convolution_param { num_output: 4 kernel_size: 1 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "sum" type: "Eltwise" bottom: "pool" bottom: "side" top: "sum" }
layer { name: "flat" type: "Flatten" bottom: "sum" top: "flat" }
layer { name: "prob" type: "Softmax" bottom: "flat" top: "prob" }
"""


def small_net(**kwargs):
    cyffe.set_random_seed(3)
    return cyffe.Net(NET, cyffe.TEST, **kwargs)


def images(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def reference(net, x):
    """What a fresh net with net's weights, built at x's shape, gives for x."""
    other = small_net()
    for name, blobs in net.params.items():
        for mine, theirs in zip(blobs, other.params[name]):
            theirs.data[...] = mine.data
    other.blobs["data"].reshape(x.shape)
    return other.forward(data=x)["prob"].copy()


def counting_reshapes(net):
    """{layer name: reshape calls}, counted from now on."""
    calls = {}
    for layer in net.layers:
        def counted(bottom, top, layer=layer, original=layer.reshape):
            calls[layer.name] = calls.get(layer.name, 0) + 1
            original(bottom, top)
        layer.reshape = counted
    return calls


def test_a_settled_net_skips_every_reshape():
    net = small_net()
    x = images((2, 3, 8, 8))
    net.forward(data=x)
    net.forward(data=x)
    calls = counting_reshapes(net)
    out = net.forward(data=x)["prob"].copy()
    net.forward()
    assert calls == {}
    np.testing.assert_array_equal(out, reference(net, x))


@pytest.mark.parametrize("how", ["feed", "reshape"])
def test_a_new_input_shape_reaches_every_layer(how):
    net = small_net()
    net.forward(data=images((2, 3, 8, 8)))
    net.forward()
    x = images((5, 3, 12, 12), seed=1)
    if how == "feed":
        out = net.forward(data=x)["prob"]
    else:
        net.blobs["data"].reshape(*x.shape)
        net.blobs["data"].data[...] = x
        out = net.forward()["prob"]
    assert out.shape == (5, 4 * 6 * 6)
    np.testing.assert_array_equal(out, reference(net, x))
    # and back, through a partial forward first
    x = images((1, 3, 8, 8), seed=2)
    net.forward(data=x, end="pool")
    np.testing.assert_array_equal(net.forward()["prob"], reference(net, x))


def test_a_layer_reshapes_only_when_its_blobs_changed():
    net = small_net()
    net.forward(data=images((2, 3, 8, 8)))
    net.forward()
    calls = counting_reshapes(net)
    net.blobs["side"].reshape(2, 4, 3, 3)       # someone spoils a top in the middle
    net.forward()
    # side's own reshape puts its top back; sum reads it (and pool, unchanged)
    assert set(calls) == {"side", "sum"}
    np.testing.assert_array_equal(net.blobs["prob"].data,
                                  reference(net, net.blobs["data"].data))


def test_an_input_given_new_memory_reaches_the_layers_sharing_it():
    net = small_net()
    net.forward(data=images((2, 3, 8, 8)))
    net.forward()
    x = images((2, 3, 8, 8), seed=4)
    net.blobs["data"].data = x.copy()
    np.testing.assert_array_equal(net.forward()["prob"], reference(net, x))
    # pool feeds a Split (side and sum read it): its tops follow pool's memory
    pool = net.blobs["pool"]
    pool.data = np.zeros_like(pool.data)
    split = [l for l in net.layers if l.type == "Split"][0]
    net.forward(start=split.name)
    assert net._top[net.layers.index(split)][0].shares_data_with(pool)
    np.testing.assert_array_equal(net.blobs["prob"].data, np.full((2, 64), 1 / 64, np.float32))


def test_switching_mode_reshapes_every_layer(mode):
    mode.set_mode_cpu()
    net = small_net()
    x = images((2, 3, 8, 8))
    net.forward(data=x)
    net.forward()
    calls = counting_reshapes(net)
    mode.set_mode_gpu(emulate=True)
    gpu = net.forward()["prob"].copy()
    assert set(calls) == {l.name for l in net.layers}
    mode.set_mode_cpu()
    np.testing.assert_allclose(net.forward()["prob"], gpu, rtol=1e-5)
    # Layers folded into a convolution (net/fold.py) don't run in a CPU forward.
    folded = {net.layers[li].name for _, skipped in net._folds.values() for li in skipped}
    assert folded
    assert calls == {name: 1 if name in folded else 2 for name in calls}


FILTER_NET = """
layer { name: "in" type: "Input" top: "x" top: "keep"
        input_param { shape { dim: 4 dim: 3 } shape { dim: 4 } } }
layer { name: "filter" type: "Filter" bottom: "x" bottom: "keep" top: "kept" }
layer { name: "double" type: "Power" bottom: "kept" top: "double" power_param { scale: 2 } }
"""


def test_filter_reshapes_every_forward_from_the_selector_values():
    net = cyffe.Net(FILTER_NET, cyffe.TEST)
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    for keep in ([1, 0, 1, 1], [0, 1, 0, 0], [1, 1, 1, 1]):
        out = net.forward(x=x, keep=np.array(keep, np.float32))["double"]
        np.testing.assert_array_equal(out, 2 * x[np.array(keep, bool)])


USER_MODULE = """
import cyffe


class CountingDouble(cyffe.Layer):
    reshapes = 0

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        type(self).reshapes += 1
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = 2 * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = 2 * top[0].diff
"""


def test_a_python_layer_reshapes_every_forward(tmp_path, monkeypatch):
    name = f"counting_layers_{abs(hash(str(tmp_path)))}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    net = cyffe.Net(f"""
        layer {{ name: "in" type: "Input" top: "x" input_param {{ shape {{ dim: 2 dim: 3 }} }} }}
        layer {{ name: "py" type: "Python" bottom: "x" top: "y"
                 python_param {{ module: "{name}" layer: "CountingDouble" }} }}
        layer {{ name: "relu" type: "ReLU" bottom: "y" top: "z" }}
        """, cyffe.TEST)
    layer = net.layer_dict["py"]
    before = type(layer).reshapes
    for _ in range(3):
        net.forward(x=np.ones((2, 3), np.float32))
    assert type(layer).reshapes == before + 3
    out = net.forward(x=np.full((4, 3), -1, np.float32))["z"]
    np.testing.assert_array_equal(out, np.zeros((4, 3), np.float32))
