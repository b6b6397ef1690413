"""Depthwise Convolution (group == channels): the direct kernels equal the im2col/GEMM path."""
import numpy as np
import pytest

from cyffe.layers.backend import set_random_seed
from cyffe.layers.blob import Blob
from cyffe.proto import cyffe_pb2 as pb

from helpers.conv_reference import make_conv, reference_conv, same_pads
from helpers.gradcheck import check_gradient, make_blobs, setup_layer

# fields of each configuration; input (2, 4, 7, 6)
CONFIGS = {
    "k3_p1": dict(num_output=4, kernel_size=[3], pad=[1]),
    "k3_s2_nobias": dict(num_output=4, kernel_size=[3], stride=[2], bias_term=False),
    "multiplier2_dilated": dict(num_output=8, kernel_size=[3], dilation=[2], pad=[1, 2]),
    "rect_hw": dict(num_output=4, kernel_h=2, kernel_w=3, stride_h=1, stride_w=2, pad_h=1),
    "k5_p2_s3": dict(num_output=12, kernel_size=[5], pad=[2], stride=[3]),
    "same_s2": dict(num_output=4, kernel_size=[3], stride=[2], pad_scheme=pb.SAME),
    "reflect": dict(num_output=4, kernel_size=[3], pad=[1, 2], pad_fill=pb.REFLECT),
    "replicate_same": dict(num_output=8, kernel_size=[4], pad_scheme=pb.SAME,
                           pad_fill=pb.REPLICATE),
}


def passes(fields, x, depthwise, dtype=np.float64, bottoms=1):
    """Forward + backward (seeded weights and top diffs); returns every output array."""
    set_random_seed(1)
    layer = make_conv(dtype=dtype, group=x.shape[1], **fields)
    bottom = [Blob(x.shape, dtype) for _ in range(bottoms)]
    for i, b in enumerate(bottom):
        b.data[...] = x + i
    top = setup_layer(layer, bottom, num_top=bottoms)
    assert layer.depthwise
    layer.depthwise = depthwise
    layer.forward(bottom, top)
    for i, t in enumerate(top):
        t.diff[...] = np.random.default_rng(2 + i).standard_normal(t.shape)
    for p in layer.blobs:
        p.diff[...] = 0.5
    layer.backward(top, [True] * bottoms, bottom)
    return ([t.data.copy() for t in top] + [b.diff.copy() for b in bottom] +
            [p.diff.copy() for p in layer.blobs])


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_direct_kernels_equal_the_group_loop(name, dtype):
    x = np.random.default_rng(0).standard_normal((2, 4, 7, 6))
    direct = passes(CONFIGS[name], x, True, dtype)
    general = passes(CONFIGS[name], x, False, dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for a, b in zip(direct, general):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_two_bottoms_share_the_weights():
    x = np.random.default_rng(3).standard_normal((2, 4, 5, 5))
    for a, b in zip(passes(CONFIGS["k3_p1"], x, True, bottoms=2),
                    passes(CONFIGS["k3_p1"], x, False, bottoms=2)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["k3_s2_nobias", "multiplier2_dilated", "same_s2"])
def test_forward_matches_reference(name):
    fields = CONFIGS[name]
    x = np.random.default_rng(4).standard_normal((2, 4, 7, 6))
    layer = make_conv(group=4, **fields)
    bottom = make_blobs(x)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    def per_axis(key, default):
        values = tuple(fields.get(key, [default]))
        return values * 2 if len(values) == 1 else values

    stride, dilation = per_axis("stride", 1), per_axis("dilation", 1)
    if "pad_scheme" in fields:
        before, after = same_pads((7, 6), (3, 3), stride, dilation)
    else:
        before = after = per_axis("pad", 0)
    bias = layer.blobs[1].data if len(layer.blobs) > 1 else None
    np.testing.assert_allclose(top[0].data, reference_conv(x, layer.blobs[0].data, bias, stride,
                                                           dilation, before, after, group=4),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["k3_p1", "k3_s2_nobias", "multiplier2_dilated", "reflect",
                                  "replicate_same"])
def test_gradient(name):
    layer = make_conv(group=3, **dict(CONFIGS[name], num_output=CONFIGS[name]["num_output"]
                                      // 4 * 3))
    bottom = make_blobs(np.random.default_rng(5).standard_normal((2, 3, 5, 4)))
    top = setup_layer(layer, bottom)
    assert layer.depthwise
    check_gradient(layer, bottom, top)


def test_not_depthwise_when_groups_are_wider_or_not_2d_or_one_channel():
    for fields, shape in ((dict(num_output=4, kernel_size=[3], group=2), (1, 4, 5, 5)),
                          (dict(num_output=20, kernel_size=[5]), (2, 1, 9, 9)),
                          (dict(num_output=4, kernel_size=[3], group=4), (1, 4, 5, 5, 5)),
                          (dict(num_output=4, kernel_size=[3], group=4, force_nd_im2col=True),
                           (1, 4, 5, 5))):
        layer = make_conv(**fields)
        setup_layer(layer, make_blobs(np.zeros(shape)))
        assert not layer.depthwise
