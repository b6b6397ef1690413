"""Seeing training: per-layer norms, vanishing/exploding/dead-ReLU warnings, the plot, --diagnose."""
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

import cyffe
from cyffe.net.analysis.diagnostics import Diagnostics
from cyffe.proto import cyffe_pb2 as pb

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "diagnose"
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def quiet_solver(path, **fields):
    solver = cyffe.get_solver(str(path), log=lambda line: None)
    for name, value in fields.items():
        setattr(solver.param, name, value)
    return solver


def messages(diagnostics):
    return [message for _, message in diagnostics.warnings]


def test_the_deep_sigmoid_mlp_warns_that_its_low_layers_gradients_vanish():
    solver = quiet_solver(EXAMPLE / "sigmoid_solver.prototxt", test_interval=0)
    diagnostics = solver.enable_diagnostics(every=1)
    solver.step(2)
    found = messages(diagnostics)
    assert any("layer 'ip1' gradients vanish" in m for m in found), found
    assert not any("'score'" in m for m in found)
    assert diagnostics.history["iteration"] == [0, 1]
    grads = diagnostics.history["gradient"]
    assert grads["ip1"][-1] < 1e-4 * grads["score"][-1]


def test_the_same_mlp_with_relu_and_msra_gives_no_warning():
    solver = quiet_solver(EXAMPLE / "relu_solver.prototxt", test_interval=0)
    diagnostics = Diagnostics(solver, every=1)
    solver.step(3)
    assert diagnostics.warnings == []
    assert solver.diagnostics is diagnostics
    grads = diagnostics.history["gradient"]
    assert grads["ip1"][-1] > 1e-2 * grads["score"][-1]


TINY = """
name: "tiny"
layer { name: "input" type: "Input" top: "x" top: "t"
        input_param { shape { dim: 3 dim: 4 } shape { dim: 3 dim: 2 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "h"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 }
                              bias_filler { type: "constant" value: BIAS } } }
layer { name: "relu" type: "ReLU" bottom: "h" top: "h" }
layer { name: "ip2" type: "InnerProduct" bottom: "h" top: "y"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.5 }
                              bias_filler { type: "constant" value: 0.1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
"""


def tiny_solver(bias=0.2, **fields):
    param = pb.SolverParameter(base_lr=0.1, lr_policy="fixed", max_iter=10, random_seed=5,
                               **fields)
    text_format.Parse(TINY.replace("BIAS", str(bias)), param.net_param)
    return cyffe.SGDSolver(param, log=lambda line: None, dtype=np.float64)


def test_norms_and_update_ratios_match_a_hand_computation():
    solver = tiny_solver(momentum=0.9, weight_decay=0.01)
    diagnostics = solver.enable_diagnostics(every=1)
    rng = np.random.default_rng(0)
    x, t = rng.normal(size=(3, 4)), rng.normal(size=(3, 2))
    solver.net.blobs["x"].data[...] = x
    solver.net.blobs["t"].data[...] = t
    (w1, b1), (w2, b2) = [[b.data.copy() for b in solver.net.params[n]] for n in ("ip1", "ip2")]
    solver.step(1)

    h = np.maximum(x @ w1.T + b1, 0)
    y = h @ w2.T + b2
    dy = (y - t) / 3                                   # EuclideanLoss: sum((y-t)^2) / (2N)
    dw2, db2 = dy.T @ h, dy.sum(0)
    dh = (dy @ w2) * (h > 0)
    dw1, db1 = dh.T @ x, dh.sum(0)

    def norm(*arrays):
        return np.sqrt(sum(np.sum(a ** 2) for a in arrays))

    lr, decay = float(np.float32(0.1)), float(np.float32(0.01))   # solver fields are float32

    def ratio(grads, weights):                         # first step: v = lr * (g + decay * w)
        return norm(*[lr * (g + decay * w) for g, w in zip(grads, weights)]) / norm(*weights)

    latest = diagnostics.latest()
    assert latest["ip1"] == pytest.approx((norm(h), norm(dw1, db1),
                                           ratio([dw1, db1], [w1, b1])), rel=1e-9)
    assert latest["ip2"] == pytest.approx((norm(y), norm(dw2, db2),
                                           ratio([dw2, db2], [w2, b2])), rel=1e-9)
    assert diagnostics.history["dead_fraction"]["relu"] == [np.mean(h <= 0)]
    lines = diagnostics.table()
    assert lines[0] == "Diagnostics at iteration 0:"
    assert lines[2].split()[0] == "ip1" and lines[3].split()[0] == "ip2"


def test_records_only_every_n_iterations_and_logs_table_and_warnings():
    lines = []
    solver = tiny_solver(bias=-10)
    diagnostics = Diagnostics(solver, every=2, log=lines.append)
    solver.net.blobs["x"].data[...] = np.random.default_rng(1).normal(size=(3, 4))
    solver.step(5)
    assert diagnostics.history["iteration"] == [0, 2, 4]
    assert all(len(v) == 3 for v in diagnostics.history["update_ratio"].values())
    assert "Diagnostics at iteration 4:" in lines
    assert sum(line.startswith("Warning: ") for line in lines) == len(diagnostics.warnings)


def test_a_dead_relu_layer_is_named():
    solver = tiny_solver(bias=-10)
    diagnostics = solver.enable_diagnostics(every=1)
    solver.net.blobs["x"].data[...] = np.random.default_rng(2).normal(size=(3, 4))
    solver.step(1)
    found = messages(diagnostics)
    assert any("ReLU layer 'relu' is mostly dead (100% of its outputs are <= 0)" in m
               for m in found), found
    # A fully dead ReLU also stops every gradient below it.
    assert any("layer 'ip1' gradients vanish" in m for m in found), found


def test_exploding_and_non_finite_gradients_are_named():
    solver = tiny_solver()
    diagnostics = solver.enable_diagnostics(every=1)
    solver.step(1)
    diagnostics.history["gradient"]["ip1"][-1] = 1e5 * diagnostics.history["gradient"]["ip2"][-1]
    assert any("layer 'ip1' gradients explode" in m for m in diagnostics.check())
    diagnostics.history["gradient"]["ip1"][-1] = float("nan")
    assert any("layer 'ip1' gradients explode (norm nan)" in m for m in diagnostics.check())


def test_enable_diagnostics_attaches_once():
    solver = tiny_solver()
    first = solver.enable_diagnostics()
    assert solver.enable_diagnostics() is first and solver.diagnostics is first
    assert first.every == 100           # no display set: every 100 iterations


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed")
def test_plot_writes_a_png(tmp_path):
    solver = tiny_solver()
    diagnostics = solver.enable_diagnostics(every=1)
    solver.step(3)
    out = diagnostics.plot(tmp_path / "grads.png")
    assert Path(out).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_how_to_install_it(monkeypatch, tmp_path):
    solver = tiny_solver()
    diagnostics = solver.enable_diagnostics(every=1)
    solver.step(1)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(cyffe.CyffeError, match="pip install matplotlib"):
        diagnostics.plot(tmp_path / "grads.png")


def test_train_net_diagnose_prints_table_and_warnings_and_writes_the_png(tmp_path):
    png = tmp_path / "g.png"
    r = subprocess.run([sys.executable, "-m", "cyffe.tools.train_net",
                        "--solver", str(EXAMPLE / "sigmoid_solver.prototxt"),
                        "--max-iter", "20", "--display", "10", "--test-interval", "0",
                        "--diagnose", str(png)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    if not HAS_MATPLOTLIB:        # said before training, not after it
        assert r.returncode == 1 and 'pip install "cyffe[plot]"' in r.stderr
        assert "Iteration" not in r.stdout
        return
    assert r.returncode == 0, r.stderr
    assert "Diagnostics at iteration 10:" in r.stdout
    assert "Warning: iteration 10: layer 'ip1' gradients vanish" in r.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"Wrote gradient norms per layer to {png}" in r.stdout


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed")
def test_train_net_diagnose_puts_the_png_beside_the_weights(tmp_path):
    r = subprocess.run([sys.executable, "-m", "cyffe.tools.train_net",
                        "--solver", str(EXAMPLE / "relu_solver.prototxt"),
                        "--max-iter", "4", "--display", "2", "--test-interval", "0",
                        "--out", str(tmp_path / "w.caffemodel"), "--diagnose"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Warning" not in r.stdout
    assert (tmp_path / "w_gradients.png").exists()


def test_the_relu_example_gives_what_its_readme_says(tmp_path, monkeypatch, mode):
    # The README's figures are the CPU path's: 500 iterations of SGD amplify the GPU path's
    # other rounding into another trajectory (test accuracy 93.6% there, 96% here).
    mode.set_mode_cpu()
    monkeypatch.chdir(tmp_path)             # its snapshot goes to the working directory
    text = (EXAMPLE / "README.md").read_text()
    low, high, test_loss, accuracy = re.search(
        r"training loss falls to ([\d.]+)-([\d.]+) \(test loss about ([\d.]+)\) and test\s+"
        r"accuracy reaches about (\d+)%", text).groups()
    lines = []
    solver = cyffe.get_solver(str(EXAMPLE / "relu_solver.prototxt"), log=lines.append)
    solver.solve()
    final = float(re.search(r"Iteration 500, loss = ([\d.]+)", "\n".join(lines)).group(1))
    scores = solver.test()
    assert float(low) - 0.03 <= final <= float(high), final
    assert abs(float(scores["loss"]) - float(test_loss)) < 0.03, scores
    assert abs(100 * float(scores["accuracy"]) - int(accuracy)) < 1.5, scores
