"""cyffe.io: pycaffe's Transformer, image helpers and BlobProto converters."""
import sys

import numpy as np
import pytest

import cyffe
from cyffe import io as cio
from cyffe.proto import caffe_pb2

RNG = np.random.default_rng(0)


def transformer(shape=(2, 3, 4, 5)):
    t = cio.Transformer({"data": shape})
    t.set_transpose("data", (2, 0, 1))
    return t


def test_preprocess_steps_in_pycaffes_order():
    image = RNG.random((4, 5, 3)).astype(np.float32)
    mean = np.array([10.0, 20.0, 30.0])
    t = transformer()
    t.set_channel_swap("data", (2, 1, 0))
    t.set_raw_scale("data", 255.0)
    t.set_mean("data", mean)
    t.set_input_scale("data", 0.5)
    out = t.preprocess("data", image)
    expected = (image.transpose(2, 0, 1)[::-1] * 255.0 - mean[:, None, None]) * 0.5
    assert out.dtype == np.float32 and out.shape == (3, 4, 5)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(t.deprocess("data", out), image, rtol=1e-5, atol=1e-5)


def test_preprocess_resizes_and_leaves_the_input_alone():
    image = RNG.random((8, 10, 3)).astype(np.float64)
    copy = image.copy()
    out = transformer().preprocess("data", image)
    assert out.shape == (3, 4, 5)
    np.testing.assert_array_equal(image, copy)


def test_elementwise_mean():
    t = transformer()
    mean = RNG.random((3, 4, 5)).astype(np.float32)
    t.set_mean("data", mean)
    image = RNG.random((4, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(t.preprocess("data", image), image.transpose(2, 0, 1) - mean,
                               rtol=1e-6)
    gray = cio.Transformer({"data": (1, 1, 4, 5)})
    gray.set_mean("data", np.ones((4, 5)))
    assert gray.mean["data"].shape == (1, 4, 5)


@pytest.mark.parametrize("call, error, match", [
    (lambda t: t.preprocess("img", np.zeros((4, 5, 3))), cyffe.NetError, "'img' is not one"),
    (lambda t: t.set_raw_scale("img", 1), cyffe.NetError, "'img' is not one of the net inputs"),
    (lambda t: t.set_transpose("data", (1, 0)), cyffe.ShapeError, "needs 3 axes"),
    (lambda t: t.set_channel_swap("data", (1, 0)), cyffe.ShapeError, "needs 3 channels"),
    (lambda t: t.set_mean("data", np.zeros(4)), cyffe.ShapeError, "mean of 4 channels"),
    (lambda t: t.set_mean("data", np.zeros((3, 5, 4))), cyffe.ShapeError, "does not fit"),
])
def test_transformer_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(transformer())


def test_resize_image_bilinear_and_nearest():
    image = np.arange(4 * 6, dtype=np.float32).reshape(4, 6, 1)
    same = cio.resize_image(image, (4, 6))
    np.testing.assert_array_equal(same, image)
    assert same is not image
    # A linear ramp stays linear inside (edges are clamped).
    up = cio.resize_image(image, (8, 12))
    assert up.shape == (8, 12, 1)
    np.testing.assert_allclose(np.diff(up[2:6, 2:10, 0], axis=1), 0.5, rtol=1e-6)
    np.testing.assert_allclose(np.diff(up[2:6, 2:10, 0], axis=0), 3.0, rtol=1e-6)
    down = cio.resize_image(image, (2, 3))      # averages of 2x2 blocks
    blocks = image[:, :, 0].reshape(2, 2, 3, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(down[:, :, 0], blocks, rtol=1e-6)
    constant = cio.resize_image(np.full((3, 3, 2), 0.25), (7, 5))
    np.testing.assert_allclose(constant, 0.25)
    nearest = cio.resize_image(image, (2, 3), interp_order=0)
    np.testing.assert_array_equal(nearest[:, :, 0], image[1::2, 1::2, 0])


def test_resize_image_errors():
    with pytest.raises(cyffe.ShapeError, match="H x W x K"):
        cio.resize_image(np.zeros((4, 4)), (2, 2))
    with pytest.raises(cyffe.ShapeError, match="positive"):
        cio.resize_image(np.zeros((4, 4, 1)), (0, 2))
    with pytest.raises(cyffe.NetError, match="interp_order 3 is not supported"):
        cio.resize_image(np.zeros((4, 4, 1)), (2, 2), interp_order=3)


def test_oversample_corners_center_and_mirrors():
    images = RNG.random((2, 6, 7, 3)).astype(np.float32)
    crops = cio.oversample(images, (4, 5))
    assert crops.shape == (20, 4, 5, 3)
    im = images[1]
    expected = [im[:4, :5], im[:4, 2:], im[2:, :5], im[2:, 2:], im[1:5, 1:6]]
    expected += [c[:, ::-1] for c in expected]
    np.testing.assert_array_equal(crops[10:], np.stack(expected))
    with pytest.raises(cyffe.ShapeError, match="larger than the image"):
        cio.oversample(images, (7, 5))


def test_blobproto_round_trip():
    data = RNG.random((2, 3, 4)).astype(np.float32)
    diff = RNG.random((2, 3, 4)).astype(np.float32)
    blob = cio.array_to_blobproto(data, diff)
    assert isinstance(blob, caffe_pb2.BlobProto)
    np.testing.assert_array_equal(cio.blobproto_to_array(blob), data)
    np.testing.assert_array_equal(cio.blobproto_to_array(blob, return_diff=True), diff)
    legacy = caffe_pb2.BlobProto(num=1, channels=2, height=1, width=2, data=[1, 2, 3, 4])
    assert cio.blobproto_to_array(legacy).shape == (1, 2, 1, 2)
    with pytest.raises(cyffe.ShapeError, match="diff shape"):
        cio.array_to_blobproto(data, diff[:1])


def test_blobproto_without_a_shape_is_a_scalar_as_in_pycaffe():
    assert cio.blobproto_to_array(caffe_pb2.BlobProto(data=[123])) == 123
    with pytest.raises(ValueError, match="no shape \\(a scalar\\) holds 3 values"):
        cio.blobproto_to_array(caffe_pb2.BlobProto(data=[1, 2, 3]))
    with pytest.raises(cyffe.ShapeError, match="holds 3 diff values"):
        cio.blobproto_to_array(caffe_pb2.BlobProto(data=[1], diff=[1, 2, 3]), return_diff=True)


def test_datum_round_trip():
    pixels = RNG.integers(0, 256, (3, 2, 4)).astype(np.uint8)
    datum = cio.array_to_datum(pixels, label=7)
    assert datum.label == 7 and datum.data
    np.testing.assert_array_equal(cio.datum_to_array(datum), pixels)
    values = RNG.random((1, 2, 2)).astype(np.float32)
    np.testing.assert_array_equal(cio.datum_to_array(cio.array_to_datum(values)), values)
    with pytest.raises(cyffe.ShapeError, match="K x H x W"):
        cio.array_to_datum(np.zeros((2, 2)))


def test_load_image_without_pillow_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(cyffe.DataError, match="pip install pillow"):
        cio.load_image(str(tmp_path / "x.png"))


def test_load_image_with_pillow(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    pixels = RNG.integers(0, 256, (5, 4, 3)).astype(np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(pixels).save(path)
    color = cio.load_image(str(path))
    assert color.shape == (5, 4, 3) and color.dtype == np.float32
    np.testing.assert_allclose(color, pixels / 255.0, rtol=1e-6)
    gray = cio.load_image(str(path), color=False)
    assert gray.shape == (5, 4, 1) and gray.max() <= 1.0
    with pytest.raises(cyffe.DataError, match="no image file"):
        cio.load_image(str(tmp_path / "missing.png"))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(cyffe.DataError, match="cannot read"):
        cio.load_image(str(tmp_path / "bad.png"))


def test_io_is_importable_as_pycaffe_spells_it():
    import cyffe.io
    from cyffe.io import Transformer
    assert cyffe.io is cio and Transformer is cio.Transformer
