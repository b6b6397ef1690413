"""Winograd F(4x4, 3x3) (layers/kernels/winograd.pyx): TEST-phase 3x3 stride-1 convolutions."""
import numpy as np
import pytest

from cyffe.layers.backend import set_random_seed
from cyffe.layers.kernels import winograd
from cyffe.layers.kernels.fingerprint import fingerprint
from cyffe.proto import cyffe_pb2 as pb

from helpers.conv_reference import make_conv, reference_conv, same_pads
from helpers.gradcheck import run_layer


@pytest.fixture(autouse=True)
def any_size(monkeypatch):
    """Small layers take Winograd too (the size limits are for speed, not correctness)."""
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 0)
    monkeypatch.setattr(winograd, "MIN_TILES", 0)
    monkeypatch.setattr(winograd, "MIN_COVERED", 0)


def test_the_transforms_are_f43():
    """A^T [(G g) * (B^T d)] is the 1-D correlation of 6 inputs with 3 taps."""
    bt = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                   [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]])
    g = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])
    at = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                   [0, 1, -1, 8, -8, 1]])
    rng = np.random.default_rng(0)
    d, k = rng.standard_normal(6), rng.standard_normal(3)
    np.testing.assert_allclose(at @ ((g @ k) * (bt @ d)), np.correlate(d, k, "valid"),
                               rtol=1e-12, atol=1e-12)


def conv_layer(fields, x, phase=pb.TEST, dtype=np.float64):
    """A seeded Convolution of fields in phase, run on x; returns (layer, top)."""
    set_random_seed(3)
    layer = make_conv(dtype=dtype, **fields)
    layer.phase = phase
    return layer, run_layer(layer, x.astype(dtype))[1]


# fields, pad; inputs of sizes that are and are not multiples of the 4x4 tile
CASES = {
    "pad1": (dict(num_output=5, kernel_size=[3], pad=[1]), (1, 1)),
    "pad0_nobias": (dict(num_output=4, kernel_size=[3], bias_term=False), (0, 0)),
    "pad2_1": (dict(num_output=3, kernel_size=[3], pad=[2, 1]), (2, 1)),
    "group2": (dict(num_output=6, kernel_size=[3], pad=[1], group=2), (1, 1)),
}


@pytest.mark.parametrize("own_weights", [1 << 20, 0])      # blocks of its own a thread, or not
@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("shape", [(1, 4, 8, 8), (3, 4, 7, 10), (2, 2, 3, 5), (1, 8, 13, 1)])
def test_forward_matches_the_direct_sum(monkeypatch, name, shape, own_weights):
    monkeypatch.setattr(winograd, "OWN_WEIGHTS", own_weights)
    fields, pad = CASES[name]
    x = np.random.default_rng(1).standard_normal(shape)
    if shape[3] + 2 * pad[1] < 3:
        pytest.skip("the kernel does not fit")
    layer, top = conv_layer(fields, x)
    assert (layer.winograd is not None) != layer.depthwise
    bias = layer.blobs[1].data if len(layer.blobs) > 1 else None
    expected = reference_conv(x, layer.blobs[0].data, bias, (1, 1), (1, 1), pad, pad,
                              fields.get("group", 1))
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("own_weights", [1 << 20, 0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [37, 70, 64])
def test_wide_rows_with_scales_bias_and_slopes(monkeypatch, dtype, width, own_weights):
    """Rows of 10, 18 and 16 tiles: the transforms' vectors of 8 or 16 tiles, the last one
    overlapping the one before, and the output pass's epilogue (x scale + bias, then a ReLU
    of a slope per output)."""
    monkeypatch.setattr(winograd, "OWN_WEIGHTS", own_weights)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 9, width))
    layer, _ = conv_layer(dict(num_output=4, kernel_size=[3], pad=[1]), x, dtype=dtype)
    scales, slopes = rng.uniform(0.5, 2, 4), np.array([0.0, 0.1, 1.0, -0.5])
    bias = layer.blobs[1].data
    y = np.empty((2, 4, 9, width), dtype)
    layer.winograd.run(layer.blobs[0].data, x.astype(dtype), y, bias, slopes, scales)
    z = reference_conv(x, layer.blobs[0].data.astype(np.float64), None, (1, 1), (1, 1), (1, 1),
                       (1, 1))
    z = z * scales[:, None, None] + bias.astype(np.float64)[:, None, None]
    expected = np.where(z > 0, z, z * slopes.astype(dtype).astype(np.float64)[:, None, None])
    tol = 1e-5 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(y, expected, rtol=0, atol=tol * np.abs(expected).max())


def test_float32_error_is_of_im2cols_order():
    """Against the float64 direct sum: Winograd's float32 error beside im2col's."""
    x = np.random.default_rng(2).standard_normal((2, 32, 17, 19))
    fields = dict(num_output=16, kernel_size=[3], pad=[1])
    wino, top = conv_layer(fields, x, dtype=np.float32)
    im2col, plain = conv_layer(fields, x, pb.TRAIN, np.float32)
    assert wino.winograd is not None and im2col.winograd is None
    w = wino.blobs[0].data.astype(np.float64)
    expected = reference_conv(x.astype(np.float32).astype(np.float64), w,
                              wino.blobs[1].data.astype(np.float64), (1, 1), (1, 1), (1, 1),
                              (1, 1))
    scale = np.abs(expected).max()
    winograd_error = np.abs(top[0].data - expected).max() / scale
    im2col_error = np.abs(plain[0].data - expected).max() / scale
    assert winograd_error < 1e-5 and winograd_error < 20 * im2col_error


def test_same_and_reflect_padding():
    x = np.random.default_rng(4).standard_normal((1, 3, 9, 6))
    fields = dict(num_output=2, kernel_size=[3], pad_scheme=pb.SAME, pad_fill=pb.REFLECT)
    layer, top = conv_layer(fields, x)
    assert layer.winograd is not None
    before, after = same_pads((9, 6), (3, 3), (1, 1), (1, 1))
    expected = reference_conv(x, layer.blobs[0].data, layer.blobs[1].data, (1, 1), (1, 1),
                              before, after, fill="reflect")
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-11, atol=1e-11)


def test_weights_changed_in_place_are_transformed_again():
    x = np.random.default_rng(5).standard_normal((1, 2, 6, 6))
    layer, top = conv_layer(dict(num_output=2, kernel_size=[3], pad=[1]), x)
    bottom = run_layer(layer, x)[0]
    layer.blobs[0].data[1, 0, 2, 2] += 1.0
    layer.forward(bottom, top)
    expected = reference_conv(x, layer.blobs[0].data, layer.blobs[1].data, (1, 1), (1, 1),
                              (1, 1), (1, 1))
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("fields", [dict(kernel_size=[3], stride=[2]),
                                    dict(kernel_size=[3], dilation=[2]),
                                    dict(kernel_size=[5])])
def test_only_3x3_stride1_undilated_takes_it(fields):
    layer, _ = conv_layer(dict(num_output=2, **fields), np.zeros((1, 2, 9, 9)))
    assert layer.winograd is None


def test_small_layers_keep_im2col(monkeypatch):
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 32)
    monkeypatch.setattr(winograd, "MIN_TILES", 16)
    monkeypatch.setattr(winograd, "WIDE_CHANNELS", 64)

    def takes_winograd(channels, outputs, num, height, width):
        return conv_layer(dict(num_output=outputs, kernel_size=[3], pad=[1]),
                          np.zeros((num, channels, height, width)))[0].winograd is not None

    assert takes_winograd(64, 64, 2, 16, 16)
    assert not takes_winograd(32, 64, 2, 16, 16)          # too narrow
    assert not takes_winograd(64, 64, 1, 12, 16)          # too few tiles
    # narrow products need 16 tiles an image and 32 in all; wide ones 16 in all
    assert not takes_winograd(64, 64, 1, 16, 16)
    assert not takes_winograd(64, 64, 4, 8, 8)
    assert takes_winograd(128, 128, 4, 8, 8)
    # tiles mostly outside the image: 13x13 takes 4x4 tiles of 16, 169 of 256 inside
    monkeypatch.setattr(winograd, "MIN_COVERED", 0.7)
    assert not takes_winograd(256, 256, 1, 13, 13)
    assert takes_winograd(256, 256, 1, 14, 14)


def test_training_forwards_keep_im2col():
    layer, _ = conv_layer(dict(num_output=2, kernel_size=[3]), np.zeros((1, 2, 6, 6)), pb.TRAIN)
    assert layer.winograd is None


@pytest.mark.parametrize("size", [1001, 70001])    # 70001 floats: the wide lanes, then the rest
def test_fingerprint_sees_every_byte(size):
    a = np.random.default_rng(6).standard_normal(size).astype(np.float32)
    first = fingerprint(a)
    assert fingerprint(a.copy()) == first
    for i in (0, 7, 500, size // 2, size - 64, size - 1):
        b = a.copy()
        b.view(np.uint8)[4 * i + 1] ^= 1
        assert fingerprint(b) != first
    assert fingerprint(a[:size - 1].copy()) != first
