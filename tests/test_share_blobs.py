"""share_blobs=True: the blobs nobody asked for share buffers by liveness (net/memory.py).

The outputs are bit-identical to a net that keeps every blob, over repeated forwards and new
input sizes; the blobs take less memory; what the pool makes unreadable is refused by name.
"""
import numpy as np
import pytest

import cyffe
from cyffe.net.memory import data_nbytes

from helpers.shared import shared_path

INPUT = 'layer { name: "data" type: "Input" top: "data" input_param { shape { %s } } }\n'


def conv(name, bottom, num, kernel=3, pad=1, stride=1):
    return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}" '
            f'convolution_param {{ num_output: {num} kernel_size: {kernel} pad: {pad} '
            f'stride: {stride} weight_filler {{ type: "gaussian" std: 0.2 }} '
            'bias_filler { type: "gaussian" std: 0.1 } } }\n')


def layer(name, kind, bottoms, tops=None, extra=""):
    tops = tops or [name]
    return (f'layer {{ name: "{name}" type: "{kind}" '
            + "".join(f'bottom: "{b}" ' for b in bottoms)
            + "".join(f'top: "{t}" ' for t in tops) + extra + " }\n")


def relu(blob):
    return layer(f"relu_{blob}", "ReLU", [blob], [blob])


# Split (conv1 feeds three layers), Concat, Eltwise, in-place ReLU, a Flatten view.
BRANCHY = (INPUT % "dim: 2 dim: 3 dim: 12 dim: 12" + conv("conv1", "data", 8) + relu("conv1")
           + conv("left", "conv1", 8) + relu("left") + conv("right", "conv1", 8, kernel=1, pad=0)
           + layer("sum", "Eltwise", ["left", "right", "conv1"])
           + layer("cat", "Concat", ["sum", "conv1"])
           + layer("pool", "Pooling", ["cat"], extra="pooling_param { pool: MAX kernel_size: 2 stride: 2 }")
           + layer("flat", "Flatten", ["pool"])
           + layer("fc", "InnerProduct", ["flat"],
                   extra='inner_product_param { num_output: 5 weight_filler { type: "xavier" } }')
           + layer("prob", "Softmax", ["fc"]))


def inception(name, bottom):
    """GoogLeNet's block: 1x1, 1x1-3x3, 1x1-5x5, pool-1x1 branches, concatenated."""
    return (conv(f"{name}_1x1", bottom, 4, 1, 0) + relu(f"{name}_1x1")
            + conv(f"{name}_3x3r", bottom, 3, 1, 0) + relu(f"{name}_3x3r")
            + conv(f"{name}_3x3", f"{name}_3x3r", 6) + relu(f"{name}_3x3")
            + conv(f"{name}_5x5r", bottom, 2, 1, 0) + relu(f"{name}_5x5r")
            + conv(f"{name}_5x5", f"{name}_5x5r", 3, 5, 2) + relu(f"{name}_5x5")
            + layer(f"{name}_pool", "Pooling", [bottom],
                    extra="pooling_param { pool: MAX kernel_size: 3 stride: 1 pad: 1 }")
            + conv(f"{name}_poolproj", f"{name}_pool", 3, 1, 0) + relu(f"{name}_poolproj")
            + layer(f"{name}_out", "Concat", [f"{name}_1x1", f"{name}_3x3", f"{name}_5x5",
                                              f"{name}_poolproj"]))


GOOGLENET_LIKE = (INPUT % "dim: 2 dim: 3 dim: 16 dim: 16" + conv("conv1", "data", 8, 7, 3, 2)
                  + relu("conv1")
                  + layer("norm1", "LRN", ["conv1"], extra="lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 }")
                  + inception("a", "norm1") + inception("b", "a_out")
                  + layer("gap", "Pooling", ["b_out"], extra="pooling_param { pool: AVE global_pooling: true }")
                  + layer("fc", "InnerProduct", ["gap"],
                          extra='inner_product_param { num_output: 7 weight_filler { type: "xavier" } }')
                  + layer("prob", "Softmax", ["fc"]))


def bn_scale(blob):
    return (layer(f"bn_{blob}", "BatchNorm", [blob], [blob])
            + layer(f"scale_{blob}", "Scale", [blob], [blob],
                    'scale_param { bias_term: true filler { type: "gaussian" std: 0.5 } '
                    'bias_filler { type: "gaussian" std: 0.1 } }'))


def residual(name, bottom, num, stride):
    """ResNet's bottleneck block with a projection shortcut."""
    return (conv(f"{name}_proj", bottom, num, 1, 0, stride) + bn_scale(f"{name}_proj")
            + conv(f"{name}_a", bottom, num // 2, 1, 0, stride) + bn_scale(f"{name}_a") + relu(f"{name}_a")
            + conv(f"{name}_b", f"{name}_a", num // 2) + bn_scale(f"{name}_b") + relu(f"{name}_b")
            + conv(f"{name}_c", f"{name}_b", num, 1, 0) + bn_scale(f"{name}_c")
            + layer(f"{name}", "Eltwise", [f"{name}_proj", f"{name}_c"]) + relu(name))


RESNET_LIKE = (INPUT % "dim: 2 dim: 3 dim: 16 dim: 16" + conv("conv1", "data", 8) + bn_scale("conv1")
               + relu("conv1") + residual("res2", "conv1", 8, 1) + residual("res3", "res2", 16, 2)
               + layer("gap", "Pooling", ["res3"], extra="pooling_param { pool: AVE global_pooling: true }")
               + layer("fc", "InnerProduct", ["gap"],
                       extra='inner_product_param { num_output: 6 weight_filler { type: "xavier" } }')
               + layer("prob", "Softmax", ["fc"]))

NETS = {"branchy": BRANCHY, "googlenet-like": GOOGLENET_LIKE, "resnet-like": RESNET_LIKE}


def pair(model, weights=None, **kwargs):
    """The same net twice, with the same weights: every blob kept, and shared."""
    def build(**extra):
        cyffe.set_random_seed(5)
        net = cyffe.Net(model, cyffe.TEST, weights=weights, **extra)
        for blobs in net.params.values():    # BatchNorm statistics that are not all zero
            for blob in blobs:
                if not np.any(blob.data):
                    blob.data[...] = np.random.default_rng(blob.count).uniform(0.5, 1.5, blob.shape)
        return net
    return build(), build(share_blobs=True, **kwargs)


def images(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def outputs(net, x):
    return {name: np.array(value) for name, value in net.forward(data=x).items()}


def assert_same(plain, shared, x):
    expected, got = outputs(plain, x), outputs(shared, x)
    assert expected.keys() == got.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


@pytest.mark.parametrize("name", sorted(NETS))
def test_outputs_are_bit_identical_forward_after_forward(name):
    plain, shared = pair(NETS[name])
    shape = plain.blobs["data"].shape
    assert shared.layers and shared._sharing.pooled
    for seed in range(3):
        assert_same(plain, shared, images(shape, seed))


def test_lenet_with_its_trained_weights_gives_the_same_digits():
    folder = shared_path("data", "caffe-models", "lenet")
    plain, shared = pair(str(folder / "lenet.prototxt"), str(folder / "lenet_iter_10000.caffemodel"))
    assert_same(plain, shared, images((64, 1, 28, 28)))


@pytest.mark.parametrize("name, grow", [("branchy", 0), ("googlenet-like", 4),
                                        ("resnet-like", 4)])
def test_a_new_input_size_plans_the_pool_again(name, grow):
    plain, shared = pair(NETS[name])
    n, c, h, w = plain.blobs["data"].shape
    assert_same(plain, shared, images((n, c, h, w)))
    buffers = shared._sharing.buffers
    for shape in ((n + 3, c, h + grow, w + 2 * grow), (1, c, h - grow, w), (n, c, h, w)):
        assert_same(plain, shared, images(shape, seed=sum(shape)))
        assert shared._sharing.buffers is not buffers
        buffers = shared._sharing.buffers
        assert all(blob._data is memory for blob, memory in shared._sharing.bindings)


@pytest.mark.parametrize("name, most", [("branchy", 0.85), ("googlenet-like", 0.6),
                                        ("resnet-like", 0.5)])
def test_the_blobs_take_less_memory(mode, name, most):
    mode.set_mode_cpu()
    plain, shared = pair(NETS[name])
    x = images(plain.blobs["data"].shape)
    outputs(plain, x), outputs(shared, x)
    assert data_nbytes(shared) < most * data_nbytes(plain)
    assert 0 < shared._sharing.nbytes < data_nbytes(shared)


def lives(net):
    """{id(memory): [first layer, last layer, the host array]} of the net's pooled blobs."""
    found = {}
    for li, blobs in enumerate(net._blobs_of):
        for blob in blobs:
            if any(blob is net.blobs[name] for name in net._sharing.pooled):
                life = found.setdefault(id(blob._data), [li, li, blob._data.host])
                life[1] = li
    return list(found.values())


@pytest.mark.parametrize("name", sorted(NETS))
def test_blobs_alive_at_once_never_share_bytes(mode, name):
    mode.set_mode_cpu()
    _, shared = pair(NETS[name])
    spans = lives(shared)
    assert len(spans) > 5
    for i, (first, last, array) in enumerate(spans):
        for other_first, other_last, other in spans[i + 1:]:
            if other_first <= last and first <= other_last:
                assert not np.shares_memory(array, other)


@pytest.mark.parametrize("name, slack", [("branchy", 1.0), ("googlenet-like", 1.1),
                                         ("resnet-like", 1.0)])
def test_the_block_is_about_the_most_bytes_alive_at_once(mode, name, slack):
    mode.set_mode_cpu()
    _, shared = pair(NETS[name])
    spans = lives(shared)
    padded = [(first, last, -(-array.nbytes // 64) * 64) for first, last, array in spans]
    most = max(sum(n for first, last, n in padded if first <= li <= last)
               for li in range(len(shared.layers)))
    # Greedy by size is a heuristic: on the inception blocks the gaps between big blobs
    # leave a little unused.
    assert most <= shared._sharing.nbytes <= slack * most


def test_gpu_mode_gives_every_blob_memory_of_its_own_and_cpu_mode_shares_again(mode):
    mode.set_mode_cpu()
    plain, shared = pair(BRANCHY)
    x = images(plain.blobs["data"].shape)
    assert_same(plain, shared, x)
    shared_bytes = data_nbytes(shared)
    mode.set_mode_gpu(emulate=True)
    assert_same(plain, shared, x)
    assert shared._sharing.buffers == [] and data_nbytes(shared) > shared_bytes
    mode.set_mode_cpu()
    assert_same(plain, shared, x)
    assert data_nbytes(shared) == shared_bytes


def test_a_concat_of_channels_at_batch_1_runs_in_place(mode):
    """Each bottom of an inception block's Concat is its slice of the top: nothing is copied,
    the outputs stay the same, and GPU mode (its own memory) copies again."""
    mode.set_mode_cpu()
    plain, shared = pair(GOOGLENET_LIKE.replace("dim: 2 dim: 3", "dim: 1 dim: 3"))
    x = images(plain.blobs["data"].shape)
    for _ in range(3):                           # the third forward runs the compiled plan
        assert_same(plain, shared, x)
    for block in ("a", "b"):
        top, start = shared.blobs[f"{block}_out"].data, 0
        for branch in ("1x1", "3x3", "5x5", "poolproj"):
            part = shared.blobs[f"{block}_{branch}"].data
            assert part.ctypes.data == top[:, start:].ctypes.data
            start += part.shape[1]
    planned = {shared._layer_names[li] for li in shared._plan[1]}
    assert "a_1x1" in planned and not {"a_out", "b_out"} & planned    # nothing left to run
    mode.set_mode_gpu(emulate=True)
    assert_same(plain, shared, x)
    mode.set_mode_cpu()
    assert_same(plain, shared, x)


def test_a_concat_of_what_others_read_later_copies(mode):
    """conv1 feeds the Concat and, after it, an Eltwise: it keeps memory of its own."""
    mode.set_mode_cpu()
    model = (INPUT % "dim: 1 dim: 2 dim: 5 dim: 5" + conv("conv1", "data", 3)
             + conv("conv2", "conv1", 3) + layer("cat", "Concat", ["conv2", "conv1"])
             + conv("conv3", "cat", 3) + layer("sum", "Eltwise", ["conv3", "conv1"]))
    plain, shared = pair(model)
    x = images(plain.blobs["data"].shape)
    assert_same(plain, shared, x)
    assert not np.shares_memory(shared.blobs["conv1"].data, shared.blobs["cat"].data)
    assert np.shares_memory(shared.blobs["conv2"].data, shared.blobs["cat"].data)


def test_kept_blobs_are_readable_and_pooled_ones_are_refused_by_name():
    plain, shared = pair(BRANCHY, keep=["sum"])
    x = images(plain.blobs["data"].shape)
    expected = plain.forward(data=x, blobs=["sum"])["sum"]
    np.testing.assert_array_equal(shared.forward(data=x, blobs=["sum"])["sum"], expected)
    assert "sum" not in shared._sharing.pooled and "cat" in shared._sharing.pooled
    with pytest.raises(cyffe.NetError, match=r"blob\(s\) cat, left share memory.*keep="):
        shared.forward(blobs=["prob", "cat", "left"])


def test_forward_to_a_layer_returns_its_tops_even_when_pooled():
    plain, shared = pair(BRANCHY)
    x = images(plain.blobs["data"].shape)
    expected = plain.forward(data=x, end="cat")["cat"]
    np.testing.assert_array_equal(shared.forward(data=x, end="cat")["cat"], expected)


def test_forward_from_a_layer_that_reads_pooled_blobs_is_refused_unless_they_are_kept():
    plain, shared = pair(BRANCHY)
    x = images(plain.blobs["data"].shape)
    shared.forward(data=x)
    with pytest.raises(cyffe.NetError, match="forward from layer 'pool' reads cat, which share"):
        shared.forward(start="pool")
    plain, shared = pair(BRANCHY, keep=["cat"])
    outputs(plain, x), outputs(shared, x)
    np.testing.assert_array_equal(shared.forward(start="pool")["prob"],
                                  plain.forward(start="pool")["prob"])


@pytest.mark.parametrize("model, why", [
    ("force_backward: true\n" + BRANCHY, "layer\\(s\\) conv1, .* do"),
    (BRANCHY + layer("loss", "EuclideanLoss", ["prob", "prob"]), "run no backward"),
])
def test_a_net_that_runs_backward_cannot_share(model, why):
    with pytest.raises(cyffe.NetError, match="share_blobs=True is for nets that run no backward"):
        cyffe.Net(model, cyffe.TEST, share_blobs=True)
    with pytest.raises(cyffe.NetError, match=why):
        cyffe.Net(model, cyffe.TEST, share_blobs=True)


def test_keep_names_blobs_the_net_has_and_needs_share_blobs():
    with pytest.raises(cyffe.NetError, match="keep names blobs the net does not have: nope"):
        cyffe.Net(BRANCHY, cyffe.TEST, share_blobs=True, keep=["sum", "nope"])
    with pytest.raises(cyffe.NetError, match="without it every blob is kept"):
        cyffe.Net(BRANCHY, cyffe.TEST, keep=["sum"])


def test_a_net_without_share_blobs_keeps_every_blob_readable():
    plain, _ = pair(BRANCHY)
    x = images(plain.blobs["data"].shape)
    blobs = plain.forward(data=x, blobs=["cat", "left"])
    assert plain._sharing is None and np.any(blobs["cat"]) and np.any(blobs["left"])
