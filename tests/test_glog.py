"""Caffe's log lines: glog's prefix on stderr, the solver's and a net setup's words and numbers."""
import io
import re

import pytest

import cyffe
from cyffe import layers as L
from cyffe.net import glog
from cyffe.proto import cyffe_pb2 as pb

PREFIX = r"I\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ (\w+\.py):\d+\] "


def lenet_like():
    n = cyffe.NetSpec()
    n.data, n.label = L.DummyData(shape=[dict(dim=[4, 1, 6, 6]), dict(dim=[4])], ntop=2,
                                  data_filler=[dict(type="gaussian"), dict(type="constant")])
    n.conv = L.Convolution(n.data, kernel_size=3, num_output=2,
                           weight_filler=dict(type="gaussian", std=0.1))
    n.relu = L.ReLU(n.conv, in_place=True)
    n.ip = L.InnerProduct(n.relu, num_output=3, weight_filler=dict(type="gaussian", std=0.1))
    n.accuracy = L.Accuracy(n.ip, n.label)
    n.loss = L.SoftmaxWithLoss(n.ip, n.label, loss_weight=2)
    return n.to_proto()


def test_the_solver_writes_glog_lines_to_stderr(capsys):
    param = pb.SolverParameter(base_lr=0.1, lr_policy="fixed", max_iter=2, display=1,
                               test_iter=[1], test_interval=2, snapshot_after_train=False)
    param.train_net_param.CopyFrom(lenet_like())
    param.test_net_param.add().CopyFrom(lenet_like())
    solver = cyffe.SGDSolver(param)
    solver.solve()
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    for line in lines:
        assert re.match(PREFIX, line) and re.match(PREFIX, line).group(1) == "solver.py", line
    text = "\n".join(re.sub(PREFIX, "", line) for line in lines)
    assert "Creating training net specified in train_net_param." in text
    assert "Creating test net (#0) specified by test_net_param" in text
    assert re.search(r"^Iteration 1 \([\d.e+]+ iter/s, [\d.e+-]+s/1 iters\), loss = [\d.]+$",
                     text, re.M)
    # As Caffe: outputs in name order, numbered across them, the loss with its weight.
    loss = re.search(r"^    Train net output #1: loss = (\S+) \(\* 2 = (\S+) loss\)$", text, re.M)
    assert float(loss.group(2)) == pytest.approx(2 * float(loss.group(1)), rel=1e-5)
    assert re.search(r"^    Train net output #0: accuracy = \S+$", text, re.M)
    assert re.search(r"^Iteration 1, lr = 0.1$", text, re.M)
    assert re.search(r"^Iteration 2, Testing net \(#0\)\n    Test net output #0: accuracy = "
                     r"\S+\n    Test net output #1: loss = \S+ \(\* 2 = \S+ loss\)$", text, re.M)
    assert text.endswith("Optimization Done.")


def test_init_log_shows_the_net_setup_and_can_drop_the_prefix():
    stream = io.StringIO()
    cyffe.init_log(prefix=False, stream=stream)
    cyffe.Net(lenet_like(), cyffe.TRAIN)
    lines = stream.getvalue().splitlines()
    assert lines[:4] == ["Creating Layer data", "data -> data", "data -> label", "Setting up data"]
    assert "Top shape: 4 1 6 6 (144)" in lines and "Top shape: 4 (4)" in lines
    assert lines[lines.index("Setting up relu") - 2:lines.index("Setting up relu")] == [
        "relu <- conv", "relu -> conv (in-place)"]
    assert "Top shape: (1)" in lines and "    with loss weight 2" in lines
    assert "data does not need backward computation." in lines
    assert "conv needs backward computation." in lines
    assert "This network produces output accuracy" in lines
    assert lines[-1] == "Network initialization done."


def test_net_setup_is_quiet_by_default_and_log_writes_one_line(capsys):
    cyffe.Net(lenet_like(), cyffe.TRAIN)
    cyffe.log("hello from a script")
    err = capsys.readouterr().err
    assert "Top shape" not in err
    assert re.fullmatch(PREFIX + "hello from a script\n", err)
    assert re.match(PREFIX, err).group(1) == "test_glog.py"      # the caller's file:line


def test_glog_minloglevel_silences_info(monkeypatch, capsys):
    monkeypatch.setenv("GLOG_minloglevel", "1")
    glog.reset_log()
    cyffe.log("not shown")
    glog.logger.warning("shown")
    err = capsys.readouterr().err
    assert "not shown" not in err and re.match(r"W\d{4} .*\] shown", err)
    cyffe.init_log(0)
    cyffe.log("now shown")
    assert "now shown" in capsys.readouterr().err


def test_weights_log_the_layers_they_ignore(tmp_path):
    stream = io.StringIO()
    net = cyffe.Net(lenet_like(), cyffe.TRAIN)
    path = str(tmp_path / "w.caffemodel")
    net.save(path)
    smaller = lenet_like()
    del smaller.layer[3:]                                   # no ip, accuracy, loss
    cyffe.init_log(prefix=False, stream=stream)
    cyffe.Net(smaller, cyffe.TRAIN).copy_from(path)
    assert "Ignoring source layer ip" in stream.getvalue().splitlines()


def test_shape_string_is_caffes():
    assert glog.shape_string((64, 1, 28, 28)) == "64 1 28 28 (50176)"
    assert glog.shape_string(()) == "(1)"
