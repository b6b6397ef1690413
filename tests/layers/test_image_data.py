"""ImageData: images of a list file, BGR as OpenCV reads them, resize, gray, shuffle, shard/skip."""
import numpy as np
import pytest

from cyffe.layers.backend import set_random_seed
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import DataError
from helpers.data_layers import forward, make_layer

PIL = pytest.importorskip("PIL.Image")


@pytest.fixture
def images(tmp_path):
    """Five 4x6 RGB PNGs under tmp_path/img, a list file with labels 10..14, and their pixels."""
    r = np.random.default_rng(1)
    (tmp_path / "img").mkdir()
    rgb = r.integers(0, 256, (5, 4, 6, 3)).astype(np.uint8)
    lines = []
    for i, pixels in enumerate(rgb):
        name = f"im {i}.png"                       # a space: the label is after the last one
        PIL.fromarray(pixels).save(tmp_path / "img" / name)
        lines.append(f"{name} {10 + i}\n")
    (tmp_path / "list.txt").write_text("".join(lines))
    bgr = rgb[..., ::-1].transpose(0, 3, 1, 2)
    return tmp_path, bgr


def image_layer(folder, batch_size=2, extra="", transform="", phase=pb.TRAIN):
    text = (f'name: "im" type: "ImageData" top: "data" top: "label" '
            f'image_data_param {{ source: "{folder}/list.txt" root_folder: "{folder}/img/" '
            f'batch_size: {batch_size} {extra} }} transform_param {{ {transform} }}')
    return make_layer(text, phase)


def test_images_in_list_order_bgr_with_labels_looping(images):
    folder, bgr = images
    layer, top = image_layer(folder)
    assert top[0].shape == (2, 3, 4, 6)
    for rows in ([0, 1], [2, 3], [4, 0]):
        data, label = forward(layer, top)
        np.testing.assert_array_equal(data, bgr[rows])
        np.testing.assert_array_equal(label, np.array(rows) + 10)
    layer.stop()


def test_gray_and_resize(images):
    folder, _ = images
    layer, top = image_layer(folder, extra="is_color: false new_height: 3 new_width: 5")
    data, _ = forward(layer, top)
    want = np.asarray(PIL.open(folder / "img" / "im 0.png").convert("L").resize((5, 3),
                                                                               PIL.BILINEAR))
    assert data.shape == (2, 1, 3, 5)
    np.testing.assert_array_equal(data[0, 0], want)
    layer.stop()


def test_transform_param_applies(images):
    folder, bgr = images
    layer, top = image_layer(folder, transform="crop_size: 2 scale: 0.5", phase=pb.TEST)
    data, _ = forward(layer, top)
    np.testing.assert_allclose(data, bgr[:2, :, 1:3, 2:4] * 0.5)
    layer.stop()


def test_shuffle_is_a_new_permutation_each_pass_and_repeatable(images):
    folder, _ = images
    def passes():
        set_random_seed(4)
        layer, top = image_layer(folder, batch_size=5, extra="shuffle: true")
        got = [forward(layer, top)[1] - 10 for _ in range(3)]
        layer.stop()
        return got
    first = passes()
    for p in first:
        assert sorted(p) == [0, 1, 2, 3, 4]
    assert any(list(a) != list(b) for a, b in zip(first, first[1:]))
    for a, b in zip(first, passes()):
        np.testing.assert_array_equal(a, b)


def test_shard_skip_and_rand_skip(images):
    folder, _ = images
    layer, top = image_layer(folder, batch_size=1)
    layer.set_shard(1, 2)                       # lines 1, 3
    layer.skip(1)
    assert [forward(layer, top)[1][0] for _ in range(2)] == [13, 11]
    layer.stop()
    set_random_seed(2)
    layer, top = image_layer(folder, batch_size=1, extra="rand_skip: 4")
    assert forward(layer, top)[1][0] == 10 + layer.start and 0 <= layer.start < 4
    layer.stop()


def test_bad_input(images):
    folder, _ = images
    (folder / "img" / "broken.png").write_bytes(b"\x89PNG not really")
    (folder / "list.txt").write_text("im 0.png 1\nbroken.png 2\n")
    layer, top = image_layer(folder, batch_size=2)
    with pytest.raises(DataError, match="broken.png.*not a readable image"):
        forward(layer, top)
    (folder / "list.txt").write_text("missing.png 1\n")
    with pytest.raises(DataError, match="missing.png.*not found"):
        image_layer(folder)
    (folder / "list.txt").write_text("im 0.png one\n")
    with pytest.raises(DataError, match=r"list.txt:1: expected 'path label'"):
        image_layer(folder)
    PIL.fromarray(np.zeros((5, 5, 3), np.uint8)).save(folder / "img" / "big.png")
    (folder / "list.txt").write_text("im 0.png 1\nbig.png 2\n")
    layer, top = image_layer(folder, batch_size=2)
    with pytest.raises(DataError, match="big.png.*one shape"):
        forward(layer, top)
