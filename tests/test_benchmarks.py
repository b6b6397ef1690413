"""The benchmark suite runs its smallest configuration and reports in the documented shape.

No timing is asserted: only that every figure is there, positive, and written to both files.
"""
import json
import sys
from pathlib import Path

import pytest

from helpers.shared import shared_path

# benchmarks/ is run from the checkout (python -m benchmarks.run), not installed with cyffe.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
try:
    from benchmarks import nets, run, worker
finally:
    del sys.path[0]


@pytest.fixture(autouse=True)
def needs_shared():
    shared_path("data", "caffe-prototxt-input", "examples", "mnist", "lenet_train_test.prototxt")


def test_benchmark_nets_build_for_training_and_inference():
    from cyffe.net.graph import Net
    from cyffe.proto import cyffe_pb2 as pb
    for name in nets.NETS:
        train = Net(nets.train_param(name))
        assert train.outputs == ["loss"]
        assert train.blobs["data"].shape == (nets.batch_size(name),) + nets.image_shape(name)
        deploy = Net(nets.deploy_param(name), pb.TEST)
        assert deploy.blobs[deploy.outputs[0]].shape == (nets.batch_size(name), 10)


def test_gemm_work_of_the_caffe_nets_is_the_published_figure():
    """LeNet 0.84 and cifar10_quick 6.92 GFLOP per training iteration (issue 6's table)."""
    assert round(nets.train_gflop("lenet"), 2) == 0.84
    assert round(nets.train_gflop("cifar10_quick"), 2) == 6.92


def test_the_table_states_the_share_of_the_sgemm_limit():
    row = {"framework": "cyffe", "net": "lenet", "mode": "train", "threads": "2", "batch": 64,
           "images_per_s": 6400.0, "peak_rss_mb": 90.0}
    report = {"date": "d", "machine": {"cpu": "c", "cores": 2}, "rounds": 1, "iterations": 1,
              "loadavg_start": (0.5, 0.5, 0.5), "frameworks": ["cyffe"], "results": [row],
              "sgemm_gflops": [150.0, 168.8],
              "cyffe_sgemm": [{"gflops": 337.6, "avx512": True},
                              {"gflops": 300.0, "avx512": True}]}
    # 100 iterations/s x 0.844 GFLOP = 84 GFLOP/s, half of the better SGEMM figure
    table = run.markdown(report)
    assert ("cyffe lenet training at 2 threads: 84 GFLOP/s in its GEMMs (0.84 GFLOP per "
            "iteration), 50% of the SGEMM limit (169 GFLOP/s" in table)
    assert "25% of cyffe's own GEMM on that product (338 GFLOP/s, AVX-512 kernels)" in table


def test_quick_run_writes_table_and_json(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = run.main(["--quick", "--frameworks", "cyffe", "numpy", "--settings", "1",
                       "--output-dir", str(tmp_path)])
    rows = report["results"]
    assert {(r["framework"], r["mode"]) for r in rows} == {
        (f, m) for f in ("cyffe", "numpy") for m in ("train", "infer")}
    for r in rows:
        assert r["net"] == "lenet" and r["threads"] == "1" and r["batch"] == 64
        assert r["images_per_s"] > 0 and r["peak_rss_mb"] > 0 and len(r["loadavg"]) == 1
    profile = report["profiles"]["lenet"]
    assert [t["name"] for t in profile["layers"]][:3] == ["data", "conv1", "pool1"]
    assert 0 < profile["overhead"]["layers_only_ms"]
    saved = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert saved["results"] == json.loads(json.dumps(rows))
    table = next(tmp_path.glob("*.md")).read_text()
    assert "| lenet (64) | train | 1 |" in table and "| conv1 | Convolution |" in table
    assert len(saved["sgemm_gflops"]) == 2 and min(saved["sgemm_gflops"]) > 0
    assert len(saved["cyffe_sgemm"]) == 2 and min(r["gflops"] for r in saved["cyffe_sgemm"]) > 0


def test_numpy_reference_learns_a_fixed_batch():
    """The reference is a real SGD: its loss on one repeated batch goes down."""
    import numpy as np
    from benchmarks.numpy_ref import NumpyNet
    model = NumpyNet(nets.train_param("lenet"), (1, 28, 28), np.random.default_rng(0))
    data, label = worker._inputs("lenet")
    first = model.sgd_step(data, label)
    for _ in range(5):
        last = model.sgd_step(data, label)
    assert last < first


def test_numpy_reference_refuses_what_it_does_not_cover():
    import numpy as np
    from benchmarks.numpy_ref import NumpyNet
    with pytest.raises(ValueError, match="conv1"):
        NumpyNet(nets.train_param("cifar10_quick"), (3, 32, 32), np.random.default_rng(0))


def test_missing_shared_folder_is_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(nets.NETS, "lenet", (tmp_path / "absent.prototxt", 64, (1, 28, 28)))
    with pytest.raises(SystemExit) as stop:
        run.cli(["--quick", "--frameworks", "cyffe", "--output-dir", str(tmp_path)])
    assert stop.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "absent.prototxt is absent" in err[0]
