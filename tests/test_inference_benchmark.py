"""The inference suite (benchmarks/inference.py) runs its smallest configuration and reports.

No timing is asserted: only that every figure is there, that the seeded random weights
touch every parameter, that the outputs agree with OpenCV's where OpenCV is installed, and
that failures and disagreements are rows, not crashes.
"""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import cyffe
from helpers.shared import shared_path

# benchmarks/ is run from the checkout (python -m benchmarks.inference), not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
try:
    from benchmarks import inference, inference_worker, zoo
finally:
    del sys.path[0]

SMALL = """
name: "small"
input: "data"
input_dim: 5
input_dim: 3
input_dim: 12
input_dim: 12
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 8 kernel_size: 3 } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
layer { name: "scale" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc"
        inner_product_param { num_output: 10 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""


def lenet():
    return shared_path("data", "caffe-models", "lenet", "lenet_iter_10000.caffemodel")


def test_the_batch_is_set_in_the_file_before_the_net_is_built(tmp_path):
    path = tmp_path / "small.prototxt"
    path.write_text(SMALL)
    param = zoo.param_at_batch(path, 2)
    assert zoo.image_shape(param) == (3, 12, 12)
    net = cyffe.Net(param, cyffe.TEST)
    assert net.blobs["data"].shape == (2, 3, 12, 12) and net.outputs == ["prob"]
    assert zoo.output_layers(param, net.outputs) == ["prob"]


def test_random_weights_fill_every_param_at_unit_scale(tmp_path):
    path = tmp_path / "small.prototxt"
    path.write_text(SMALL)
    net = cyffe.Net(zoo.param_at_batch(path, 1), cyffe.TEST)
    data = np.random.default_rng(0).uniform(-100, 155, (1, 3, 12, 12)).astype(np.float32)
    zoo.random_weights(net, data, np.random.default_rng(1))
    mean, var, factor = (b.data for b in net.params["bn"])
    assert factor[0] == 1 and var.min() > 0 and mean.std() > 0
    for name in ("conv", "scale", "fc"):
        for blob in net.params[name]:
            assert blob.data.std() > 0, name
    # the forward pass that set the scales ends where a fresh one does, logits near 1
    fc = net.blobs["fc"].data.copy()
    assert 0.5 < fc.std() < 2
    np.testing.assert_allclose(net.forward(data=data, blobs=["fc"])["fc"], fc, rtol=1e-5,
                               atol=1e-6)


def test_difference_is_relative_to_the_reference_and_names_mismatches():
    a = np.array([[1.0, 2.0, 4.0]], np.float32)
    assert inference.difference([a], [a]) == 0
    assert inference.difference([a + 0.004], [a]) == pytest.approx(1e-3, rel=1e-3)
    assert inference.difference([a.reshape(3, 1, 1)], [a]) == 0
    assert inference.difference([a], [a[:, :2]]) == "shape (1, 3), OpenCV (1, 2)"
    assert inference.difference([a, a], [a]) == "2 outputs, OpenCV 1"


def test_failures_disagreements_and_skips_are_rows_of_the_table():
    rows = [{"net": "lenet", "batch": 1, "threads": "2",
             "cyffe": {"median_ms": 0.5, "peak_rss_mb": 80.0, "vs_opencv": 2e-3},
             "opencv": {"median_ms": 1.0, "peak_rss_mb": 70.0}, "cyffe_over_opencv": 0.5},
            {"net": "vgg16", "batch": 8, "threads": "2",
             "cyffe": {"error": "ShapeError: fc6"}, "opencv": {"median_ms": 9.0,
                                                              "peak_rss_mb": 900.0}}]
    report = {"date": "d", "machine": {"cpu": "c", "cores": 2, "opencv": "4.x"}, "rounds": 1,
              "iterations": 2, "seconds": 2.0, "warmup": 1, "tolerance": 1e-4,
              "frameworks": ["cyffe", "opencv"], "loadavg_start": (0.5,) * 3,
              "loadavg_end": (0.7,) * 3, "loadavg_peak": 0.9, "results": rows,
              "skipped": {"det1": "det1.prototxt is absent"}}
    table = inference.markdown(report)
    assert "| lenet | 1 | 2 | 0.50 | 1.00 | 0.50 | 80, 70 | **2.0e-03 DISAGREES** |" in table
    assert "| vgg16 | 8 | 2 | **FAILED** | 9.00 | — | —, 900 | — |" in table
    assert "FAILED: cyffe on vgg16 at batch 8 (2 threads): ShapeError: fc6" in table
    assert "Skipped det1: det1.prototxt is absent" in table
    assert "faster than OpenCV in 1 of 1 rows" in table


def test_quick_run_of_cyffe_writes_table_and_json(tmp_path):
    lenet()
    report = inference.main(["--quick", "--frameworks", "cyffe", "--output-dir", str(tmp_path)])
    rows = report["results"]
    assert [(r["net"], r["batch"], r["threads"]) for r in rows] == [("lenet", 1, "2"),
                                                                     ("lenet", 16, "2")]
    for r in rows:
        assert r["cyffe"]["median_ms"] > 0 and r["cyffe"]["peak_rss_mb"] > 0
        assert r["cyffe"]["vs_opencv"] is None
    saved = json.loads(next(tmp_path.glob("*-inference.json")).read_text())
    assert saved["results"] == json.loads(json.dumps(rows))
    assert "| lenet | 16 | 2 |" in next(tmp_path.glob("*-inference.md")).read_text()


def test_the_cyffe_worker_shares_blobs_and_saves_what_a_plain_net_gives(tmp_path, monkeypatch,
                                                                        capsys):
    path = tmp_path / "small.prototxt"
    path.write_text(SMALL)
    data = np.random.default_rng(0).standard_normal((4, 3, 12, 12)).astype(np.float32)
    np.save(tmp_path / "data.npy", data)
    plain = cyffe.Net(zoo.param_at_batch(path, 4), cyffe.TEST)
    plain.save(str(tmp_path / "small.caffemodel"))
    built, net_class = [], cyffe.Net

    def recording(*args, **kwargs):
        built.append(kwargs)
        return net_class(*args, **kwargs)

    monkeypatch.setattr(cyffe, "Net", recording)
    inference_worker.main(["cyffe", str(path), str(tmp_path / "small.caffemodel"),
                           str(tmp_path / "data.npy"), "--outputs", "prob", "--iterations", "1",
                           "--warmup", "0", "--save", str(tmp_path / "out.npz")])
    assert built == [{"weights": str(tmp_path / "small.caffemodel"), "share_blobs": True,
                      "keep": ["prob"]}]
    assert json.loads(capsys.readouterr().out)["peak_rss_mb"] > 0
    np.testing.assert_array_equal(np.load(tmp_path / "out.npz")["arr_0"],
                                  plain.forward(data=data)["prob"])


def test_quick_run_agrees_with_opencv(tmp_path):
    pytest.importorskip("cv2", reason="OpenCV is a benchmark-only dependency "
                                      "(pip install 'opencv-python-headless<5')")
    lenet()
    report = inference.main(["--quick", "--nets", "lenet", "mtcnn_det1", "--batch", "2",
                             "--output-dir", str(tmp_path)])
    assert len(report["results"]) == 2
    for row in report["results"]:
        assert row["opencv"]["median_ms"] > 0
        for f in report["frameworks"]:
            if f != "opencv" and f in row:
                assert row[f]["vs_opencv"] < 1e-4, (row["net"], f)


def test_a_net_whose_files_are_absent_is_skipped_with_its_reason(tmp_path, monkeypatch):
    lenet()
    monkeypatch.setitem(zoo.NETS, "lenet", zoo.NETS["lenet"]._replace(
        prototxt=tmp_path / "absent.prototxt"))
    report = inference.main(["--quick", "--frameworks", "cyffe", "--output-dir", str(tmp_path)])
    assert report["results"] == [] and "absent.prototxt is absent" in report["skipped"]["lenet"]


def test_a_net_cyffe_cannot_build_is_skipped_with_the_error(tmp_path, monkeypatch):
    lenet()

    def refuse(name, folder, seed):
        raise cyffe.NetError(f"{name}: layer 'conv1' (Convolution): no kernel")

    monkeypatch.setattr(zoo, "prepare", refuse)
    report = inference.main(["--quick", "--frameworks", "cyffe", "--output-dir", str(tmp_path)])
    assert report["results"] == []
    assert report["skipped"]["lenet"].endswith("lenet: layer 'conv1' (Convolution): no kernel")
    assert "Skipped lenet: cyffe could not build it" in next(tmp_path.glob("*.md")).read_text()
