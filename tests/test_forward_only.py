"""forward_only: the layers whose backward a net will never run compute the same outputs, but
keep nothing for backward (max masks, LRN's scale, BatchNorm's normalized output, an
in-place layer's input)."""
import numpy as np
import pytest

import cyffe

BODY = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 6 dim: 9 dim: 9 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 6 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.3 }
                            bias_filler { type: "constant" value: 0.1 } } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv"
        batch_norm_param { use_global_stats: false } }
layer { name: "scale" type: "Scale" bottom: "conv" top: "conv"
        scale_param { bias_term: true filler { type: "gaussian" std: 0.5 } } }
layer { name: "lrn" type: "LRN" bottom: "conv" top: "lrn" lrn_param { local_size: 3 alpha: 0.5 } }
layer { name: "pool" type: "Pooling" bottom: "lrn" top: "pool" top: "where"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "avg" type: "Pooling" bottom: "lrn" top: "avg"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "max" type: "Eltwise" bottom: "pool" bottom: "avg" bottom: "pool2" top: "max"
        eltwise_param { operation: MAX } }
layer { name: "pool2" type: "Pooling" bottom: "lrn" top: "pool2"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
"""


def build(force_backward):
    cyffe.set_random_seed(7)
    head = "force_backward: true\n" if force_backward else ""
    return cyffe.Net(head + BODY, cyffe.TEST)


def run(net):
    x = np.random.default_rng(1).standard_normal((2, 6, 9, 9)).astype(np.float32)
    out = net.forward(data=x, blobs=["where"])
    return {name: np.array(value) for name, value in out.items()}


def test_a_net_without_backward_marks_every_layer_forward_only_and_one_with_it_its_input_only():
    assert all(layer.forward_only for layer in build(False).layers)
    assert [layer.name for layer in build(True).layers if layer.forward_only] == ["data"]


def test_forward_only_layers_give_the_outputs_of_layers_that_keep_for_backward():
    kept, lean = run(build(True)), run(build(False))
    assert kept.keys() == lean.keys() == {"max", "where"}
    for name in kept:
        np.testing.assert_array_equal(lean[name], kept[name], err_msg=name)


def test_forward_only_layers_keep_nothing_for_backward(mode):
    mode.set_mode_cpu()
    lean, kept = build(False), build(True)
    run(lean), run(kept)
    for net, keeps in ((lean, False), (kept, True)):
        layers = net.layer_dict
        held = {"pool": layers["pool"]._mask, "max": layers["max"].mask,
                "lrn": layers["lrn"].scale,
                "bn": layers["bn"].x_norm, "scale": getattr(layers["scale"], "_kept_input", None)}
        assert all((value is not None) == keeps for value in held.values()), held


def test_the_net_runs_backward_through_layers_that_keep_for_backward():
    net = build(True)
    run(net)
    net.blobs["max"].diff[...] = 1
    grads = net.backward()
    assert np.isfinite(grads["data"]).all() and np.abs(grads["data"]).sum() > 0


@pytest.mark.parametrize("batch", [1, 3])
def test_forward_only_follows_a_new_input_shape(batch):
    lean, kept = build(False), build(True)
    x = np.random.default_rng(batch).standard_normal((batch, 6, 13, 11)).astype(np.float32)
    np.testing.assert_array_equal(lean.forward(data=x)["max"], kept.forward(data=x)["max"])


def test_a_gradient_check_runs_backward_through_forward_only_layers_and_leaves_them_so():
    from cyffe.net.analysis.gradcheck import check_net_gradients

    cyffe.set_random_seed(7)
    net = cyffe.Net(BODY, cyffe.TEST, dtype=np.float64)
    net.blobs["data"].data[...] = np.random.default_rng(2).standard_normal((2, 6, 9, 9))
    reports = {r.name: r for r in check_net_gradients(net, max_checks=20)}
    # Max pooling and Eltwise MAX ran backward (they need the mask forward kept); their
    # values are not compared: the index top and the tied bottoms of this net are kinks.
    assert all(reports[name].checked for name in ("pool", "pool2", "max"))
    assert all(reports[name].worst < 1e-6 for name in ("bn", "scale", "lrn", "avg")), reports
    assert all(layer.forward_only for layer in net.layers)
