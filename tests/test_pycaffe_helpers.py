"""pycaffe's helper modules by their names: cyffe.draw, cyffe.coord_map and Detector."""
import shutil

import numpy as np
import pytest

import cyffe
import cyffe.coord_map
import cyffe.draw
from cyffe import layers as L, params as P
from cyffe.proto import cyffe_pb2 as pb
from google.protobuf import text_format

NET = """
name: "drawn"
layer { name: "train" type: "Data" top: "data" include { phase: TRAIN }
        data_param { source: "x" batch_size: 8 } }
layer { name: "test" type: "Data" top: "data" include { phase: TEST }
        data_param { source: "y" batch_size: 2 } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        param { lr_mult: 1 } param { lr_mult: 2 }
        convolution_param { num_output: 7 kernel_size: 3 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
"""


def net_param():
    return text_format.Parse(NET, pb.NetParameter())


def test_draw_names_and_phases():
    dot = cyffe.draw.get_pydot_graph(net_param(), "TB").to_string()
    assert "rankdir=TB;" in dot
    # phase None: both phases' data layers, writing one ellipse "data".
    assert '"layer 0 train"' in dot and '"layer 1 test"' in dot
    assert dot.count('-> "blob data" [label=') == 2
    # pycaffe's edge labels: a Data layer's batch, a Convolution's outputs.
    assert '[label="Batch 8"]' in dot and '[label="7"]' in dot
    # The in-place ReLU makes a new version of its blob.
    assert '"blob conv" -> "layer 3 relu"' in dot and '"layer 3 relu" -> "blob conv (2)"' in dot
    test_only = cyffe.draw.get_pydot_graph(net_param(), "LR", phase=cyffe.TEST).to_string()
    assert "train" not in test_only and '"layer 0 test"' in test_only
    with_lrm = cyffe.draw.get_pydot_graph(net_param(), "LR", display_lrm=True).to_string()
    assert "lr mult: 1, 2" in with_lrm and "lr mult" not in dot
    assert cyffe.draw.get_edge_label(net_param().layer[3]) == '""'
    assert cyffe.draw.get_pooling_types_dict()[P.Pooling.MAX] == "MAX"
    assert cyffe.draw.choose_color_by_layertype("Pooling") != \
        cyffe.draw.choose_color_by_layertype("ReLU")


def test_draw_net_to_file_by_extension(tmp_path):
    path = tmp_path / "net.dot"
    cyffe.draw.draw_net_to_file(net_param(), str(path), "LR", cyffe.TRAIN)
    text = path.read_text()
    assert text == cyffe.draw.get_pydot_graph(net_param(), "LR", phase=cyffe.TRAIN).to_string()
    if shutil.which("dot") is None:
        with pytest.raises(cyffe.CyffeError, match="needs Graphviz's 'dot' program"):
            cyffe.draw.draw_net(net_param(), "LR")
        return
    assert cyffe.draw.draw_net(net_param(), "LR").startswith(b"\x89PNG")
    cyffe.draw.draw_net_to_file(net_param(), str(tmp_path / "net.pdf"))   # any Graphviz format
    assert (tmp_path / "net.pdf").read_bytes().startswith(b"%PDF")
    graph = cyffe.draw.get_pydot_graph(net_param(), "LR")
    assert graph.write_svg(str(tmp_path / "net.svg"))
    assert b"<svg" in (tmp_path / "net.svg").read_bytes()


def fcn_like():
    n = cyffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 20, 20]))
    n.conv = L.Convolution(n.data, kernel_size=3, pad=1, num_output=2,
                           weight_filler=dict(type="gaussian", std=0.1))
    n.pool = L.Pooling(n.conv, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.score = L.Convolution(n.pool, kernel_size=3, num_output=2,
                            weight_filler=dict(type="gaussian", std=0.1))
    n.up = L.Deconvolution(n.score, convolution_param=dict(kernel_size=4, stride=2,
                                                           num_output=2, bias_term=False))
    return n


def test_coord_map_composes_the_layers_maps():
    n = fcn_like()
    # By hand, each window centred: conv 3 pad 1 is the identity; pool 2/2 maps
    # x -> (x - 0.5) / 2; conv 3 without pad y -> y - 1; deconv 4/2 z -> 2 z + 1.5.
    # data -> up: 2 ((x - 0.5) / 2 - 1) + 1.5 = x - 1.
    axis, a, b = cyffe.coord_map.coord_map_from_to(n.data, n.up)
    assert axis == 1
    np.testing.assert_allclose(a, 1)
    np.testing.assert_allclose(b, -1)
    axis, a, b = cyffe.coord_map.coord_map_from_to(n.up, n.data)
    np.testing.assert_allclose(a, 1)
    np.testing.assert_allclose(b, 1)
    axis, a, b = cyffe.coord_map.coord_map_from_to(n.pool, n.data)
    np.testing.assert_allclose(a, 2)
    np.testing.assert_allclose(b, 0.5)


def test_crop_makes_the_crop_layer_that_aligns_the_grids():
    n = fcn_like()
    # up (18 x 18) lies inside the 20 x 20 input: it cannot be cropped onto it ...
    with pytest.raises(AssertionError, match="negative offset"):
        cyffe.coord_map.crop(n.up, n.data)
    # ... but a 24 x 24 input padded by 4 can: its grid is shifted by the pad.
    m = cyffe.NetSpec()
    m.data = L.Input(shape=dict(dim=[1, 1, 16, 16]))
    m.padded = L.Convolution(m.data, kernel_size=1, pad=4, num_output=1)
    m.conv = L.Convolution(m.padded, kernel_size=5, num_output=1)        # 24 -> 20
    m.score = cyffe.coord_map.crop(m.conv, m.data)
    proto = m.to_proto()
    crop = [lp for lp in proto.layer if lp.type == "Crop"][0]
    # padded x = data x + 4; conv y = padded x - 2: data x = conv y - 2, offset 2.
    assert crop.crop_param.axis == 2 and list(crop.crop_param.offset) == [2]
    net = cyffe.Net(proto, cyffe.TEST)
    assert net.blobs["score"].shape == (1, 1, 16, 16)
    with pytest.raises(cyffe.NetError, match="could not map coordinates"):
        cyffe.coord_map.coord_map_from_to(m.conv, L.Input(shape=dict(dim=[1])))


def detector_net(tmp_path):
    text = """
    name: "det"
    layer { name: "data" type: "Input" top: "data"
            input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
    layer { name: "score" type: "InnerProduct" bottom: "data" top: "score"
            inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.1 } } }
    """
    path = tmp_path / "det.prototxt"
    path.write_text(text)
    net = cyffe.Net(str(path), cyffe.TEST)
    weights = tmp_path / "det.caffemodel"
    net.save(str(weights))
    return str(path), str(weights), net


def test_detector_scores_each_window(tmp_path):
    image = pytest.importorskip("PIL.Image", reason="load_image needs Pillow")
    path, weights, reference = detector_net(tmp_path)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (20, 16, 3), dtype=np.uint8)
    image.fromarray(pixels).save(tmp_path / "a.png")
    detector = cyffe.Detector(path, weights, raw_scale=255)
    windows = [(0, 0, 8, 8), (4, 2, 20, 16), (10, 8, 18, 16)]
    found = detector.detect_windows([(str(tmp_path / "a.png"), windows)])
    assert [d["window"] for d in found] == windows
    assert all(d["filename"] == str(tmp_path / "a.png") for d in found)
    im = cyffe.io.load_image(str(tmp_path / "a.png"))
    for d in found:
        y0, x0, y1, x1 = d["window"]
        crop = cyffe.io.resize_image(im[y0:y1, x0:x1], (8, 8)).transpose(2, 0, 1) * 255
        reference.blobs["data"].reshape(1, 3, 8, 8)
        want = reference.forward(data=crop[None])["score"][0]
        np.testing.assert_allclose(d["prediction"], want, rtol=1e-4, atol=1e-5)


def test_detector_context_pad_fills_outside_the_image_with_the_mean(tmp_path):
    path, weights, _ = detector_net(tmp_path)
    mean = np.empty((3, 8, 8), np.float32)
    mean[:] = np.array([10, 20, 30], np.float32)[:, None, None]   # in the net's BGR order
    detector = cyffe.Detector(path, weights, mean=mean, raw_scale=255, channel_swap=(2, 1, 0),
                              context_pad=2)
    im = np.ones((8, 8, 3), np.float32)
    out = detector.crop(im, (0, 0, 7, 7))                   # the whole image, padded around
    assert out.shape == (8, 8, 3)
    # The corner lies outside the image: the mean, back in the image's RGB order and scale.
    np.testing.assert_allclose(out[0, 0], np.array([30, 20, 10]) / 255, rtol=1e-6)
    np.testing.assert_allclose(out[4, 4], 1.0, rtol=1e-6)   # the middle is the image
    assert detector.crop(im, (0, 0, 4, 4)).shape == (8, 8, 3)
