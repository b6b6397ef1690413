"""Nesterov, AdaGrad, RMSProp, AdaDelta and Adam against Caffe's formulas worked by hand.

The toy net has one weight w and loss 0.5 * sum((w x)^2), so the gradient is
w * sum(x^2); each test follows Caffe's ApplyUpdate by hand in float64: clip,
normalize, add weight decay, compute the step with r = lr * lr_mult, subtract.
"""
import math

import numpy as np
import pytest

import cyffe
import helpers.toy_layers  # noqa: F401  (registers the Toy* layers)
from cyffe.layers.base import Layer
from cyffe.net.solver import SOLVERS
from cyffe.proto import cyffe_pb2 as pb
from test_solver import X, f32, solver_text

S = float(np.sum(X ** 2))
LR, DECAY, DELTA = f32(0.1), f32(0.01), f32(1e-8)


def quiet(solver_class, param, dtype=np.float64):
    solver = solver_class(param, log=lambda line: None, dtype=dtype)
    solver.net.blobs["x"].data[...] = X
    return solver


def gradient(w, decay_mult, clip=None):
    """The diff Caffe hands to ComputeUpdateValue: clipped, then weight decay added."""
    g = w * S
    if clip is not None and abs(g) > clip:
        g *= clip / abs(g)
    return g + DECAY * decay_mult * w


def hand_nesterov(steps, lr_mult, decay_mult, momentum=f32(0.9), w=2.0):
    v = 0.0
    for _ in range(steps):
        g = gradient(w, decay_mult)
        v_new = momentum * v + LR * lr_mult * g
        w -= (1 + momentum) * v_new - momentum * v
        v = v_new
    return w


def hand_adagrad(steps, lr_mult, decay_mult, w=2.0):
    h = 0.0
    for _ in range(steps):
        g = gradient(w, decay_mult)
        h += g * g
        w -= LR * lr_mult * g / (math.sqrt(h) + DELTA)
    return w


def hand_rmsprop(steps, lr_mult, decay_mult, rms_decay=f32(0.9), w=2.0):
    h = 0.0
    for _ in range(steps):
        g = gradient(w, decay_mult)
        h = rms_decay * h + (1 - rms_decay) * g * g
        w -= LR * lr_mult * g / (math.sqrt(h) + DELTA)
    return w


def hand_adadelta(steps, lr_mult, decay_mult, momentum=f32(0.95), delta=f32(1e-6), w=2.0):
    h = s = 0.0
    for _ in range(steps):
        g = gradient(w, decay_mult)
        h = momentum * h + (1 - momentum) * g * g
        u = g * math.sqrt((s + delta) / (h + delta))
        s = momentum * s + (1 - momentum) * u * u
        w -= LR * lr_mult * u
    return w


def hand_adam(steps, lr_mult, decay_mult, beta1=f32(0.9), beta2=f32(0.999), delta=DELTA,
              clip=None, w=2.0):
    m = v = 0.0
    for it in range(steps):
        g = gradient(w, decay_mult, clip)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        t = it + 1
        w -= LR * lr_mult * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t) * m / (
            math.sqrt(v) + delta)
    return w


CASES = {
    "Nesterov": (cyffe.NesterovSolver, dict(momentum=0.9), hand_nesterov),
    "AdaGrad": (cyffe.AdaGradSolver, dict(momentum=0.0), hand_adagrad),
    "RMSProp": (cyffe.RMSPropSolver, dict(momentum=0.0, rms_decay=0.9), hand_rmsprop),
    "AdaDelta": (cyffe.AdaDeltaSolver, dict(momentum=0.95, delta=1e-6), hand_adadelta),
    "Adam": (cyffe.AdamSolver, dict(momentum=0.9, momentum2=0.999), hand_adam),
}


@pytest.mark.parametrize("kind", list(CASES))
@pytest.mark.parametrize("lr_mult, decay_mult", [(1, 1), (0.5, 3), (2, 0)])
def test_first_three_updates_match_a_hand_computation(kind, lr_mult, decay_mult):
    solver_class, fields, hand = CASES[kind]
    param = solver_text(lr_mult=lr_mult, decay_mult=decay_mult, type=kind, **fields)
    solver = quiet(solver_class, param)
    for steps in (1, 2, 3):
        solver.step(1)
        w = solver.net.params["a"][0].data        # read after each step (GPU mode syncs then)
        assert w[0] == pytest.approx(hand(steps, lr_mult, decay_mult), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("kind", list(CASES))
def test_get_solver_builds_each_type_and_the_history_is_caffes(kind):
    solver_class, fields, _ = CASES[kind]
    solver = cyffe.get_solver(solver_text(type=kind, **fields), log=lambda line: None)
    assert type(solver) is solver_class and solver.type == kind
    sets = 2 if kind in ("AdaDelta", "Adam") else 1
    assert len(solver.history) == sets * len(solver.net.learnable_params)


@pytest.mark.parametrize("legacy, kind", [
    ("SGD", "SGD"), ("NESTEROV", "Nesterov"), ("ADAGRAD", "AdaGrad"), ("RMSPROP", "RMSProp"),
    ("ADADELTA", "AdaDelta"), ("ADAM", "Adam")])
def test_legacy_solver_type_spelling(legacy, kind):
    param = solver_text(momentum=0.0)
    param.solver_type = getattr(pb.SolverParameter, legacy)
    solver = cyffe.get_solver(param, log=lambda line: None)
    assert type(solver) is SOLVERS[kind] and solver.type == kind


def test_legacy_solver_type_trains_like_the_type_name():
    param = solver_text(momentum=0.0)
    param.solver_type = pb.SolverParameter.ADAGRAD
    solver = cyffe.get_solver(param, log=lambda line: None, dtype=np.float64)
    solver.net.blobs["x"].data[...] = X
    solver.step(3)
    assert solver.net.params["a"][0].data[0] == pytest.approx(hand_adagrad(3, 1, 1), rel=1e-12)


def test_type_and_legacy_solver_type_together_is_an_error():
    param = solver_text(type="Adam", solver_type=pb.SolverParameter.ADAM)
    with pytest.raises(cyffe.NetError, match="either type or the legacy solver_type"):
        cyffe.get_solver(param)


def test_pycaffe_class_names_are_exported():
    for name in ("SGDSolver", "NesterovSolver", "AdaGradSolver", "RMSPropSolver",
                 "AdaDeltaSolver", "AdamSolver"):
        assert issubclass(getattr(cyffe, name), cyffe.SGDSolver)


def test_adam_clips_the_global_norm_before_weight_decay():
    param = solver_text(type="Adam", momentum=0.9, clip_gradients=0.5, delta=0.1)
    solver = quiet(cyffe.AdamSolver, param)
    solver.step(3)
    expected = hand_adam(3, 1, 1, delta=f32(0.1), clip=f32(0.5))
    assert expected != pytest.approx(hand_adam(3, 1, 1, delta=f32(0.1)), rel=1e-6)
    assert solver.net.params["a"][0].data[0] == pytest.approx(expected, rel=1e-12)


class ToyBatches(Layer):
    """Tops data and target of dummy_data_param's two shapes, cycling through `batches`."""
    type = "ToyBatches"
    bottoms = 0
    tops = 2

    def setup(self, bottom, top):
        for blob, shape in zip(top, self.param.dummy_data_param.shape):
            blob.reshape(tuple(shape.dim))
        self.batches, self.served = [], 0

    def reshape(self, bottom, top):
        pass

    def forward_cpu(self, bottom, top):
        data, target = self.batches[self.served % len(self.batches)]
        self.served += 1
        top[0].data[...] = data
        top[1].data[...] = target

    def backward_cpu(self, top, propagate_down, bottom):
        pass


REGRESSION = """
name: "regression"
layer { name: "d" type: "ToyBatches" top: "data" top: "target"
        dummy_data_param { shape { dim: N dim: 3 } shape { dim: N dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "y"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.5 }
                              bias_filler { type: "constant" value: 0.1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "target" top: "loss" }
"""


def quiet_net(text, **fields):
    """A float64 solver over the net `text` with these solver fields."""
    from google.protobuf import text_format
    param = pb.SolverParameter(lr_policy="fixed", max_iter=10, random_seed=5, **fields)
    param.net_param.CopyFrom(text_format.Parse(text, pb.NetParameter()))
    return cyffe.get_solver(param, log=lambda line: None, dtype=np.float64)


def test_adam_iter_size_two_on_half_batches_equals_one_full_batch():
    rng = np.random.default_rng(0)
    batches = [(rng.normal(size=(8, 3)), rng.normal(size=(8, 2))) for _ in range(3)]
    fields = dict(type="Adam", momentum=0.9, weight_decay=0.05, base_lr=0.01)
    full = quiet_net(REGRESSION.replace("N", "8"), iter_size=1, **fields)
    halves = quiet_net(REGRESSION.replace("N", "4"), iter_size=2, **fields)
    for a, b in zip(full.net.learnable_params, halves.net.learnable_params):
        b.data[...] = a.data
    start = [a.data.copy() for a in full.net.learnable_params]
    full.net.layer_dict["d"].batches = batches
    halves.net.layer_dict["d"].batches = [(x[k:k + 4], t[k:k + 4]) for x, t in batches
                                          for k in (0, 4)]
    full.step(3)
    halves.step(3)
    assert not np.allclose(full.net.learnable_params[0].data, start[0])
    for a, b in zip(full.net.learnable_params, halves.net.learnable_params):
        np.testing.assert_allclose(b.data, a.data, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind, fields, message", [
    ("AdaGrad", dict(momentum=0.9), "momentum must be 0 for AdaGrad"),
    ("RMSProp", dict(momentum=0.5), "momentum must be 0 for RMSProp"),
    ("RMSProp", dict(momentum=0.0, rms_decay=1.0), r"rms_decay must lie in \[0, 1\)"),
    ("RMSProp", dict(momentum=0.0, rms_decay=-0.1), r"rms_decay must lie in \[0, 1\)"),
    ("Adam", dict(momentum=1.0), r"momentum must lie in \[0, 1\) for Adam"),
    ("Adam", dict(momentum=0.9, momentum2=1.0), r"momentum2 must lie in \[0, 1\) for Adam"),
])
def test_solver_specific_fields_are_checked_at_construction(kind, fields, message):
    with pytest.raises(cyffe.NetError, match=message):
        cyffe.get_solver(solver_text(type=kind, **fields))
    with pytest.raises(cyffe.NetError, match=message):
        CASES[kind][0](solver_text(**fields))
