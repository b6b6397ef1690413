"""The Net methods and module functions pycaffe scripts rely on, with their error cases."""
import numpy as np
import pytest

import cyffe
from cyffe import layers as L

N, D, H, K = 4, 6, 5, 3


def mlp(force_backward=False):
    n = cyffe.NetSpec()
    n.data, n.label = L.Input(shape=[dict(dim=[N, D]), dict(dim=[N])], ntop=2)
    n.ip1 = L.InnerProduct(n.data, num_output=H, weight_filler=dict(type="gaussian", std=0.5),
                           bias_filler=dict(type="constant", value=0.1))
    n.act = L.TanH(n.ip1, in_place=True)
    n.ip2 = L.InnerProduct(n.act, num_output=K, weight_filler=dict(type="gaussian", std=0.5))
    n.prob = L.Softmax(n.ip2)
    n.loss = L.SoftmaxWithLoss(n.ip2, n.label)
    proto = n.to_proto()
    proto.force_backward = force_backward
    return proto


X = np.random.default_rng(1).standard_normal((N, D)).astype(np.float32)
Y = np.array([0, 2, 1, 2], np.float32)


def fed_net(**kwargs):
    net = cyffe.Net(mlp(**kwargs), cyffe.TRAIN)
    net.blobs["data"].data[...] = X
    net.blobs["label"].data[...] = Y
    return net


def test_names_and_dicts():
    net = fed_net()
    assert net._layer_names == ["data", "ip1", "act", "ip2", "ip2_ip2_0_split", "prob", "loss"]
    assert list(net.layer_dict) == net._layer_names
    assert net.layer_dict["ip1"] is net.layers[1] and net.layer_dict["ip1"].type == "InnerProduct"
    assert net.top_names["data"] == ["data", "label"]
    assert net.top_names["act"] == ["ip1"]
    assert net.top_names["ip2_ip2_0_split"] == ["ip2_ip2_0_split_0", "ip2_ip2_0_split_1"]
    assert net.bottom_names["act"] == ["ip1"]
    assert net.bottom_names["prob"] == ["ip2_ip2_0_split_0"]
    assert net.bottom_names["loss"] == ["ip2_ip2_0_split_1", "label"]
    assert net.bottom_names["data"] == []
    assert list(net.top_names) == list(net.bottom_names) == net._layer_names


def test_forward_start_end_runs_only_those_layers():
    net = fed_net()
    full = net.forward()
    prob, loss = full["prob"].copy(), float(full["loss"])
    out = net.forward(end="act")                          # (ending at ip1 would leave
    assert list(out) == ["ip1"]                           # ip1 without act's tanh in place)
    assert net.loss == 0.0                                # no loss layer ran
    net.blobs["ip2"].data[...] = 0
    out = net.forward(start="ip2_ip2_0_split", end="prob")
    np.testing.assert_allclose(out["prob"], 1 / K, rtol=1e-6)    # ip2 was not recomputed
    out = net.forward(start="ip2")
    np.testing.assert_allclose(out["prob"], prob, rtol=1e-6)
    assert net.loss == pytest.approx(loss, rel=1e-6)
    out = net.forward(end="act", blobs=["data"])
    assert list(out) == ["ip1", "data"]


def test_forward_start_only_uses_the_blobs_as_they_are():
    net = fed_net()
    net.forward()
    ip1 = net.blobs["ip1"].data.copy()
    net.blobs["data"].data[...] = 0                       # not propagated: ip1 is skipped
    net.forward(start="ip2")
    np.testing.assert_array_equal(net.blobs["ip1"].data, ip1)


def test_backward_start_end_and_returned_diffs():
    net = fed_net(force_backward=True)
    net.forward()
    full = net.backward()
    assert list(full) == ["data", "label"]
    g_data, g_w1 = full["data"].copy(), net.params["ip1"][0].diff.copy()
    net.clear_param_diffs()
    part = net.backward(start="loss", end="ip2")         # stops before ip1's layers
    assert list(part) == ["ip1"]
    assert not np.any(net.params["ip1"][0].diff)
    assert np.any(net.params["ip2"][0].diff)
    rest = net.backward(start="act")                      # continues from ip1's diff
    np.testing.assert_allclose(rest["data"], g_data, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(net.params["ip1"][0].diff, g_w1, rtol=1e-5, atol=1e-7)
    out = net.backward(end="ip2", diffs=["prob"])
    assert list(out) == ["ip1", "prob"]


def test_backward_with_keyword_diffs():
    net = fed_net(force_backward=True)
    net.forward()
    net.blobs["loss"].diff[...] = 0
    d_prob = np.random.default_rng(2).standard_normal((N, K)).astype(np.float32)
    out = net.backward(start="prob", end="prob", prob=d_prob)
    p = net.blobs["prob"].data
    expected = p * (d_prob - np.sum(d_prob * p, axis=1, keepdims=True))
    np.testing.assert_allclose(out["ip2_ip2_0_split_0"], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("call, match", [
    (lambda net: net.forward(start="nope"), "no layer named 'nope'"),
    (lambda net: net.forward(end="nope"), "no layer named 'nope'"),
    (lambda net: net.forward(start="loss", end="ip1"), "'ip1' runs before it"),
    (lambda net: net.forward(nodata=X), "no blob named 'nodata' to feed"),
    (lambda net: net.forward(blobs=["nope"]), "no blob named 'nope' to return"),
    (lambda net: net.backward(start="ip1", end="loss"), "'loss' runs after it"),
    (lambda net: net.backward(end="nope"), "no layer named 'nope'"),
    (lambda net: net.backward(nope=1.0), "no blob named 'nope' to set the diff"),
    (lambda net: net.backward(diffs=["nope"]), "no blob named 'nope' to return"),
])
def test_bad_layer_and_blob_names(call, match):
    net = fed_net()
    net.forward()
    with pytest.raises(cyffe.NetError, match=match):
        call(net)


def test_reshape_after_reshaping_an_input():
    net = fed_net()
    net.blobs["data"].reshape(2, D)
    net.blobs["label"].reshape(2)
    net.reshape()
    assert net.blobs["ip1"].shape == (2, H) and net.blobs["prob"].shape == (2, K)
    net.blobs["data"].data[...] = X[:2]
    net.blobs["label"].data[...] = Y[:2]
    assert net.forward()["prob"].shape == (2, K)


def test_save_and_load_weights(tmp_path):
    net = fed_net()
    path = tmp_path / "mlp.caffemodel"
    net.save(str(path))
    other = cyffe.Net(mlp(), str(path), cyffe.TEST)
    for name in ("ip1", "ip2"):
        for mine, theirs in zip(net.params[name], other.params[name]):
            np.testing.assert_array_equal(mine.data, theirs.data)
    with pytest.raises(cyffe.DataError):
        cyffe.Net(mlp(), str(tmp_path / "missing.caffemodel"), cyffe.TEST)


def test_share_with():
    train, test = fed_net(), cyffe.Net(mlp(), cyffe.TEST)
    test.share_with(train)
    assert test.params["ip1"][0] is train.params["ip1"][0]
    train.params["ip1"][0].data[...] = 3
    assert np.all(test.params["ip1"][0].data == 3)


def test_modes_and_device(mode):
    cyffe.set_mode_cpu()
    assert mode.mode() == "cpu"
    cyffe.set_device(1)
    from cyffe.layers.backend import device
    assert device() == 1
    cyffe.set_device(np.int64(0))
    assert device() == 0
    for bad in (-1, 1.5, "0", True):
        with pytest.raises(cyffe.CyffeError, match="non-negative integer"):
            cyffe.set_device(bad)


def test_set_mode_gpu_names_cupy_when_it_is_missing(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(cyffe.CyffeError,
                       match=r"CuPy is not installed: pip install 'cyffe\[gpu\]'"):
        cyffe.set_mode_gpu(emulate=False)


def test_set_random_seed_makes_fillers_repeat():
    cyffe.set_random_seed(7)
    a = cyffe.Net(mlp(), cyffe.TRAIN).params["ip1"][0].data.copy()
    cyffe.set_random_seed(7)
    b = cyffe.Net(mlp(), cyffe.TRAIN).params["ip1"][0].data
    np.testing.assert_array_equal(a, b)


def test_layer_type_list():
    types = cyffe.layer_type_list()
    assert types == sorted(types)
    assert {"Convolution", "InnerProduct", "SoftmaxWithLoss", "Input"} <= set(types)


def test_public_methods_have_docstrings():
    for name in ("forward", "backward", "reshape", "save", "share_with", "copy_from",
                 "clear_param_diffs", "forward_from_to", "backward_from_to"):
        assert getattr(cyffe.Net, name).__doc__, name
    for name in ("layer_dict", "top_names", "bottom_names", "inputs", "outputs"):
        assert getattr(cyffe.Net, name).__doc__, name
    for fn in (cyffe.set_mode_cpu, cyffe.set_mode_gpu, cyffe.set_device, cyffe.set_random_seed,
               cyffe.layer_type_list, cyffe.NetSpec, cyffe.to_proto, cyffe.Classifier):
        assert fn.__doc__, fn
