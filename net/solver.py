"""Solvers: minibatch SGD over a Net, with Caffe's learning-rate policies and logging.

One iteration, as Caffe's Solver::Step: test (every test_interval), clear param
diffs, forward/backward iter_size times, then ApplyUpdate: normalize by
iter_size, regularize, clip, compute the update value, and subtract it.
"""
import math
import os
import sys
import time

import numpy as np

from ..layers.backend import set_random_seed
from ..proto import cyffe_pb2 as pb
from ..proto.errors import NetError
from ..proto.io import read_solver
from .graph import Net


def learning_rate(param, iteration, current_step=0):
    """The rate Caffe's lr_policy gives at `iteration` (multistep needs current_step)."""
    policy = param.lr_policy or "fixed"
    base, gamma, power = param.base_lr, param.gamma, param.power
    if policy == "fixed":
        return base
    if policy == "step":
        if param.stepsize <= 0:
            raise NetError("lr_policy 'step' needs stepsize > 0")
        return base * gamma ** (iteration // param.stepsize)
    if policy == "exp":
        return base * gamma ** iteration
    if policy == "inv":
        return base * (1 + gamma * iteration) ** (-power)
    if policy == "multistep":
        return base * gamma ** current_step
    if policy == "poly":
        if param.max_iter <= 0:
            raise NetError("lr_policy 'poly' needs max_iter > 0")
        return base * (1 - iteration / param.max_iter) ** power
    if policy == "sigmoid":
        return base * (1 / (1 + math.exp(-gamma * (iteration - param.stepsize))))
    raise NetError(f"unknown lr_policy {policy!r}; known: fixed, step, exp, inv, multistep, "
                   "poly, sigmoid")


def _resolve(path, base_dir):
    """A path from a solver file: relative to the solver's folder, else to the cwd."""
    if os.path.isabs(path) or base_dir is None:
        return path
    beside = os.path.join(base_dir, path)
    return beside if os.path.exists(beside) or not os.path.exists(path) else path


class SGDSolver:
    """Caffe's SGD solver: v = momentum*v + lr*lr_mult*(grad + decay); w -= v.

    SGDSolver(solver) takes a solver prototxt path, a prototxt string or a
    SolverParameter. `net`/`test_nets` are built from it; relative net paths are
    taken from the solver file's folder (or `base_dir` for a message), else the
    working directory. `log` receives the Caffe-style progress lines (a callable
    taking one string; default: stdout).
    """

    type = "SGD"

    def __init__(self, solver, log=None, dtype=np.float32, base_dir=None):
        self.param, self.source = read_solver(solver)
        self.log = log if log is not None else _print
        if self.source:
            base_dir = os.path.dirname(os.path.abspath(self.source))
        if self.param.random_seed >= 0:
            set_random_seed(self.param.random_seed)
        self.net = Net(self._train_net_param(base_dir), pb.TRAIN, dtype=dtype,
                       **self._state(self.param.train_state))
        self.test_nets = [self._test_net(p, s, dtype) for p, s in self._test_net_specs(base_dir)]
        for t in self.test_nets:
            t.share_with(self.net)
        if len(self.param.test_iter) != len(self.test_nets):
            if self.test_nets and len(self.param.test_iter) != 1:
                raise NetError(f"{self.source or 'solver'}: test_iter must be given once per test "
                               f"net ({len(self.test_nets)})")
        self.iter = 0
        self.current_step = 0
        self.history = [np.zeros_like(b.data) for b in self.net.learnable_params]
        self._losses = []
        self.smoothed_loss = float("nan")
        self.callbacks = []
        self._display_mark = None         # (time, iteration) of the last display line

    # -- nets ---------------------------------------------------------------------

    def _state(self, state):
        return {"level": state.level, "stages": list(state.stage)}

    def _train_net_param(self, base_dir):
        p = self.param
        given = [p.HasField("net"), p.HasField("net_param"), p.HasField("train_net"),
                 p.HasField("train_net_param")]
        if sum(given) != 1:
            raise NetError(f"{self.source or 'solver'}: give exactly one of net, net_param, "
                           "train_net, train_net_param")
        if p.HasField("train_net_param"):
            return p.train_net_param
        if p.HasField("net_param"):
            return p.net_param
        return _resolve(p.train_net if p.HasField("train_net") else p.net, base_dir)

    def _test_net_specs(self, base_dir):
        p = self.param
        specs = [(q, None) for q in p.test_net_param]
        specs += [(_resolve(path, base_dir), None) for path in p.test_net]
        generic = len(p.test_iter) - len(specs)
        if generic > 0 and (p.HasField("net") or p.HasField("net_param")):
            model = p.net_param if p.HasField("net_param") else _resolve(p.net, base_dir)
            specs += [(model, None)] * generic
        states = list(p.test_state)
        return [(model, states[i] if i < len(states) else None) for i, (model, _) in
                enumerate(specs)]

    def _test_net(self, model, state, dtype):
        kwargs = self._state(state) if state is not None else {}
        return Net(model, pb.TEST, dtype=dtype, **kwargs)

    # -- the loop -------------------------------------------------------------------

    def learning_rate(self):
        """The current learning rate (advancing multistep's step as Caffe does)."""
        p = self.param
        if p.lr_policy == "multistep":
            while (self.current_step < len(p.stepvalue)
                   and self.iter >= p.stepvalue[self.current_step]):
                self.current_step += 1
        return learning_rate(p, self.iter, self.current_step)

    def step(self, iters):
        """Run `iters` iterations (testing, displaying and updating as configured)."""
        p = self.param
        stop = self.iter + iters
        if self._display_mark is None:
            self._display_mark = (time.perf_counter(), self.iter)
        while self.iter < stop:
            if (p.test_interval and self.iter % p.test_interval == 0
                    and (self.iter > 0 or p.test_initialization)):
                self.test_all()
            self.net.clear_param_diffs()
            loss = 0.0
            for _ in range(max(p.iter_size, 1)):
                loss += self.net.forward_backward()
            loss /= max(p.iter_size, 1)
            self.net.check_finite(loss, self.iter)
            self._smooth(loss)
            if p.display and self.iter % p.display == 0:
                # The rate since the last display line, however step() was called.
                now, last_iter = time.perf_counter(), self._display_mark[1]
                elapsed = now - self._display_mark[0]
                speed = (self.iter - last_iter) / elapsed if elapsed > 0 else 0.0
                self._display_mark = (now, self.iter)
                self.log(f"Iteration {self.iter} ({speed:.3g} iter/s), loss = "
                         f"{self.smoothed_loss:.6g}")
                for name, value in self._outputs(self.net):
                    self.log(f"    Train net output: {name} = {value:.6g}")
            self.apply_update()
            self.iter += 1
            for callback in self.callbacks:
                callback(self)

    def solve(self):
        """Train to max_iter, then test and report as Caffe's Solve does."""
        p = self.param
        self.log(f"Solving {self.net.name or 'net'}")
        self.log(f"Learning Rate Policy: {p.lr_policy or 'fixed'}")
        self.step(p.max_iter - self.iter)
        if p.display and self.iter % p.display == 0:
            loss = self.net.forward_all()
            self.log(f"Iteration {self.iter}, loss = {loss:.6g}")
        if p.test_interval and self.iter % p.test_interval == 0:
            self.test_all()
        self.log("Optimization Done.")

    def _smooth(self, loss):
        window = max(self.param.average_loss, 1)
        self._losses.append(loss)
        del self._losses[:-window]
        self.smoothed_loss = float(np.mean(self._losses))

    @staticmethod
    def _outputs(net):
        for name in net.outputs:
            data = net.blobs[name].data
            for k, value in enumerate(np.ravel(data)):
                yield (name if data.size == 1 else f"{name}[{k}]"), float(value)

    def test_all(self):
        """Run every test net; returns a list of {output: mean value} dicts."""
        return [self.test(i) for i in range(len(self.test_nets))]

    def test(self, index=0):
        """Average each output of test net `index` over its test_iter batches."""
        net = self.test_nets[index]
        iters = self.param.test_iter[index if len(self.param.test_iter) > 1 else 0]
        sums, loss = {}, 0.0
        for _ in range(iters):
            batch_loss = net.forward_all()
            loss += batch_loss
            for name in net.outputs:
                sums[name] = sums.get(name, 0.0) + np.asarray(net.blobs[name].data, np.float64)
        means = {name: total / max(iters, 1) for name, total in sums.items()}
        self.log(f"Iteration {self.iter}, Testing net (#{index})")
        if self.param.test_compute_loss:
            self.log(f"Test loss: {loss / max(iters, 1):.6g}")
        for name, mean in means.items():
            for k, value in enumerate(np.ravel(mean)):
                label = name if np.size(mean) == 1 else f"{name}[{k}]"
                self.log(f"    Test net output #{index}: {label} = {value:.6g}")
        # A one-element output of any shape (pycaffe's losses are (1,)) reads as a number.
        return {name: (float(np.ravel(m)[0]) if np.size(m) == 1 else m)
                for name, m in means.items()}

    # -- the update -------------------------------------------------------------------

    def apply_update(self):
        rate = self.learning_rate()
        p = self.param
        if p.display and self.iter % p.display == 0:
            self.log(f"Iteration {self.iter}, lr = {rate:.6g}")
        self.clip_gradients()
        for i, blob in enumerate(self.net.learnable_params):
            self.normalize(blob)
            self.regularize(i, blob)
            self.compute_update_value(i, blob, rate)
            blob.data -= blob.diff

    def normalize(self, blob):
        if self.param.iter_size > 1:
            blob.diff *= 1.0 / self.param.iter_size

    def regularize(self, i, blob):
        decay = self.param.weight_decay * self.net.decay_mults[i]
        if not decay:
            return
        kind = self.param.regularization_type
        if kind == "L2":
            blob.diff += decay * blob.data
        elif kind == "L1":
            blob.diff += decay * np.sign(blob.data)
        else:
            raise NetError(f"unknown regularization_type {kind!r}; known: L1, L2")

    def clip_gradients(self):
        """Scale all diffs down so their global L2 norm is at most clip_gradients."""
        limit = self.param.clip_gradients
        if limit < 0:
            return
        norm = math.sqrt(sum(float(np.sum(b.diff.astype(np.float64) ** 2))
                             for b in self.net.learnable_params))
        if norm > limit:
            self.log(f"Gradient clipping: scaling down gradients (L2 norm {norm:.6g} > {limit:g})")
            for b in self.net.learnable_params:
                b.diff *= limit / norm

    def compute_update_value(self, i, blob, rate):
        """Turn blob.diff into the step to subtract (SGD with momentum)."""
        history = self.history[i]
        history *= self.param.momentum
        history += (rate * self.net.lr_mults[i]) * blob.diff
        blob.diff[...] = history

    def add_callback(self, callback):
        """Call callback(solver) after every iteration."""
        self.callbacks.append(callback)


def _print(line):
    print(line, file=sys.stdout, flush=True)


SOLVERS = {"SGD": SGDSolver}
_LEGACY_TYPES = {pb.SolverParameter.SGD: "SGD"}


def get_solver(solver, **kwargs):
    """The solver its file asks for (`type:`, or the legacy `solver_type:`)."""
    param, _ = read_solver(solver)
    kind = param.type
    if param.HasField("solver_type") and not param.HasField("type"):
        kind = _LEGACY_TYPES.get(param.solver_type, pb.SolverParameter.SolverType.Name(
            param.solver_type))
    if kind not in SOLVERS:
        raise NetError(f"solver type {kind!r} is not available yet; known: {', '.join(SOLVERS)}")
    return SOLVERS[kind](solver, **kwargs)
