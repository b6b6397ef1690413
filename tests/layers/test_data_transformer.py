"""transform_param semantics one by one, against Caffe's per-element loop written out here."""
import io

import numpy as np
import pytest

from cyffe.layers.pipeline.images import datum_to_array, decode_image
from cyffe.layers.pipeline.transformer import DataTransformer
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import DataError, NetError
from cyffe.proto.io import array_to_blobproto, write_binary


class Draws:
    """A stand-in generator whose integers() returns the given values in turn."""

    def __init__(self, *values):
        self.values = list(values)
        self.asked = []

    def integers(self, high):
        self.asked.append(high)
        return self.values.pop(0)


def caffe_loop(item, crop, h_off, w_off, mirror, scale, mean=None, mean_value=()):
    """Caffe's DataTransformer::Transform(Datum) inner loop, element by element."""
    c, h, w = item.shape
    ch, cw = (crop, crop) if crop else (h, w)
    out = np.zeros((c, ch, cw))
    for k in range(c):
        for i in range(ch):
            for j in range(cw):
                top_w = cw - 1 - j if mirror else j
                value = float(item[k, h_off + i, w_off + j])
                if mean is not None:
                    value -= mean[k, h_off + i, w_off + j]
                elif len(mean_value):
                    value -= mean_value[k if len(mean_value) > 1 else 0]
                out[k, i, top_w] = value * scale
    return out


def transformer(phase=pb.TRAIN, **fields):
    return DataTransformer(pb.TransformationParameter(**fields), phase)


ITEM = np.arange(3 * 5 * 6, dtype=np.uint8).reshape(3, 5, 6) * 2


def run(t, item, draws):
    out = np.empty(t.output_shape(item.shape), np.float32)
    t.transform(item, out, draws)
    return out


def test_scale_alone():
    out = run(transformer(scale=0.5), ITEM, Draws())
    np.testing.assert_allclose(out, ITEM * 0.5)


def test_mirror_flips_on_heads_only():
    t = transformer(mirror=True)
    np.testing.assert_array_equal(run(t, ITEM, Draws(1)), ITEM[:, :, ::-1])
    np.testing.assert_array_equal(run(t, ITEM, Draws(0)), ITEM)


def test_mirror_is_drawn_in_test_too_as_caffe():
    draws = Draws(1)
    out = run(transformer(pb.TEST, mirror=True), ITEM, draws)
    np.testing.assert_array_equal(out, ITEM[:, :, ::-1])
    assert draws.asked == [2]


def test_train_crop_takes_the_drawn_offsets_after_the_mirror_draw():
    draws = Draws(1, 1, 2)
    out = run(transformer(crop_size=3, mirror=True, scale=0.25), ITEM, draws)
    assert draws.asked == [2, 5 - 3 + 1, 6 - 3 + 1]
    np.testing.assert_allclose(out, caffe_loop(ITEM, 3, 1, 2, True, 0.25))


def test_test_crop_is_centred_and_draws_nothing():
    draws = Draws()
    out = run(transformer(pb.TEST, crop_size=3), ITEM, draws)
    np.testing.assert_allclose(out, caffe_loop(ITEM, 3, 1, 1, False, 1.0))
    assert draws.asked == []


def test_mean_file_is_cropped_with_the_item(tmp_path):
    mean = np.random.default_rng(0).uniform(0, 50, (1, 3, 5, 6)).astype(np.float32)
    path = tmp_path / "mean.binaryproto"
    write_binary(array_to_blobproto(mean), path)
    t = transformer(crop_size=4, mean_file=str(path), scale=0.1)
    out = run(t, ITEM, Draws(1, 2))
    np.testing.assert_allclose(out, caffe_loop(ITEM, 4, 1, 2, False, 0.1, mean=mean[0]),
                               rtol=1e-6)


def test_mean_file_found_beside_the_prototxt(tmp_path):
    write_binary(array_to_blobproto(np.ones((1, 3, 5, 6), np.float32)), tmp_path / "m.binaryproto")
    t = DataTransformer(pb.TransformationParameter(mean_file="m.binaryproto"), pb.TEST,
                        base_dir=str(tmp_path))
    np.testing.assert_allclose(run(t, ITEM, Draws()), ITEM - 1.0)


@pytest.mark.parametrize("values", [(10.0,), (10.0, 20.0, 30.0)])
def test_mean_value_one_or_per_channel(values):
    out = run(transformer(pb.TEST, mean_value=values, scale=2.0), ITEM, Draws())
    np.testing.assert_allclose(out, caffe_loop(ITEM, 0, 0, 0, False, 2.0, mean_value=values))


def test_float_data_datum():
    datum = pb.Datum(channels=1, height=2, width=2, float_data=[0.5, -1, 2, 3], label=4)
    np.testing.assert_array_equal(datum_to_array(datum), [[[0.5, -1], [2, 3]]])


def test_raw_datum():
    datum = pb.Datum(channels=3, height=5, width=6, data=ITEM.tobytes())
    np.testing.assert_array_equal(datum_to_array(datum), ITEM)


def png(array_hwc):
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(array_hwc).save(buf, format="PNG")
    return buf.getvalue()


def test_encoded_color_is_bgr_and_force_gray_gives_one_channel():
    pytest.importorskip("PIL")
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 0] = 200                       # red
    datum = pb.Datum(data=png(rgb), encoded=True)
    bgr = datum_to_array(datum)
    assert bgr.shape == (3, 2, 3)
    np.testing.assert_array_equal(bgr[2], 200)          # red is the last channel, as OpenCV's
    np.testing.assert_array_equal(bgr[0], 0)
    gray = datum_to_array(datum, force_gray=True)
    assert gray.shape == (1, 2, 3)
    np.testing.assert_array_equal(gray, round(200 * 0.299))


def test_encoded_gray_keeps_one_channel_unless_forced_to_color():
    pytest.importorskip("PIL")
    datum = pb.Datum(data=png(np.full((4, 5), 77, np.uint8)), encoded=True)
    assert datum_to_array(datum).shape == (1, 4, 5)
    color = datum_to_array(datum, force_color=True)
    assert color.shape == (3, 4, 5)
    np.testing.assert_array_equal(color, 77)


def test_bad_input():
    with pytest.raises(NetError, match="both mean_file and mean_value"):
        transformer(mean_file="m", mean_value=[1])
    with pytest.raises(NetError, match="both force_color and force_gray"):
        transformer(force_color=True, force_gray=True)
    with pytest.raises(DataError, match="larger than the 5x6 image"):
        transformer(crop_size=7).output_shape((3, 5, 6))
    with pytest.raises(DataError, match="2 mean_value values for 3 channels"):
        run(transformer(mean_value=[1, 2]), ITEM, Draws())
    with pytest.raises(DataError, match="holds 3 values"):
        datum_to_array(pb.Datum(channels=1, height=2, width=2, data=b"abc"))
    with pytest.raises(DataError, match="not a readable image"):
        decode_image(b"not an image", where="rec 7")
    with pytest.raises(DataError, match="cannot read mean_file"):
        transformer(mean_file="/nonexistent/mean.binaryproto")


def test_corrupt_mean_file(tmp_path):
    path = tmp_path / "bad.binaryproto"
    path.write_bytes(b"\xff\xff\xff garbage")
    with pytest.raises(DataError, match="bad.binaryproto"):
        transformer(mean_file=str(path))
