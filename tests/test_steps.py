"""A settled TEST net runs its layers' steps (layers/kernels/step.pyx): the same numbers as
the layers' Python forwards, bit for bit, and every change the Python path would see
(params edited in place, folded params, a new input shape) is seen."""
import numpy as np
import pytest

import cyffe
from cyffe.layers.kernels.step import Step

# Every layer type with a step, in the variants their kernels treat apart: folded and plain
# convolutions (grouped, strided, dilated, 1x1), max and average pooling with padding and
# Caffe's rounding up, InnerProduct with and without bias and transposed, ReLU, PReLU,
# Softmax over an inner axis, Split; and LRN and Concat, which run through Python between.
NET = """
name: "steps"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 4 dim: 13 dim: 11 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }
layer { name: "scale1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "prelu1" type: "PReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
        convolution_param { num_output: 6 kernel_size: 3 stride: 2 dilation: 2 group: 2 pad: 2 } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" relu_param { negative_slope: 0.1 } }
layer { name: "pool1" type: "Pooling" bottom: "conv2" top: "pool1"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
        pooling_param { pool: AVE kernel_size: 2 stride: 2 pad: 1 } }
layer { name: "lrn" type: "LRN" bottom: "pool2" top: "lrn" lrn_param { local_size: 3 } }
layer { name: "conv3" type: "Convolution" bottom: "lrn" top: "conv3"
        convolution_param { num_output: 6 kernel_size: 1 bias_term: false } }
layer { name: "cat" type: "Concat" bottom: "conv3" bottom: "lrn" top: "cat" }
layer { name: "prob_map" type: "Softmax" bottom: "cat" top: "prob_map" }
layer { name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1" inner_product_param { num_output: 9 } }
layer { name: "prelu2" type: "PReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 5 transpose: true bias_term: false } }
layer { name: "relu3" type: "ReLU" bottom: "ip2" top: "relu3" }
layer { name: "prob" type: "Softmax" bottom: "relu3" top: "prob" }
"""


@pytest.fixture(autouse=True)
def _cpu(mode):
    """Steps are the CPU's forward: GPU mode (and the gpu-emulated test run) has none."""
    mode.set_mode_cpu()


def test_gpu_mode_runs_no_plan(mode):
    mode.set_mode_gpu(emulate=True)
    net = steps_net()
    for _ in range(2):
        net.forward()
    assert net._plan is None


def seeded(net, seed=0):
    """net with seeded params (positive BatchNorm statistics) and input; returns it."""
    rng = np.random.default_rng(seed)
    for blobs in net.params.values():
        for blob in blobs:
            blob.data[...] = rng.uniform(0.2, 1.2, blob.shape) * rng.choice([-1, 1], blob.shape)
    for name in ("bn1",):
        for blob in net.params[name]:
            blob.data[...] = np.abs(blob.data)
    net.blobs["data"].data[...] = rng.standard_normal(net.blobs["data"].shape)
    return net


def steps_net(text=NET, seed=0, **kwargs):
    return seeded(cyffe.Net(text, cyffe.TEST, **kwargs), seed)


def blobs_of(net):
    return {name: blob.data.copy() for name, blob in net.blobs.items()}


def plan_kinds(net):
    """{layer name: 'step' or 'python'} of the net's plan."""
    items, order = net._plan
    return {net.layers[li].name: "python" if type(item) is int else "step"
            for item, li in zip(items, order)}


def test_a_settled_net_runs_steps_with_the_python_forwards_numbers():
    net = steps_net()
    net.forward()                                       # the Python forwards
    first = blobs_of(net)
    for _ in range(2):
        net.forward()
    kinds = plan_kinds(net)
    assert kinds.pop("lrn") == kinds.pop("cat") == "python"
    assert set(kinds.values()) == {"step"}
    assert "data" not in kinds and "bn1" not in kinds   # nothing to run; folded
    for name, value in blobs_of(net).items():
        np.testing.assert_array_equal(value, first[name], err_msg=name)


def test_params_changed_in_place_are_seen_folded_or_not():
    net = steps_net()
    for _ in range(2):
        net.forward()
    rng = np.random.default_rng(5)
    for layer, i in (("conv1", 0), ("bn1", 1), ("prelu1", 0), ("conv2", 0), ("ip1", 1),
                     ("prelu2", 0), ("ip2", 0)):
        blob = net.params[layer][i]
        blob.data[...] = np.abs(rng.uniform(0.2, 1.2, blob.shape))
    out = {k: v.copy() for k, v in net.forward().items()}
    fresh = cyffe.Net(NET, cyffe.TEST)
    for name, blobs in net.params.items():
        for mine, theirs in zip(blobs, fresh.params[name]):
            theirs.data[...] = mine.data
    fresh.blobs["data"].data[...] = net.blobs["data"].data
    for name, value in fresh.forward().items():
        np.testing.assert_array_equal(out[name], value, err_msg=name)
    assert plan_kinds(net)["conv1"] == "step"       # folded again, and a step again


def test_a_new_batch_size_makes_a_new_plan():
    net = steps_net()
    for _ in range(2):
        net.forward()
    x = np.random.default_rng(2).standard_normal((3, 4, 13, 11)).astype(np.float32)
    for _ in range(3):
        out = {k: v.copy() for k, v in net.forward(data=x).items()}
    fresh = steps_net()
    for name, value in fresh.forward(data=x).items():
        np.testing.assert_array_equal(out[name], value, err_msg=name)


def test_shared_blobs_and_batch_one_run_the_same_steps():
    x = np.random.default_rng(4).standard_normal((1, 4, 13, 11)).astype(np.float32)
    plain = steps_net()
    want = {k: v.copy() for k, v in plain.forward(data=x).items()}
    net = steps_net(share_blobs=True)
    for _ in range(3):
        got = net.forward(data=x)
    assert net._plan is not None
    for name, value in want.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)


def test_what_has_no_step_runs_through_python():
    """float64 nets run every layer through Python; TRAIN nets have no plan."""
    net64 = seeded(cyffe.Net(NET, cyffe.TEST, dtype=np.float64))
    for _ in range(2):
        net64.forward()
    assert set(plan_kinds(net64).values()) == {"python"}
    train = cyffe.Net(NET, cyffe.TRAIN)
    for _ in range(2):
        train.forward()
    assert train._plan is None


def test_a_step_refuses_too_little_scratch():
    from cyffe.layers.kernels.softmax import ForwardStep
    assert Step().scratch_need == 0
    step = ForwardStep(np.ones((2, 3, 4), np.float32), np.ones((2, 3, 4), np.float32))
    assert step.scratch_need == 2 * 4 * 4
    with pytest.raises(ValueError, match="scratch"):
        step.bind(np.empty(step.scratch_need - 1, np.uint8))


def test_a_step_watches_the_arrays_themselves():
    """A copy would never change: a watched array must be C-contiguous (edits to params in
    place are seen: test_params_changed_in_place_are_seen_folded_or_not)."""
    weights = np.ones((4, 6), np.float32)
    for view in (weights[:, ::2], weights.T):
        with pytest.raises(ValueError, match="C-contiguous"):
            Step().watch([view])
    assert isinstance(Step().watch([weights]), Step)
