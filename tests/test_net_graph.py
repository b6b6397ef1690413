"""The graph: ordering, splits, in-place, phases, loss weights, sharing, backward pruning."""
import numpy as np
import pytest

import cyffe
import helpers.toy_layers  # noqa: F401  (registers the Toy* layers)
from cyffe.proto import cyffe_pb2 as pb


def source(name, shape=(2, 3)):
    dims = " ".join(f"dim: {d}" for d in shape)
    return f'layer {{ name: "{name}" type: "ToySource" top: "{name}" dummy_data_param {{ shape {{ {dims} }} }} }}\n'


def scale(name, bottom, top=None, w=None, extra=""):
    filler = f"scale_param {{ filler {{ type: 'constant' value: {w} }} }}" if w is not None else ""
    return (f'layer {{ name: "{name}" type: "ToyScale" bottom: "{bottom}" top: "{top or name}" '
            f'{filler} {extra} }}\n')


def loss(name, bottom, extra=""):
    return f'layer {{ name: "{name}" type: "ToySquareLoss" bottom: "{bottom}" top: "{name}" {extra} }}\n'


def feed(net, **values):
    for k, v in values.items():
        net.blobs[k].data[...] = v


X = np.arange(6.0).reshape(2, 3) - 2.5


def test_layers_listed_out_of_order_run_in_dependency_order():
    text = loss("loss", "b") + scale("b", "a", w=3) + scale("a", "x", w=2) + source("x")
    net = cyffe.Net(text, cyffe.TRAIN)
    assert [l.name for l in net.layers] == ["x", "a", "b", "loss"]
    feed(net, x=X)
    net.forward()
    np.testing.assert_allclose(net.blobs["b"].data, 6 * X)
    assert net.loss == pytest.approx(0.5 * np.sum((6 * X) ** 2))


def test_file_order_is_kept_among_independent_layers():
    text = source("x") + scale("p", "x", w=1) + scale("q", "x", w=1) + loss("lp", "p") + loss("lq", "q")
    net = cyffe.Net(text)
    names = [l.name for l in net.layers if l.type != "Split"]
    assert names == ["x", "p", "q", "lp", "lq"]


def test_a_cycle_is_an_error_naming_its_layers():
    text = source("x") + scale("a", "b", top="a") + scale("b", "a", top="b")
    with pytest.raises(cyffe.NetError, match="cycle.*a.*b"):
        cyffe.Net(text)


def test_missing_bottom_names_the_layer_and_blob():
    with pytest.raises(cyffe.NetError, match="layer 'a'.*'nowhere'"):
        cyffe.Net(source("x") + scale("a", "nowhere"))


def test_unknown_type_names_it_and_lists_known_types():
    text = source("x") + 'layer { name: "u" type: "Frobnicate" bottom: "x" top: "u" }'
    with pytest.raises(cyffe.NetError, match=r"unknown layer type 'Frobnicate'.*known types:.*ToyScale"):
        cyffe.Net(text)


def test_syntax_error_gives_line_and_column(tmp_path):
    path = tmp_path / "bad.prototxt"
    path.write_text('name: "n"\nlayer {\n  name: "a"\n  typo: 3\n}\n')
    with pytest.raises(cyffe.ProtoError, match=r"bad.prototxt:4:\d+"):
        cyffe.Net(str(path))


def test_blob_consumed_twice_gets_a_split_that_sums_gradients():
    text = (source("x") + scale("a", "x", w=2) + scale("p", "a", w=3) + scale("q", "a", w=5)
            + loss("lp", "p") + loss("lq", "q"))
    net = cyffe.Net(text)
    splits = [l for l in net.layers if l.type == "Split"]
    assert len(splits) == 1 and splits[0].name == "a_a_0_split"
    feed(net, x=X)
    net.forward()
    net.backward()
    # d/da [0.5*(3a)^2 + 0.5*(5a)^2] = (9 + 25) a, and a = 2x
    expected_wa = np.sum((9 + 25) * (2 * X) * X)
    np.testing.assert_allclose(net.params["a"][0].diff, [expected_wa])


def test_in_place_layer_shares_the_blob_and_backprops():
    text = source("x") + scale("a", "x", w=2) + scale("twice", "a", top="a", w=3) + loss("l", "a")
    net = cyffe.Net(text)
    assert net.blobs["a"] is net._top[2][0] is net._bottom[2][0]
    feed(net, x=X)
    net.forward()
    np.testing.assert_allclose(net.blobs["a"].data, 6 * X)
    net.backward()
    # loss = 0.5 * (3 * wa * x)^2, so dloss/dwa = 9 * wa * x^2 with wa = 2
    np.testing.assert_allclose(net.params["a"][0].diff, [np.sum(18 * X * X)])


def test_reader_before_an_in_place_layer_sees_the_value_before_it():
    # "early" is listed before the in-place layer, so it reads a's first version.
    text = (source("x") + scale("a", "x", w=2) + scale("early", "a", w=1)
            + scale("inplace", "a", top="a", w=10) + loss("l1", "early") + loss("l2", "a"))
    net = cyffe.Net(text)
    feed(net, x=X)
    net.forward()
    np.testing.assert_allclose(net.blobs["early"].data, 2 * X)
    np.testing.assert_allclose(net.blobs["a"].data, 20 * X)


def test_phase_stage_and_level_rules():
    text = (source("x")
            + scale("train_only", "x", extra="include { phase: TRAIN }")
            + scale("test_only", "x", extra="include { phase: TEST }")
            + scale("not_deploy", "x", extra='exclude { stage: "deploy" }')
            + scale("deep", "x", extra="include { min_level: 2 }"))
    names = lambda net: {l.name for l in net.layers if l.type != "Split"}
    assert names(cyffe.Net(text, cyffe.TRAIN)) == {"x", "train_only", "not_deploy"}
    assert names(cyffe.Net(text, cyffe.TEST)) == {"x", "test_only", "not_deploy"}
    assert "not_deploy" not in names(cyffe.Net(text, cyffe.TEST, stages=["deploy"]))
    assert "deep" in names(cyffe.Net(text, cyffe.TEST, level=2))


def test_loss_weight_scales_loss_and_gradient_and_lives_in_the_top_diff():
    text = source("x") + scale("a", "x", w=1) + loss("l", "a", extra="loss_weight: 3")
    net = cyffe.Net(text)
    assert float(net.blobs["l"].diff) == 3
    feed(net, x=X)
    net.forward()
    assert net.loss == pytest.approx(3 * 0.5 * np.sum(X ** 2))
    net.backward()
    np.testing.assert_allclose(net.blobs["a"].diff, 3 * X)
    net.blobs["l"].diff[...] = 1.0          # writing the diff changes the weight, as in Caffe
    net.clear_param_diffs()
    net.forward()
    net.backward()
    np.testing.assert_allclose(net.blobs["a"].diff, X)


def test_zero_loss_weight_prunes_backward():
    text = source("x") + scale("a", "x", w=1) + loss("l", "a", extra="loss_weight: 0")
    net = cyffe.Net(text)
    feed(net, x=X)
    net.forward()
    net.backward()
    assert net.params["a"][0].diff[0] == 0


def test_param_diffs_accumulate_until_cleared():
    net = cyffe.Net(source("x") + scale("a", "x", w=2) + loss("l", "a"))
    feed(net, x=X)
    for _ in range(2):
        net.forward()
        net.backward()
    once = np.sum(2 * X * X)
    np.testing.assert_allclose(net.params["a"][0].diff, [2 * once])
    net.clear_param_diffs()
    assert net.params["a"][0].diff[0] == 0


def test_shared_params_are_one_blob_and_accumulate():
    spec = 'param { name: "w" }'
    text = (source("x") + scale("a", "x", w=2, extra=spec) + scale("b", "x", w=7, extra=spec)
            + loss("la", "a") + loss("lb", "b"))
    net = cyffe.Net(text)
    assert net.params["a"][0] is net.params["b"][0]
    assert len(net.learnable_params) == 1
    feed(net, x=X)
    net.forward()
    np.testing.assert_allclose(net.blobs["b"].data, 2 * X)   # the owner's value
    net.backward()
    np.testing.assert_allclose(net.params["a"][0].diff, [2 * np.sum(2 * X * X)])


def test_lr_mult_zero_and_propagate_down_false_skip_backward():
    frozen = 'param { lr_mult: 0 }'
    net = cyffe.Net(source("x") + scale("a", "x", w=2, extra=frozen) + loss("l", "a"))
    assert not any(net._layer_needs_backward)
    net = cyffe.Net(source("x") + scale("a", "x", w=2) + scale("b", "a", w=3, extra="propagate_down: false")
                    + loss("l", "b"))
    feed(net, x=X)
    net.forward()
    net.backward()
    assert net.params["a"][0].diff[0] == 0 and net.params["b"][0].diff[0] != 0


def test_force_backward_reaches_the_inputs():
    text = "force_backward: true\n" + source("x") + scale("a", "x", w=2) + loss("l", "a")
    net = cyffe.Net(text)
    feed(net, x=X)
    net.forward()
    net.backward()
    np.testing.assert_allclose(net.blobs["x"].diff, 4 * X)


def test_forward_feeds_inputs_and_returns_outputs():
    # Keywords feed the net's inputs, the tops of Input layers (as in pycaffe).
    x = 'layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'
    net = cyffe.Net(x + scale("a", "x", w=2) + loss("l", "a"), cyffe.TRAIN)
    assert net.outputs == ["l"]
    out = net.forward(x=X)
    assert out["l"] == pytest.approx(0.5 * np.sum((2 * X) ** 2))
    with pytest.raises(cyffe.NetError, match="no blob named 'nope'"):
        net.forward(nope=X)


def test_two_layers_may_share_a_name_as_in_caffe():
    # Caffe's own mnist_autoencoder names two loss layers "loss"; lookups by name take the last.
    net = cyffe.Net(source("x") + scale("a", "x", w=2) + scale("a", "x", top="a2", w=3))
    assert [l.name for l in net.layers] == ["x", "x_x_0_split", "a", "a"]
    assert net.params["a"][0].data[0] == 3


def test_save_and_copy_from_round_trip(tmp_path):
    text = source("x") + scale("a", "x", w=2) + loss("l", "a")
    net = cyffe.Net(text)
    net.params["a"][0].data[...] = 4.5
    path = tmp_path / "w.caffemodel"
    net.save(str(path))
    other = cyffe.Net(text, cyffe.TEST, weights=str(path))
    assert other.params["a"][0].data[0] == 4.5
    assert [p.name for p in tmp_path.iterdir()] == ["w.caffemodel"]   # nothing half-written


def test_missing_weights_file_names_it(tmp_path):
    with pytest.raises(cyffe.DataError, match="nope.caffemodel"):
        cyffe.Net(source("x") + scale("a", "x"), cyffe.TEST, weights=str(tmp_path / "nope.caffemodel"))


def test_wrong_number_of_bottoms_or_tops_names_the_layer_and_what_it_takes():
    two = source("x") + source("y")
    with pytest.raises(cyffe.NetError, match=r"layer 'r' \(ReLU\) takes 1 bottom blob\(s\), got 2"):
        cyffe.Net(two + 'layer { name: "r" type: "ReLU" bottom: "x" bottom: "y" top: "r" }')
    with pytest.raises(cyffe.NetError, match=r"layer 'l' \(SoftmaxWithLoss\) takes 1 to 2 top"):
        cyffe.Net(two + 'layer { name: "l" type: "SoftmaxWithLoss" bottom: "x" bottom: "y" '
                  'top: "a" top: "b" top: "c" }')
