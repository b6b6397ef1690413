"""The export_onnx tool: LeNet's real weights to an .onnx file that ONNX Runtime runs with
cyffe's outputs (a dynamic batch, another opset); an unmapped layer is one line and exit 1."""
import numpy as np
import pytest

import cyffe
from cyffe.tools.export_onnx import main
from helpers.onnx_check import TOLERANCE, relative_error, run_onnx
from helpers.shared import shared_path

onnx = pytest.importorskip("onnx", reason="the ONNX export needs onnx: pip install \"cyffe[onnx]\"")
pytest.importorskip("onnxruntime",
                    reason="checking ONNX exports needs onnxruntime: pip install onnxruntime")


def test_export_onnx_tool_writes_lenet(tmp_path, capsys):
    folder = shared_path("data", "caffe-models", "lenet")
    out = tmp_path / "lenet.onnx"
    assert main([str(folder / "lenet.prototxt"), str(folder / "lenet_iter_10000.caffemodel"),
                 str(out), "--dynamic_batch", "--opset", "18"]) == 0
    assert f"wrote {out}: opset 18" in capsys.readouterr().out
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    net = cyffe.Net(str(folder / "lenet.prototxt"), cyffe.TEST,
                    weights=str(folder / "lenet_iter_10000.caffemodel"))
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    got = run_onnx(model, {"data": x})["prob"]
    assert relative_error(got, net.forward(data=x)["prob"]) <= TOLERANCE


def test_export_onnx_tool_says_which_layer_does_not_map(tmp_path, capsys):
    proto = tmp_path / "filter.prototxt"
    proto.write_text('input: "data" input_shape { dim: 2 dim: 3 }\n'
                     'input: "keep" input_shape { dim: 2 }\n'
                     'layer { name: "pick" type: "Filter" bottom: "data" bottom: "keep" '
                     'top: "picked" }\n')
    net = cyffe.Net(str(proto), cyffe.TEST)
    net.save(str(tmp_path / "filter.caffemodel"))
    out = tmp_path / "filter.onnx"
    assert main([str(proto), str(tmp_path / "filter.caffemodel"), str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("export_onnx: error: ") and "layer 'pick' (Filter)" in err
    assert len(err.splitlines()) == 1 and not out.exists()
