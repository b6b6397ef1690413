"""Solvers: minibatch SGD over a Net, with Caffe's learning-rate policies and logging.

One iteration, as Caffe's Solver::Step: test (every test_interval), clear param
diffs, forward/backward iter_size times, then ApplyUpdate: normalize by
iter_size, regularize, clip, compute the update value, and subtract it.
"""
import math
import os
import time

import numpy as np

from ..layers.backend import (array_module, device_module, device_side, set_random_seed,
                              to_host)
from ..proto import cyffe_pb2 as pb
from ..proto.errors import DataError, NetError, ShapeError
from ..proto.io import read_solver
from ..proto.paths import resolve_path
from ..proto.solverstate import read_solver_state, write_solver_state
from .glog import solver_line
from .graph import Net


LR_POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")


def check_lr_policy(param, where="solver"):
    """Raise NetError when lr_policy is unknown or lacks the fields it needs.

    An absent lr_policy means "fixed" (Caffe has no default and stops on it); an
    empty one is unknown, as in Caffe.
    """
    policy = param.lr_policy if param.HasField("lr_policy") else "fixed"
    if policy not in LR_POLICIES:
        raise NetError(f"{where}: unknown lr_policy {policy!r}; known: {', '.join(LR_POLICIES)}")
    if policy == "step" and param.stepsize <= 0:
        raise NetError(f"{where}: lr_policy 'step' needs stepsize > 0 (got {param.stepsize})")
    if policy == "poly" and param.max_iter <= 0:
        raise NetError(f"{where}: lr_policy 'poly' needs max_iter > 0 (got {param.max_iter})")
    if policy == "poly" and param.power < 0:
        # A negative power divides by zero at max_iter.
        raise NetError(f"{where}: lr_policy 'poly' needs power >= 0 (got {param.power})")
    if policy == "inv" and param.gamma < 0:
        # 1 + gamma * iter reaches 0 and goes negative: a division by zero, then no rate.
        raise NetError(f"{where}: lr_policy 'inv' needs gamma >= 0 (got {param.gamma})")
    for name in ("base_lr", "gamma", "power"):
        if not math.isfinite(getattr(param, name)):
            raise NetError(f"{where}: {name} must be a finite number (got "
                           f"{getattr(param, name)})")
    if policy == "multistep":
        steps = list(param.stepvalue)
        if not steps:
            raise NetError(f"{where}: lr_policy 'multistep' needs stepvalue entries")
        if any(later <= earlier for earlier, later in zip(steps, steps[1:])):
            raise NetError(f"{where}: lr_policy 'multistep' needs increasing stepvalues "
                           f"(got {steps})")


def learning_rate(param, iteration, current_step=0):
    """The rate Caffe's lr_policy gives at `iteration` (multistep needs current_step)."""
    check_lr_policy(param)
    policy = param.lr_policy if param.HasField("lr_policy") else "fixed"
    base, gamma, power = param.base_lr, param.gamma, param.power
    if policy == "step":
        return base * gamma ** (iteration // param.stepsize)
    if policy == "exp":
        return base * gamma ** iteration
    if policy == "inv":
        return base * (1 + gamma * iteration) ** (-power)
    if policy == "multistep":
        return base * gamma ** current_step
    if policy == "poly":
        return base * (1 - iteration / param.max_iter) ** power
    if policy == "sigmoid":
        # 1 / (1 + e^-z), written so e^... never overflows (it only underflows to 0).
        z = gamma * (iteration - param.stepsize)
        return base / (1 + math.exp(-z)) if z >= 0 else base * math.exp(z) / (1 + math.exp(z))
    return base


def solver_type_name(param, where="solver"):
    """Caffe's solver type name from `type:` or the legacy `solver_type:` enum."""
    if param.HasField("solver_type"):
        if param.HasField("type"):
            raise NetError(f"{where}: give either type or the legacy solver_type, not both")
        kind = _LEGACY_TYPES[param.solver_type]
    else:
        kind = param.type
    if kind not in SOLVERS:
        raise NetError(f"{where}: unknown solver type {kind!r}; known: {', '.join(SOLVERS)}")
    return kind


SOLVERS = {}          # Caffe's type name -> solver class; subclasses register by `type`
_LEGACY_TYPES = {pb.SolverParameter.SGD: "SGD", pb.SolverParameter.NESTEROV: "Nesterov",
                 pb.SolverParameter.ADAGRAD: "AdaGrad", pb.SolverParameter.RMSPROP: "RMSProp",
                 pb.SolverParameter.ADADELTA: "AdaDelta", pb.SolverParameter.ADAM: "Adam"}


class SGDSolver:
    """Caffe's SGD solver: v = momentum*v + lr*lr_mult*(grad + decay); w -= v.

    SGDSolver(solver) takes a solver prototxt path, a prototxt string or a
    SolverParameter. `net`/`test_nets` are built from it; a relative net path is
    taken from the working directory, as Caffe, else from the solver file's folder
    (or `base_dir` for a message); `source` names the file a SolverParameter came from
    (for its errors, relative nets and default snapshot_prefix). `log`
    receives Caffe's progress lines, worded as Caffe's solver.cpp (a callable
    taking one string; default: the "cyffe.solver" logger, which writes them to
    stderr with glog's prefix, see net/glog.py). `add_event_listener(fn)` also gets each
    display and test as a structured event dict (see `emit`). The class picks the update rule, as
    pycaffe's do; the file's `type` must still name a known solver. Unknown or
    contradictory fields raise one NetError here, before any net is built.
    """

    type = "SGD"
    history_sets = 1      # history blobs per learnable param (Caffe's solverstate order)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "type" in cls.__dict__:
            SOLVERS[cls.type] = cls

    def __init__(self, solver, log=None, dtype=np.float32, base_dir=None, source=None):
        self.param, self.source = read_solver(solver)
        self.source = source or self.source
        self.where = self.source or "solver"
        self.log = log if log is not None else solver_line
        self.check_param()
        if self.source:
            base_dir = os.path.dirname(os.path.abspath(self.source))
        self.snapshot_prefix = self._snapshot_prefix()
        train_spec, train_source = self._train_net_param(base_dir)
        test_specs = self._test_net_specs(base_dir)
        self._check_tests(len(test_specs))
        if self.param.random_seed >= 0:
            set_random_seed(self.param.random_seed)
        self.log(f"Creating training net {train_source}")
        self.net = Net(train_spec, pb.TRAIN, dtype=dtype, **self._state(self.param.train_state))
        if not self.net._loss_tops:
            raise NetError(f"{self.net.where}: the train net has no loss to minimize (no loss "
                           "layer, and no top with a loss_weight): training would not change it")
        self.test_nets = []
        for i, (model, state, source) in enumerate(test_specs):
            self.log(f"Creating test net (#{i}) specified by {source}")
            self.test_nets.append(self._test_net(model, state, dtype))
        for t in self.test_nets:
            t.share_with(self.net)
        # Caffe's blob_loss_weights: what each output weighs in the loss, as set up.
        self._loss_weights = [_output_loss_weights(n) for n in [self.net] + self.test_nets]
        self.log("Solver scaffolding done.")
        self.iter = 0
        self.current_step = 0
        # On the device with the params: the update never leaves it.
        self.history = [device_module().zeros(b.shape, b.dtype) for _ in range(self.history_sets)
                        for b in self.net.learnable_params]
        self._losses = []
        self.smoothed_loss = float("nan")
        self.callbacks = []
        self.event_listeners = []
        self.before_update = []           # hook(solver) after backward, before apply_update
        self.diagnostics = None           # a Diagnostics, once enabled
        self._display_mark = None         # (time, iteration) of the last display line
        self.action = None                # () -> "snapshot", "stop" or None, asked each iteration
        self.requested_early_exit = False
        self.last_snapshot = None         # (caffemodel, solverstate) paths of the last snapshot

    # -- fields ---------------------------------------------------------------------

    def check_param(self):
        """Raise NetError for an unknown or contradictory solver field (subclasses add theirs)."""
        p, where = self.param, self.where
        solver_type_name(p, where)
        check_lr_policy(p, where)
        if p.regularization_type not in ("L1", "L2"):
            raise NetError(f"{where}: unknown regularization_type {p.regularization_type!r}; "
                           "known: L1, L2")
        if p.iter_size < 1:
            raise NetError(f"{where}: iter_size must be at least 1 (got {p.iter_size})")
        for name in ("max_iter", "display", "test_interval", "average_loss"):
            if getattr(p, name) < 0:
                raise NetError(f"{where}: {name} must not be negative (got {getattr(p, name)})")
        if any(n < 0 for n in p.test_iter):
            raise NetError(f"{where}: test_iter must not be negative (got {list(p.test_iter)})")
        if not math.isfinite(p.momentum) or p.momentum < 0:     # the others check their own
            raise NetError(f"{where}: momentum must be a finite number >= 0 (got {p.momentum})")
        if math.isnan(p.clip_gradients):
            raise NetError(f"{where}: clip_gradients is NaN")

    def _check_tests(self, count):
        p, where = self.param, self.where
        if p.test_iter and not count:
            raise NetError(f"{where}: test_iter is given but there is no test net (test_net, "
                           "test_net_param, or net / net_param for both phases)")
        if count and len(p.test_iter) not in (1, count):
            raise NetError(f"{where}: test_iter must be given once per test net ({count}), or "
                           f"once for all; got {len(p.test_iter)}")
        if p.test_state and len(p.test_state) != count:
            raise NetError(f"{where}: test_state must be given once per test net ({count}) or "
                           f"not at all; got {len(p.test_state)}")

    # -- nets ---------------------------------------------------------------------

    def _state(self, state):
        return {"level": state.level, "stages": list(state.stage)}

    def _train_net_param(self, base_dir):
        p = self.param
        given = [p.HasField("net"), p.HasField("net_param"), p.HasField("train_net"),
                 p.HasField("train_net_param")]
        if sum(given) != 1:
            raise NetError(f"{self.where}: give exactly one of net, net_param, "
                           "train_net, train_net_param")
        # With the words of Caffe's log line "Creating training net ...".
        if p.HasField("train_net_param"):
            return p.train_net_param, "specified in train_net_param."
        if p.HasField("net_param"):
            return p.net_param, "specified in net_param."
        if p.HasField("train_net"):
            return resolve_path(p.train_net, base_dir), f"from train_net file: {p.train_net}"
        return resolve_path(p.net, base_dir), f"from net file: {p.net}"

    def _test_net_specs(self, base_dir):
        p = self.param
        specs = [(q, "test_net_param") for q in p.test_net_param]
        specs += [(resolve_path(path, base_dir), f"test_net file: {path}")
                  for path in p.test_net]
        generic = len(p.test_iter) - len(specs)
        if generic > 0 and p.HasField("net_param"):
            specs += [(p.net_param, "net_param")] * generic
        elif generic > 0 and p.HasField("net"):
            specs += [(resolve_path(p.net, base_dir), f"net file: {p.net}")] * generic
        states = list(p.test_state)
        return [(model, states[i] if i < len(states) else None, source)
                for i, (model, source) in enumerate(specs)]

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
                self.log(f"MultiStep Status: Iteration {self.iter}, step = {self.current_step}")
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
                # The rate since the last display line, however step() was called (Caffe's
                # words and numbers, so its log tools read them).
                now, last_iter = time.perf_counter(), self._display_mark[1]
                lapse = now - self._display_mark[0]
                speed = (self.iter - last_iter) / (lapse or 1)
                self._display_mark = (now, self.iter)
                self.log(f"Iteration {self.iter} ({speed:.6g} iter/s, {lapse:.6g}s/{p.display} "
                         f"iters), loss = {self.smoothed_loss:.6g}")
                train_outputs = {name: self.net.blobs[name].host_data()
                                 for name in self.net.outputs}
                self._log_outputs("Train", train_outputs, self._loss_weights[0])
                self.emit({"iter": self.iter, "phase": "train", "loss": self.smoothed_loss,
                           "lr": self.learning_rate()})
            for hook in self.before_update:
                hook(self)
            self.apply_update()
            self.iter += 1
            for callback in self.callbacks:
                callback(self)
            if self._snapshot_or_stop():
                break

    def solve(self, resume_file=None):
        """Train to max_iter, then snapshot, test and report as Caffe's Solve does.

        resume_file: a .solverstate to restore first (pycaffe's solve(path)).
        """
        p = self.param
        self.log(f"Solving {self.net.name or 'net'}")
        self.log(f"Learning Rate Policy: {p.lr_policy if p.HasField('lr_policy') else 'fixed'}")
        if resume_file is not None:
            self.restore(resume_file)
        self.requested_early_exit = False
        self.step(p.max_iter - self.iter)
        # A solver without a snapshot_prefix (one built from a message) has no name to write to.
        if (p.snapshot_after_train and self.snapshot_prefix is not None
                and (not p.snapshot or self.iter % p.snapshot)):
            self.snapshot()
        if self.requested_early_exit:
            self.log("Optimization stopped early.")
            return
        if p.display and self.iter % p.display == 0:
            self._smooth(self.net.forward_pass())
            self.log(f"Iteration {self.iter}, loss = {self.smoothed_loss:.6g}")
            self.emit({"iter": self.iter, "phase": "train", "loss": self.smoothed_loss,
                       "lr": self.learning_rate()})
        if p.test_interval and self.iter % p.test_interval == 0:
            self.test_all()
        self.log("Optimization Done.")

    def _smooth(self, loss):
        window = max(self.param.average_loss, 1)
        self._losses.append(loss)
        del self._losses[:-window]
        self.smoothed_loss = float(np.mean(self._losses))

    @staticmethod
    def _outputs(values):
        """(label, number) for each element of each named output: `name`, or `name[k]`."""
        for name, data in values.items():
            for k, value in enumerate(np.ravel(data)):
                yield (name if np.size(data) == 1 else f"{name}[{k}]"), float(value)

    def _log_outputs(self, kind, values, loss_weights):
        """Caffe's `    Train net output #k: name = v (* w = w*v loss)` lines.

        As Caffe: outputs in name order, one line per element, numbered across all.
        """
        index = 0
        for name in sorted(values):
            weight = loss_weights.get(name, 0.0)
            for value in np.ravel(values[name]):
                weighted = f" (* {weight:.6g} = {weight * value:.6g} loss)" if weight else ""
                self.log(f"    {kind} net output #{index}: {name} = {value:.6g}{weighted}")
                index += 1

    def test_all(self):
        """Run every test net; returns a list of {output: mean value} dicts."""
        return [self.test(i) for i in range(len(self.test_nets))]

    def test(self, index=0):
        """Average each output of test net `index` over its test_iter batches."""
        net = self.test_nets[index]
        iters = self.param.test_iter[index if len(self.param.test_iter) > 1 else 0]
        outputs = net.outputs
        sums, loss = {}, 0.0
        self.log(f"Iteration {self.iter}, Testing net (#{index})")
        for _ in range(iters):
            loss += net.forward_pass()
            for name in outputs:
                values = np.asarray(net.blobs[name].host_data(), np.float64)
                sums[name] = sums.get(name, 0.0) + values
        means = {name: total / max(iters, 1) for name, total in sums.items()}
        if self.param.test_compute_loss:
            self.log(f"Test loss: {loss / max(iters, 1):.6g}")
        self._log_outputs("Test", means, self._loss_weights[1 + index])
        event = {"iter": self.iter, "phase": "test", "net": index}
        event.update(self._outputs(means))
        self.emit(event)
        # A one-element output of any shape (pycaffe's losses are (1,)) reads as a number.
        return {name: (float(np.ravel(m)[0]) if np.size(m) == 1 else m)
                for name, m in means.items()}

    # -- snapshots ---------------------------------------------------------------------

    def _snapshot_prefix(self):
        """snapshot_prefix as Caffe resolves it, or None when there is none to be had.

        As Caffe, a relative prefix is taken from the working directory; a missing
        one is the solver file's name without its extension; a folder gets the
        solver file's stem appended. `snapshot: N` without any prefix is an error.
        """
        p = self.param
        if p.snapshot < 0:
            raise NetError(f"{self.where}: snapshot must be >= 0 (got {p.snapshot})")
        prefix = p.snapshot_prefix if p.HasField("snapshot_prefix") else None
        if self.source:
            stem = os.path.splitext(self.source)[0]
            if prefix is None:
                prefix = stem
            elif os.path.isdir(prefix):
                prefix = os.path.join(prefix, os.path.basename(stem))
        if prefix is None and p.snapshot:
            raise NetError(f"{self.where}: snapshot is given but snapshot_prefix is not")
        if prefix is not None:
            # Found now, not when the first snapshot fails after hours of training.
            folder = os.path.dirname(os.path.abspath(prefix))
            while not os.path.exists(folder) and os.path.dirname(folder) != folder:
                folder = os.path.dirname(folder)
            if not os.path.isdir(folder):
                raise NetError(f"{self.where}: snapshot_prefix {prefix!r} is under "
                               f"{folder!r}, which is a file, not a folder")
        return prefix

    def snapshot_paths(self):
        """(caffemodel, solverstate) names for a snapshot now: <prefix>_iter_<iter>.<ext>."""
        if self.snapshot_prefix is None:
            raise NetError(f"{self.where}: cannot snapshot without a snapshot_prefix")
        h5 = ".h5" if self.param.snapshot_format == pb.SolverParameter.HDF5 else ""
        base = f"{self.snapshot_prefix}_iter_{self.iter}"
        return f"{base}.caffemodel{h5}", f"{base}.solverstate{h5}"

    def snapshot(self):
        """Write the weights and the solver state, as Caffe's Snapshot; returns both paths.

        The format is snapshot_format (BINARYPROTO or HDF5); snapshot_diff also
        writes the param diffs. Each file is written to a temporary name and renamed.
        """
        model, state = self.snapshot_paths()
        kind = "HDF5" if model.endswith(".h5") else "binary proto"
        self.log(f"Snapshotting to {kind} file {model}")
        self.net.save(model, write_diff=self.param.snapshot_diff)
        self.log(f"Snapshotting solver state to {kind} file {state}")
        write_solver_state(state, self.iter, model, self.current_step,
                           [to_host(h) for h in self.history])
        self.last_snapshot = (model, state)
        return self.last_snapshot

    def restore(self, path):
        """Resume from a .solverstate or .solverstate.h5, as Caffe's Restore.

        Restores iter, current_step, the history and the weights of its
        learned_net (looked up as written, else beside the state file), and
        moves each train data layer that can `skip(batches)` past the batches
        already used. As in Caffe, the smoothed-loss window starts empty.
        """
        self.log(f"Restoring previous solver status from {path}")
        iteration, learned_net, current_step, history = read_solver_state(path)
        self._check_history(path, history)
        if learned_net:
            self.net.copy_from(self._learned_net_path(path, learned_net))
        for mine, saved in zip(self.history, history):
            mine[...] = array_module(mine).asarray(saved)      # onto the device in GPU mode
        self.iter, self.current_step = iteration, current_step
        self._losses, self.smoothed_loss = [], float("nan")
        self._display_mark = None
        for layer in self.net.layers:
            skip = getattr(layer, "skip", None)
            if skip is not None:
                skip(iteration * max(self.param.iter_size, 1))

    def _check_history(self, path, history):
        """A DataError or ShapeError (naming the param) when history is not this solver's."""
        if len(history) != len(self.history):
            raise DataError(
                f"{path}: {len(history)} history blobs, but this {self.type} solver keeps "
                f"{len(self.history)} ({self.history_sets} per learnable param of the net); "
                "is it the state of another net or solver type?")
        labels = self._param_labels()
        for i, (mine, saved) in enumerate(zip(self.history, history)):
            if saved.shape != mine.shape:
                raise ShapeError(f"{path}: history blob {i} ({labels[i % len(labels)]}) has "
                                 f"shape {saved.shape} there but {mine.shape} in the net")

    def _param_labels(self):
        """"layer 'x' param j" for each learnable param, in learnable_params order."""
        names = {}
        for name, layer in self.net.layer_dict.items():
            for j, blob in enumerate(layer.blobs):
                names.setdefault(id(blob), f"layer '{name}' param {j}")
        return [names.get(id(b), f"param {i}") for i, b in enumerate(self.net.learnable_params)]

    @staticmethod
    def _learned_net_path(state_path, learned_net):
        if os.path.exists(learned_net) or os.path.isabs(learned_net):
            return learned_net
        beside = os.path.join(os.path.dirname(os.path.abspath(state_path)),
                              os.path.basename(learned_net))
        return beside if os.path.exists(beside) else learned_net

    def _snapshot_or_stop(self):
        """After an iteration: snapshot when due or asked; True when asked to stop (as Caffe)."""
        request = self.action() if self.action is not None else None
        p = self.param
        if (p.snapshot and self.iter % p.snapshot == 0) or request == "snapshot":
            self.snapshot()
        if request == "stop":
            self.requested_early_exit = True
            return True
        return False

    # -- the update -------------------------------------------------------------------

    def apply_update(self):
        rate = self.learning_rate()
        p = self.param
        if p.display and self.iter % p.display == 0:
            self.log(f"Iteration {self.iter}, lr = {rate:.6g}")
        with device_side():
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
        # regularization_type is L1 or L2: check_param refused anything else.
        if self.param.regularization_type == "L2":
            blob.diff += decay * blob.data
        else:
            blob.diff += decay * array_module(blob.data).sign(blob.data)

    def clip_gradients(self):
        """Scale all diffs down so their global L2 norm is at most clip_gradients."""
        limit = self.param.clip_gradients
        if limit < 0:
            return
        norm = math.sqrt(sum(float(array_module(b.diff).sum(b.diff.astype(np.float64) ** 2))
                             for b in self.net.learnable_params))
        if norm > limit:
            self.log(f"Gradient clipping: scaling down gradients (L2 norm {norm:.6g} > "
                     f"{limit:.6g}) by scale factor {limit / norm:.6g}")
            for b in self.net.learnable_params:
                b.diff *= limit / norm

    def compute_update_value(self, i, blob, rate):
        """Turn blob.diff into the step to subtract (SGD with momentum)."""
        history = self.history[i]
        history *= self.param.momentum
        # In place, no temporary: blob.diff is overwritten with the step just after.
        blob.diff *= rate * self.net.lr_mults[i]
        history += blob.diff
        blob.diff[...] = history

    def add_callback(self, callback):
        """Call callback(solver) after every iteration."""
        self.callbacks.append(callback)

    def add_event_listener(self, listener):
        """Call listener(event) with each structured training event (see `emit`)."""
        self.event_listeners.append(listener)

    def emit(self, event):
        """Send one event dict to every listener. The solver emits two kinds:

        * at every display: {"iter", "phase": "train", "loss" (smoothed as the log
          line), "lr"} -- also after the last iteration, as the final log line;
        * at every test: {"iter", "phase": "test", "net": k, <output>: mean, ...},
          one key per test-net output (`name[i]` for each element of a larger one).
        """
        for listener in self.event_listeners:
            listener(event)

    def enable_diagnostics(self, **kwargs):
        """Watch per-layer activation, gradient and update norms (see net/analysis/diagnostics.py)."""
        from .analysis.diagnostics import Diagnostics
        return self.diagnostics or Diagnostics(self, **kwargs)


def _output_loss_weights(net):
    """{output name: its loss weight} for the outputs that weigh in the loss (Caffe's
    blob_loss_weights): a loss top's diff holds its weight once the net is set up."""
    weighted = {id(blob) for blob, _ in net._loss_tops}
    return {name: float(net.blobs[name].host_diff().ravel()[0]) for name in net.outputs
            if id(net.blobs[name]) in weighted and net.blobs[name].count}


SOLVERS[SGDSolver.type] = SGDSolver


def get_solver(solver, **kwargs):
    """The solver its file asks for (`type:`, or the legacy `solver_type:`)."""
    param, source = read_solver(solver)
    return SOLVERS[solver_type_name(param, source or "solver")](solver, **kwargs)
