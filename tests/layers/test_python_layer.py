"""Python layers: a user's cyffe.Layer subclass, named by python_param, runs inside a Net."""
import os
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

import cyffe
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from helpers.gradcheck import check_gradient, make_blobs, setup_layer

PYLOSS_DIR = Path(__file__).resolve().parents[2] / "examples" / "pyloss"

# y = factor * x * w + b over the last axis; factor from param_str, w and b learnable.
USER_MODULE = """
import numpy as np
import cyffe


class ScaledAffine(cyffe.Layer):
    def setup(self, bottom, top):
        self.factor = float(self.param_str)
        self.seen_phase = self.phase
        channels = bottom[0].shape[-1]
        self.blobs.add_blob(channels)
        self.blobs.add_blob(channels)
        self.blobs[0].data[...] = np.linspace(0.5, 1.5, channels)
        self.blobs[1].data[...] = 0.25

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        w, b = self.blobs[0].data, self.blobs[1].data
        top[0].data[...] = self.factor * bottom[0].data * w + b

    def backward(self, top, propagate_down, bottom):
        w = self.blobs[0].data
        dy = top[0].diff.reshape(-1, w.size)
        x = bottom[0].data.reshape(-1, w.size)
        self.blobs[0].diff[...] += self.factor * np.sum(dy * x, axis=0)
        self.blobs[1].diff[...] += np.sum(dy, axis=0)
        if propagate_down[0]:
            bottom[0].diff[...] = self.factor * top[0].diff * w


class NotALayer:
    def reshape(self, bottom, top): pass
    def forward(self, bottom, top): pass
    def backward(self, top, propagate_down, bottom): pass


class NoBackward(cyffe.Layer):
    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = 3 * bottom[0].data


class RaisesInSetup(cyffe.Layer):
    def setup(self, bottom, top):
        raise RuntimeError("no setup for you")
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """The name of a fresh module holding USER_MODULE, importable from tmp_path."""
    name = f"user_layers_{abs(hash(str(tmp_path)))}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


@pytest.fixture
def pyloss_importable(monkeypatch):
    """Make examples/pyloss importable; forget the module afterwards."""
    monkeypatch.syspath_prepend(str(PYLOSS_DIR))
    sys.modules.pop("pyloss", None)
    yield
    sys.modules.pop("pyloss", None)


def python_param(module, layer, param_str="", name="py", bottoms=("x",), tops=("y",)):
    lp = pb.LayerParameter(name=name, type="Python", bottom=list(bottoms), top=list(tops))
    lp.python_param.module = module
    lp.python_param.layer = layer
    lp.python_param.param_str = param_str
    return lp


def affine_net(module, factor="2.0", extra=""):
    return f"""
    name: "py"
    force_backward: true
    layer {{ name: "x" type: "Input" top: "x" input_param {{ shape {{ dim: 2 dim: 3 }} }} }}
    layer {{ name: "aff" type: "Python" bottom: "x" top: "y" {extra}
             python_param {{ module: "{module}" layer: "ScaledAffine" param_str: "{factor}" }} }}
    """


def affine_reference(x, factor, w, b):
    return factor * x * w + b


# -- the user's layer inside a net --------------------------------------------------------

def test_user_layer_runs_forward_and_backward_in_a_net(user_module):
    net = cyffe.Net(affine_net(user_module, "2.0"), cyffe.TEST)
    layer = net.layer_dict["aff"]
    assert type(layer).__name__ == "ScaledAffine" and isinstance(layer, cyffe.Layer)
    assert layer.type == "Python" and layer.param_str == "2.0"
    assert layer.factor == 2.0 and layer.seen_phase == cyffe.TEST
    w, b = net.params["aff"][0].data, net.params["aff"][1].data
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    out = net.forward(x=x)
    np.testing.assert_allclose(out["y"], affine_reference(x, 2.0, w, b), rtol=1e-6)
    dy = np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32)
    grads = net.backward(y=dy)
    np.testing.assert_allclose(grads["x"], 2.0 * dy * w, rtol=1e-6)
    np.testing.assert_allclose(net.params["aff"][0].diff, 2.0 * np.sum(dy * x, axis=0), rtol=1e-5)
    np.testing.assert_allclose(net.params["aff"][1].diff, np.sum(dy, axis=0), rtol=1e-5)


def test_param_str_reaches_the_layer(user_module):
    net = cyffe.Net(affine_net(user_module, "-3.5"), cyffe.TRAIN)
    layer = net.layer_dict["aff"]
    assert layer.param_str == "-3.5" and layer.factor == -3.5 and layer.seen_phase == cyffe.TRAIN
    x = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(net.forward(x=x)["y"],
                               affine_reference(x, -3.5, layer.blobs[0].data, layer.blobs[1].data))


def test_gradient_of_a_python_layer(user_module):
    layer = layer_class("Python")(python_param(user_module, "ScaledAffine", "1.5"),
                                  pb.TRAIN, np.float64)
    bottom = make_blobs(np.random.default_rng(2).standard_normal((3, 4)))
    top = setup_layer(layer, bottom)
    assert layer.blobs[0].dtype == np.float64          # add_blob follows the net's dtype
    check_gradient(layer, bottom, top)


def test_add_blob_appends_a_blob_of_that_shape():
    from cyffe.layers.python_layer import BlobList
    blobs = BlobList(np.dtype(np.float64))
    assert blobs.add_blob(2, 3) is None
    blobs.add_blob((4,))
    assert [b.shape for b in blobs] == [(2, 3), (4,)]
    assert all(b.dtype == np.float64 for b in blobs)


def test_solver_trains_python_layer_blobs_and_caffemodels_keep_them(user_module, tmp_path):
    # A constant input, a constant target: w (lr_mult 1) learns, b (lr_mult 0) stays put.
    net = f"""
    name: "py-train"
    layer {{ name: "x" type: "DummyData" top: "x" top: "t"
             dummy_data_param {{ shape {{ dim: 4 dim: 3 }}
                                 data_filler {{ type: "uniform" min: 0.5 max: 1 }}
                                 data_filler {{ type: "constant" value: 2 }} }} }}
    layer {{ name: "aff" type: "Python" bottom: "x" top: "y"
             param {{ lr_mult: 1 }} param {{ lr_mult: 0 }}
             python_param {{ module: "{user_module}" layer: "ScaledAffine" param_str: "1.0" }} }}
    layer {{ name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }}
    """
    p = pb.SolverParameter(base_lr=0.1, momentum=0.5, lr_policy="fixed", max_iter=40,
                           display=0, random_seed=5)
    p.net_param.CopyFrom(text_format.Parse(net, pb.NetParameter()))
    solver = cyffe.SGDSolver(p, log=lambda line: None)
    w0 = solver.net.params["aff"][0].data.copy()
    b0 = solver.net.params["aff"][1].data.copy()
    first = solver.net.forward_pass()
    solver.solve()
    last = solver.net.forward_pass()
    assert last < 0.2 * first
    assert not np.allclose(solver.net.params["aff"][0].data, w0)
    np.testing.assert_array_equal(solver.net.params["aff"][1].data, b0)

    path = tmp_path / "py.caffemodel"
    solver.net.save(str(path))
    loaded = cyffe.Net(p.net_param, cyffe.TEST, weights=str(path))
    for mine, theirs in zip(loaded.params["aff"], solver.net.params["aff"]):
        np.testing.assert_array_equal(mine.data, theirs.data)


def test_a_python_loss_counts_only_with_a_loss_weight(pyloss_importable):
    def net_loss(weight):
        text = f"""
        layer {{ name: "in" type: "Input" top: "a" top: "b"
                 input_param {{ shape {{ dim: 2 dim: 3 }} }} }}
        layer {{ name: "loss" type: "Python" bottom: "a" bottom: "b" top: "loss" {weight}
                 python_param {{ module: "pyloss" layer: "EuclideanLossLayer" }} }}
        """
        net = cyffe.Net(text, cyffe.TRAIN)
        net.forward(a=np.ones((2, 3)), b=np.zeros((2, 3)))
        return net.loss

    assert net_loss("") == 0.0
    assert net_loss("loss_weight: 1") == pytest.approx(1.5)
    assert net_loss("loss_weight: 2") == pytest.approx(3.0)


# -- errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("module, cls, message", [
    ("no_such_module_xyz", "Foo", r"cannot import python_param.module 'no_such_module_xyz': "
                                  r"ModuleNotFoundError: No module named 'no_such_module_xyz'"),
    (None, "Missing", r"module '\w+' \(.*\) has no class 'Missing'"),
    (None, "NotALayer", r"'\w+\.NotALayer' must be a class that subclasses cyffe.Layer"),
    (None, "np", r"'\w+\.np' must be a class that subclasses cyffe.Layer"),
    ("", "Foo", r"needs python_param \{ module: ... layer: ... \}"),
])
def test_errors_name_the_layer_and_the_module(user_module, module, cls, message):
    module = user_module if module is None else module
    with pytest.raises(cyffe.NetError, match=r"layer 'py' \(Python\): " + message):
        layer_class("Python")(python_param(module, cls), pb.TRAIN)


def test_a_module_that_fails_to_import_shows_its_error(tmp_path, monkeypatch):
    (tmp_path / "broken_layer_mod.py").write_text("import numpy\nraise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(cyffe.NetError, match=r"layer 'py' \(Python\): cannot import "
                                             r"python_param.module 'broken_layer_mod': "
                                             r"RuntimeError: boom"):
        layer_class("Python")(python_param("broken_layer_mod", "X"), pb.TRAIN)
    sys.modules.pop("broken_layer_mod", None)


def test_a_layer_may_leave_out_what_its_net_never_calls(user_module):
    # pycaffe builds it; only a call to the missing method fails, naming the layer.
    net = cyffe.Net(affine_net(user_module).replace("ScaledAffine", "NoBackward"), cyffe.TEST)
    np.testing.assert_array_equal(net.forward(x=np.ones((2, 3)))["y"], np.full((2, 3), 3.0))
    with pytest.raises(NotImplementedError, match=r"layer 'aff' \(Python\): class "
                                                  r"'\w+\.NoBackward' does not define backward"):
        net.backward()


def test_an_exception_in_a_python_layer_reaches_the_caller(user_module):
    with pytest.raises(RuntimeError, match="no setup for you"):
        cyffe.Net(affine_net(user_module).replace("ScaledAffine", "RaisesInSetup"), cyffe.TEST)


def test_the_module_is_found_beside_the_prototxt(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    folder.mkdir()
    name = f"beside_{abs(hash(str(tmp_path)))}"
    (folder / f"{name}.py").write_text(textwrap.dedent(USER_MODULE))
    (folder / "net.prototxt").write_text(affine_net(name))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    try:
        net = cyffe.Net(str(folder / "net.prototxt"), cyffe.TEST)
        assert type(net.layer_dict["aff"]).__name__ == "ScaledAffine"
    finally:
        sys.modules.pop(name, None)


def test_a_missing_module_says_where_it_looked(tmp_path, monkeypatch):
    (tmp_path / "net.prototxt").write_text(affine_net("nowhere_to_be_found_q"))
    monkeypatch.setattr(sys, "path", list(sys.path))        # the folder it appends goes again
    with pytest.raises(cyffe.NetError) as caught:
        cyffe.Net(str(tmp_path / "net.prototxt"), cyffe.TEST)
    message = str(caught.value)
    assert "No module named 'nowhere_to_be_found_q'" in message
    assert f"looked beside the prototxt ({tmp_path}), in the working directory ({os.getcwd()})" \
        in message
    assert "and on sys.path: " in message and sys.path[-1] in message


def test_errors_reach_the_net_with_the_layer_name(user_module):
    with pytest.raises(cyffe.NetError, match="layer 'aff' .*has no class 'Nope'"):
        cyffe.Net(affine_net(user_module).replace("ScaledAffine", "Nope"), cyffe.TEST)


# -- the pyloss example ------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pyloss_agrees_with_euclidean_loss(pyloss_importable, dtype):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((4, 6)), rng.standard_normal((4, 2, 3))
    results = []
    for lp in (python_param("pyloss", "EuclideanLossLayer", bottoms=("a", "b"), tops=("l",)),
               pb.LayerParameter(name="ref", type="EuclideanLoss")):
        layer = layer_class(lp.type)(lp, pb.TRAIN, dtype)
        bottom = [cyffe.Blob(a.shape, dtype), cyffe.Blob(b.shape, dtype)]
        bottom[0].data[...], bottom[1].data[...] = a, b
        top = setup_layer(layer, bottom)
        layer.forward(bottom, top)
        top[0].diff[...] = 0.7
        layer.backward(top, [True, True], bottom)
        results.append((float(top[0].data.reshape(())), bottom[0].diff.copy(),
                        bottom[1].diff.copy()))
    (loss, da, db), (ref_loss, ref_da, ref_db) = results
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert loss == pytest.approx(ref_loss, rel=tol)
    assert loss == pytest.approx(np.sum((a.reshape(4, -1) - b.reshape(4, -1)) ** 2) / 8, rel=tol)
    np.testing.assert_allclose(da, ref_da, rtol=tol, atol=tol)
    np.testing.assert_allclose(db, ref_db, rtol=tol, atol=tol)


def test_pyloss_gradient(pyloss_importable):
    layer = layer_class("Python")(python_param("pyloss", "EuclideanLossLayer", bottoms=("a", "b")),
                                  pb.TRAIN, np.float64)
    rng = np.random.default_rng(4)
    bottom = make_blobs(rng.standard_normal((3, 4)), rng.standard_normal((3, 2, 2)))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_pyloss_example_trains_from_its_folder_with_train_net(tmp_path, monkeypatch, capsys):
    from cyffe.tools import train_net
    # As under a console script: the working directory is not on sys.path.
    monkeypatch.setattr(sys, "path", [p for p in sys.path
                                      if p not in ("", str(PYLOSS_DIR), os.getcwd())])
    monkeypatch.chdir(PYLOSS_DIR)
    sys.modules.pop("pyloss", None)
    out = tmp_path / "ae.caffemodel"
    try:
        rc = train_net.main(["--proto", "net.prototxt", "--max-iter", "300", "--display", "50",
                             "--test-interval", "300", "--seed", "1", "--out", str(out)])
    finally:
        sys.modules.pop("pyloss", None)
    text = capsys.readouterr().err              # Caffe's lines: on stderr, as glog
    assert rc == 0, text
    losses = [float(v) for v in re.findall(r"Iteration \d+ \([^)]*\), loss = (\S+)", text)]
    assert len(losses) == 6, text
    assert losses[-1] < 0.5 * losses[0], text
    test_losses = [float(v) for v in re.findall(r"Test net output #0: loss = (\S+)", text)]
    test_loss = test_losses[-1]                  # after training (the first is at iteration 0)
    assert test_loss < 0.5 * losses[0], text
    assert out.exists()
