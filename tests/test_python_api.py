"""The pycaffe-style API and its semantics that users' scripts rely on."""
import numpy as np
import pytest

import cyffe
from cyffe.proto import cyffe_pb2 as pb
from google.protobuf import text_format

NET = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 4 dim: 6 } shape { dim: 4 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""
X = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
Y = np.array([0, 1, 2, 1], np.float32)


def test_net_from_path_string_and_message(tmp_path):
    path = tmp_path / "tiny.prototxt"
    path.write_text(NET)
    for model in (str(path), path, NET, text_format.Parse(NET, pb.NetParameter())):
        net = cyffe.Net(model, cyffe.TRAIN)
        assert net.name == "tiny"


def test_blobs_params_layers_inputs_outputs():
    net = cyffe.Net(NET, cyffe.TRAIN)
    assert list(net.blobs) == ["data", "label", "ip", "ip_ip_0_split_0", "ip_ip_0_split_1",
                               "prob", "loss"]
    assert net.blobs["data"].shape == (4, 6)
    assert list(net.params) == ["ip"]
    assert [b.shape for b in net.params["ip"]] == [(3, 6), (3,)]
    assert net.inputs == ["data", "label"]
    assert net.outputs == ["prob", "loss"]
    assert [l.type for l in net.layers][:2] == ["Input", "InnerProduct"]
    assert "Convolution" in cyffe.layer_type_list()


def test_data_is_live_and_input_layers_never_overwrite():
    net = cyffe.Net(NET, cyffe.TRAIN)
    net.blobs["data"].data[...] = X
    net.blobs["label"].data[...] = Y
    out = net.forward()                       # no arguments: runs on what is in the inputs
    w, b = net.params["ip"][0].data, net.params["ip"][1].data
    np.testing.assert_allclose(net.blobs["ip"].data, X @ w.T + b, rtol=1e-5)
    np.testing.assert_array_equal(net.blobs["data"].data, X)
    assert out["prob"] is net.blobs["prob"].data
    net.params["ip"][0].data[...] = 0         # writing a param changes what the net computes
    net.forward()
    np.testing.assert_allclose(net.blobs["prob"].data, 1 / 3, rtol=1e-6)


def test_forward_with_keyword_inputs_and_new_batch_size():
    net = cyffe.Net(NET, cyffe.TRAIN)
    out = net.forward(data=X[:2], label=Y[:2])
    assert out["prob"].shape == (2, 3)
    assert net.blobs["ip"].shape == (2, 3)


def test_backward_starts_from_the_output_diffs_and_loss_weight_is_the_top_diff():
    net = cyffe.Net(NET, cyffe.TRAIN)
    net.forward(data=X, label=Y)
    assert float(net.blobs["loss"].diff) == 1.0
    net.backward()
    g1 = net.params["ip"][0].diff.copy()
    net.clear_param_diffs()
    net.blobs["loss"].diff[...] = 2.0
    net.backward()
    np.testing.assert_allclose(net.params["ip"][0].diff, 2 * g1, rtol=1e-5)
    net.clear_param_diffs()
    net.blobs["loss"].diff[...] = 0.0
    net.blobs["prob"].diff[...] = 1.0         # softmax of a constant diff: zero gradient
    net.backward()
    np.testing.assert_allclose(net.params["ip"][0].diff, 0, atol=1e-6)


def test_param_diffs_accumulate_until_cleared():
    net = cyffe.Net(NET, cyffe.TRAIN)
    net.forward(data=X, label=Y)
    net.backward()
    once = net.params["ip"][0].diff.copy()
    net.backward()
    np.testing.assert_allclose(net.params["ip"][0].diff, 2 * once, rtol=1e-5)


def test_pycaffe_argument_orders(tmp_path):
    net = cyffe.Net(NET, cyffe.TRAIN)
    net.params["ip"][0].data[...] = 0.5
    weights = tmp_path / "w.caffemodel"
    net.save(str(weights))
    for other in (cyffe.Net(NET, str(weights), cyffe.TEST), cyffe.Net(NET, cyffe.TEST, weights=str(weights))):
        assert other.phase == cyffe.TEST
        np.testing.assert_array_equal(other.params["ip"][0].data, 0.5)


def test_solver_trains_on_what_the_user_writes_into_input_layers():
    solver_param = pb.SolverParameter(base_lr=0.5, lr_policy="fixed", max_iter=50, momentum=0.9)
    text_format.Parse(NET, solver_param.net_param)
    solver = cyffe.get_solver(solver_param, log=lambda line: None)
    assert isinstance(solver, cyffe.SGDSolver) and solver.iter == 0 and solver.test_nets == []
    solver.net.blobs["data"].data[...] = X
    solver.net.blobs["label"].data[...] = Y
    first = solver.net.forward()["loss"].item()
    solver.step(30)
    assert solver.iter == 30
    assert solver.net.forward()["loss"].item() < first / 4
    solver.solve()
    assert solver.iter == 50


def test_float64_nets():
    net = cyffe.Net(NET, cyffe.TRAIN, dtype=np.float64)
    out = net.forward(data=X, label=Y)
    assert out["prob"].dtype == np.float64 and net.params["ip"][0].data.dtype == np.float64


def test_errors_are_cyffe_errors():
    with pytest.raises(cyffe.CyffeError):
        cyffe.Net(NET.replace('"Softmax"', '"Softmx"'))
    with pytest.raises(cyffe.ShapeError, match="layer 'loss'"):
        cyffe.Net(NET.replace("shape { dim: 4 } }", "shape { dim: 5 } }"))


def test_batch_size_is_the_first_axis_of_the_data():
    assert cyffe.Net(NET, cyffe.TRAIN).batch_size == 4
