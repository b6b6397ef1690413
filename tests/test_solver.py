"""The SGD solver: lr policies, momentum, weight decay, iter_size, testing, NaN stops."""
import math
import re

import numpy as np
import pytest

import cyffe
import helpers.toy_layers  # noqa: F401  (registers the Toy* layers)
from cyffe.net.solver import learning_rate
from cyffe.proto import cyffe_pb2 as pb

NET = """
name: "toy"
layer { name: "x" type: "ToySource" top: "x" dummy_data_param { shape { dim: 2 dim: 3 } } }
layer { name: "a" type: "ToyScale" bottom: "x" top: "a"
        scale_param { filler { type: "constant" value: 2 } } param { lr_mult: LR decay_mult: DM } }
layer { name: "loss" type: "ToySquareLoss" bottom: "a" top: "loss" }
"""
X = np.arange(6.0).reshape(2, 3) / 4 - 0.5


def f32(x):
    """A value as a float field of a proto holds it (Caffe's solver fields are float32)."""
    return float(np.float32(x))


def solver_text(net=None, lr_mult=1, decay_mult=1, **fields):
    settings = dict(base_lr=0.1, momentum=0.9, weight_decay=0.01, lr_policy="fixed",
                    max_iter=10, random_seed=3)
    p = pb.SolverParameter(**{**settings, **fields})
    p.net_param.CopyFrom(_net_param(net, lr_mult, decay_mult))
    return p


def _net_param(net, lr_mult, decay_mult):
    from google.protobuf import text_format
    text = (net or NET).replace("LR", str(lr_mult)).replace("DM", str(decay_mult))
    return text_format.Parse(text, pb.NetParameter())


@pytest.mark.parametrize("policy, fields, expected", [
    ("fixed", {}, lambda it: 0.1),
    ("step", {"gamma": 0.5, "stepsize": 3}, lambda it: 0.1 * 0.5 ** (it // 3)),
    ("exp", {"gamma": 0.9}, lambda it: 0.1 * 0.9 ** it),
    ("inv", {"gamma": 1e-4, "power": 0.75}, lambda it: 0.1 * (1 + 1e-4 * it) ** -0.75),
    ("poly", {"power": 2.0, "max_iter": 10}, lambda it: 0.1 * (1 - it / 10) ** 2),
    ("sigmoid", {"gamma": -0.5, "stepsize": 5}, lambda it: 0.1 / (1 + math.exp(0.5 * (it - 5)))),
])
def test_lr_policies_follow_caffes_formulas(policy, fields, expected):
    param = pb.SolverParameter(base_lr=0.1, lr_policy=policy, **fields)
    for it in [0, 1, 2, 3, 4, 7, 9]:
        assert learning_rate(param, it) == pytest.approx(expected(it), rel=1e-6)


def test_multistep_lowers_the_rate_at_each_stepvalue():
    solver = cyffe.SGDSolver(solver_text(lr_policy="multistep", gamma=0.1, stepvalue=[2, 4]),
                             log=lambda line: None)
    solver.test_nets[:] = []
    rates = []
    for _ in range(6):
        rates.append(solver.learning_rate())
        solver.iter += 1
    np.testing.assert_allclose(rates, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_unknown_policy_is_an_error():
    with pytest.raises(cyffe.NetError, match="unknown lr_policy 'cosine'"):
        learning_rate(pb.SolverParameter(base_lr=1, lr_policy="cosine"), 0)


def hand_sgd(steps, lr=f32(0.1), momentum=f32(0.9), decay=f32(0.01), lr_mult=1.0,
             decay_mult=1.0, w=2.0):
    """Caffe's update by hand for loss = 0.5 * sum((w x)^2): grad = w * sum(x^2)."""
    v = 0.0
    for _ in range(steps):
        grad = w * np.sum(X ** 2)
        v = momentum * v + lr * lr_mult * (grad + decay * decay_mult * w)
        w -= v
    return w


@pytest.mark.parametrize("lr_mult, decay_mult", [(1, 1), (2, 0), (0.5, 3)])
def test_three_updates_match_a_hand_computation(lr_mult, decay_mult):
    solver = cyffe.SGDSolver(solver_text(lr_mult=lr_mult, decay_mult=decay_mult),
                             log=lambda line: None, dtype=np.float64)
    solver.net.blobs["x"].data[...] = X          # the solver trains on what the user wrote
    solver.step(3)
    assert solver.iter == 3
    expected = hand_sgd(3, lr_mult=lr_mult, decay_mult=decay_mult)
    assert solver.net.params["a"][0].data[0] == pytest.approx(expected, rel=1e-12)


def test_l1_regularization_uses_the_sign():
    solver = cyffe.SGDSolver(solver_text(regularization_type="L1", momentum=0.0),
                             log=lambda line: None, dtype=np.float64)
    solver.net.blobs["x"].data[...] = X
    solver.step(1)
    expected = 2.0 - f32(0.1) * (2.0 * np.sum(X ** 2) + f32(0.01) * 1.0)
    assert solver.net.params["a"][0].data[0] == pytest.approx(expected, rel=1e-12)


def test_iter_size_averages_the_accumulated_gradient():
    one = cyffe.SGDSolver(solver_text(), log=lambda line: None, dtype=np.float64)
    two = cyffe.SGDSolver(solver_text(iter_size=2), log=lambda line: None, dtype=np.float64)
    for s in (one, two):
        s.net.blobs["x"].data[...] = X
        s.step(2)
    assert two.net.params["a"][0].data[0] == pytest.approx(one.net.params["a"][0].data[0])


def test_clip_gradients_bounds_the_global_norm():
    solver = cyffe.SGDSolver(solver_text(clip_gradients=0.5, momentum=0.0, weight_decay=0.0),
                             log=lambda line: None, dtype=np.float64)
    solver.net.blobs["x"].data[...] = X
    solver.step(1)
    assert solver.net.params["a"][0].data[0] == pytest.approx(2.0 - f32(0.1) * 0.5)


def test_logs_caffe_style_progress_and_tests_on_schedule():
    lines = []
    param = solver_text(display=5, test_interval=5, test_iter=[2], max_iter=10)
    solver = cyffe.SGDSolver(param, log=lines.append)
    assert len(solver.test_nets) == 1
    assert solver.test_nets[0].params["a"][0] is solver.net.params["a"][0]
    solver.solve()
    text = "\n".join(lines)
    assert "Iteration 0, Testing net (#0)" in text
    assert "Iteration 5, Testing net (#0)" in text
    assert "Iteration 10, Testing net (#0)" in text
    assert "Iteration 5, lr = 0.1" in text
    assert "Test net output #0: loss =" in text
    assert text.rstrip().endswith("Optimization Done.")


def test_a_nan_loss_stops_training_naming_iteration_and_layer():
    solver = cyffe.SGDSolver(solver_text(), log=lambda line: None)
    solver.net.blobs["x"].data[...] = X
    solver.step(2)
    solver.net.blobs["x"].data[0, 0] = np.nan
    with pytest.raises(cyffe.NonFiniteError, match=r"iteration 2.*layer 'x'"):
        solver.step(1)


def test_net_path_is_relative_to_the_solver_file(tmp_path):
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "toy.prototxt").write_text(NET.replace("LR", "1").replace("DM", "1"))
    (tmp_path / "solver.prototxt").write_text(
        'net: "nets/toy.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nmax_iter: 1\n')
    solver = cyffe.get_solver(str(tmp_path / "solver.prototxt"), log=lambda line: None)
    assert solver.net.name == "toy"
    assert isinstance(solver, cyffe.SGDSolver)


def test_a_net_path_in_the_working_directory_wins_as_in_caffe(tmp_path, monkeypatch):
    (tmp_path / "solvers").mkdir()
    for folder, name in ((tmp_path, "from_cwd"), (tmp_path / "solvers", "beside")):
        (folder / "toy.prototxt").write_text(
            NET.replace("LR", "1").replace("DM", "1").replace('"toy"', f'"{name}"'))
    (tmp_path / "solvers" / "solver.prototxt").write_text(
        'net: "toy.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\nmax_iter: 1\n')
    monkeypatch.chdir(tmp_path)
    solver = cyffe.get_solver("solvers/solver.prototxt", log=lambda line: None)
    assert solver.net.name == "from_cwd"


def test_unknown_solver_type_is_a_clear_error_listing_the_known():
    known = "known: SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam"
    with pytest.raises(cyffe.NetError, match=f"unknown solver type 'Adamax'; {known}"):
        cyffe.get_solver('type: "Adamax"\nbase_lr: 0.1\nnet: "x"')
    with pytest.raises(cyffe.NetError, match="unknown solver type 'Adamax'"):
        cyffe.SGDSolver(solver_text(type="Adamax"))


@pytest.mark.parametrize("fields, message", [
    (dict(lr_policy="step"), r"lr_policy 'step' needs stepsize > 0 \(got 0\)"),
    (dict(lr_policy="step", stepsize=-3), r"lr_policy 'step' needs stepsize > 0 \(got -3\)"),
    (dict(lr_policy="multistep"), "lr_policy 'multistep' needs stepvalue entries"),
    (dict(lr_policy="multistep", stepvalue=[5, 3]),
     r"lr_policy 'multistep' needs increasing stepvalues \(got \[5, 3\]\)"),
    (dict(lr_policy="poly", max_iter=0, power=1), r"lr_policy 'poly' needs max_iter > 0"),
    (dict(lr_policy=""), r"unknown lr_policy ''; known: fixed, step"),
    (dict(lr_policy="cosine"), r"unknown lr_policy 'cosine'"),
    (dict(regularization_type="L3"), r"unknown regularization_type 'L3'; known: L1, L2"),
    (dict(iter_size=-2), r"iter_size must be at least 1 \(got -2\)"),
    (dict(iter_size=0), r"iter_size must be at least 1 \(got 0\)"),
])
def test_bad_solver_fields_fail_at_construction_before_any_net_is_built(fields, message):
    param = pb.SolverParameter(**{**dict(base_lr=0.1, lr_policy="fixed", max_iter=10), **fields})
    param.net = "no/such/net.prototxt"      # a net would fail with DataError: it is not read
    for make in (cyffe.SGDSolver, cyffe.get_solver, cyffe.AdamSolver):
        with pytest.raises(cyffe.NetError, match="^solver: " + message):
            make(param)


def test_bad_field_error_names_the_solver_file(tmp_path):
    path = tmp_path / "solver.prototxt"
    path.write_text('net: "toy.prototxt"\nbase_lr: 0.1\nlr_policy: "step"\n')
    with pytest.raises(cyffe.NetError, match=f"^{re.escape(str(path))}: lr_policy 'step' needs stepsize"):
        cyffe.get_solver(str(path))


def test_an_absent_lr_policy_means_fixed():
    param = solver_text()
    param.ClearField("lr_policy")
    solver = cyffe.SGDSolver(param, log=lambda line: None)
    assert solver.learning_rate() == pytest.approx(0.1)


def test_test_nets_without_test_iter_are_an_error():
    param = solver_text(test_interval=5)
    param.test_net_param.add().CopyFrom(param.net_param)
    with pytest.raises(cyffe.NetError, match=r"test_iter must be given once per test net \(1\)"):
        cyffe.SGDSolver(param)


def test_test_iter_without_a_test_net_is_an_error():
    param = solver_text(test_iter=[5], test_interval=5)
    param.train_net_param.CopyFrom(param.net_param)
    param.ClearField("net_param")
    with pytest.raises(cyffe.NetError, match="test_iter is given but there is no test net"):
        cyffe.SGDSolver(param)


def test_test_state_count_must_match_the_test_nets():
    param = solver_text(test_iter=[2, 2])
    param.test_state.add(stage=["a"])
    with pytest.raises(cyffe.NetError, match=r"test_state must be given once per test net \(2\)"):
        cyffe.SGDSolver(param)
