"""Net: a prototxt wired into a graph of layers and run in topological order.

The pipeline reads as Caffe's Net::Init: filter layers by the net state, wire
blobs (in-place layers make new versions of a blob), insert Split layers where
a blob version feeds several layers, order the layers (Kahn, stable on file
order), set them up, and decide which need backward.
"""
import contextlib
import heapq
import os
import warnings
from collections import OrderedDict

import numpy as np

from ..layers.backend import array_module, device_side, gpu_mode, mode, one_blas_thread
from ..layers.blob import Blob, generation
from ..layers.registry import layer_class
from ..proto import cyffe_pb2 as pb
from ..proto.errors import NetError, NonFiniteError, ShapeError, did_you_mean, wrap_layer_error
from ..proto.io import read_net
from ..proto.upgrade import upgrade_net
from .analysis import summary as tables
from ..layers.kernels import avx512
from ..layers.kernels.arena import aligned
from ..layers.kernels.step import Step, run_plan
from .fold import find_folds
from .glog import log_net_setup
from .memory import BlobSharing
from .weights import load_weights, save_weights, weights_to_proto


class PhaseWarning(UserWarning):
    """A Net built without a phase: cyffe builds TRAIN, where pycaffe would refuse."""


def state_meets_rule(state, rule):
    """Caffe's NetStateRule test: phase, level bounds, required and forbidden stages."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    stages = set(state.stage)
    return all(s in stages for s in rule.stage) and not any(s in stages for s in rule.not_stage)


def layer_included(layer, state):
    """Include rules: any may match; with none, exclude rules: none may match."""
    if layer.include:
        return any(state_meets_rule(state, r) for r in layer.include)
    return not any(state_meets_rule(state, r) for r in layer.exclude)


class Net:
    """A network built from a prototxt, as pycaffe's caffe.Net.

    Net(model, phase, weights=None, level=0, stages=(), dtype=np.float32);
    pycaffe's order Net(model, weights, phase) works too. `model` is a prototxt
    path, a prototxt string or a NetParameter. Give the phase, cyffe.TRAIN or
    cyffe.TEST, as pycaffe requires: without one the TRAIN net is built (Dropout
    on, TRAIN-only layers in) with a PhaseWarning.

    share_blobs=True (inference only: a net that runs no backward) lets the blobs that
    are not inputs, outputs or named in `keep` share buffers (net/memory.py): less memory,
    but only the outputs and the kept blobs can be read after forward.
    """

    def __init__(self, model, phase=None, weights=None, level=0, stages=(),
                 dtype=np.float32, share_blobs=False, keep=()):
        if isinstance(phase, (str, os.PathLike)) and not isinstance(weights, (str, os.PathLike)):
            phase, weights = weights, phase
        if phase is None:
            warnings.warn("cyffe.Net built without a phase: this is the TRAIN net (Dropout "
                          "on, TRAIN-only layers in); pass cyffe.TEST for inference, or "
                          "cyffe.TRAIN (pycaffe requires the phase)", PhaseWarning, stacklevel=2)
            phase = pb.TRAIN
        param, self.source = read_net(model)
        # A TEST net says so in its errors: a layer left out for TRAIN is a common cause.
        self.where = (self.source or "<net>") + (" (TEST net)" if phase == pb.TEST else "")
        param = upgrade_net(param, self.where)
        self.param = param
        self.phase = phase
        self.dtype = np.dtype(dtype)
        self.name = param.name

        state = pb.NetState()
        state.CopyFrom(param.state)
        state.phase = phase
        state.level = level or state.level
        state.stage.extend(s for s in stages if s not in state.stage)
        layer_params = [l for l in param.layer if layer_included(l, state)]
        self._left_out = [l for l in param.layer if not layer_included(l, state)]

        self._wire(layer_params)
        self._setup_layers()
        self._decide_backward(param.force_backward)
        self._folds = find_folds(self) if phase == pb.TEST and not param.force_backward else {}
        self._folded = False            # whether the blobs hold a folded forward's values
        log_net_setup(self)
        if weights is not None:
            self.copy_from(weights)
        for layer, needed in zip(self.layers, self._layer_needs_backward):
            layer.forward_only = not needed
        self._sharing = self._share_blobs(keep) if share_blobs else None
        if keep and not share_blobs:
            raise NetError(f"{self.where}: keep= names the blobs share_blobs=True must not "
                           "pool; without it every blob is kept")

    # -- building ---------------------------------------------------------------

    def _where(self, lp):
        return f"{self.where}: layer '{lp.name}' ({lp.type})"

    def _wire(self, layer_params):
        """Give every layer its bottom and top Blobs, inserting Splits, then order them.

        Every write of a blob name is a version: its producer's, then one per
        in-place layer, chained in file order. A layer reads the latest version
        written before it in the file (or the final one, if the file lists it
        before the producer), so files with layers out of order still work.
        """
        producer, modifiers = {}, {}
        for i, lp in enumerate(layer_params):
            for t in lp.top:
                if t in lp.bottom:
                    modifiers.setdefault(t, []).append(i)
                elif t in producer:
                    raise NetError(f"{self._where(lp)}: top '{t}' is also produced by layer "
                                   f"'{layer_params[producer[t]].name}'")
                else:
                    producer[t] = i
        for i, lp in enumerate(layer_params):
            for b in lp.bottom:
                if b not in producer:
                    raise NetError(f"{self._where(lp)}: bottom blob '{b}' is not produced by "
                                   f"any layer"
                                   f"{self._left_out_hint(b) or did_you_mean(b, producer)}")
        writers = {b: [p] + modifiers.get(b, []) for b, p in producer.items()}

        consumers = {}                   # (blob name, version) -> [(layer, bottom index)]
        for i, lp in enumerate(layer_params):
            for j, b in enumerate(lp.bottom):
                chain = writers[b]
                if b in lp.top:
                    v = chain.index(i) - 1
                else:
                    before = [k for k, w in enumerate(chain) if w < i]
                    v = before[-1] if before else len(chain) - 1
                consumers.setdefault((b, v), []).append((i, j))

        bottoms = [[None] * len(lp.bottom) for lp in layer_params]
        tops = [[None] * len(lp.top) for lp in layer_params]
        for i, lp in enumerate(layer_params):
            tops[i] = [None if t in lp.bottom else Blob((), self.dtype) for t in lp.top]
        nodes = [(lp, bottoms[i], tops[i], float(i)) for i, lp in enumerate(layer_params)]
        deps = [set() for _ in layer_params]
        for b, chain in writers.items():
            for v, w in enumerate(chain):
                j = list(layer_params[w].top).index(b)
                if tops[w][j] is None:
                    tops[w][j] = Blob((), self.dtype)
                blob = tops[w][j]
                users = consumers.get((b, v), [])
                if len(users) > 1:
                    # A Split fans the version out and sums the diffs coming back.
                    base = f"{b}_{layer_params[w].name}_{j}_split"
                    split = pb.LayerParameter(name=base, type="Split", bottom=[b],
                                              top=[f"{base}_{k}" for k in range(len(users))])
                    outs = [Blob((), self.dtype) for _ in users]
                    deps.append({w})
                    nodes.append((split, [blob], outs, w + 0.5))
                    for (ci, bi), out in zip(users, outs):
                        bottoms[ci][bi] = out
                        deps[ci].add(len(nodes) - 1)
                else:
                    for ci, bi in users:
                        bottoms[ci][bi] = blob
                        deps[ci].add(w)
                if v + 1 < len(chain):
                    # The next in-place writer writes where it reads, unless it reads a
                    # Split output (shared with its siblings): then it gets a blob of its own.
                    m = chain[v + 1]
                    tops[m][list(layer_params[m].top).index(b)] = blob if len(users) == 1 else None
        self._build_nodes(nodes, deps)

    def _left_out_hint(self, blob):
        """Which layers left out by the net's state (phase, level, stage) would make blob."""
        makers = [f"'{lp.name}'" for lp in self._left_out if blob in lp.top]
        if not makers:
            return ""
        phase = pb.Phase.Name(self.phase)
        return f" of the {phase} net (layer {', '.join(makers)} makes it, but not in {phase})"

    def _build_nodes(self, nodes, deps):
        """Order the nodes (Kahn, stable on file order) and make the layer objects."""
        users = [[] for _ in nodes]
        pending = [len(d) for d in deps]
        for n, d in enumerate(deps):
            for p in d:
                users[p].append(n)
        ready = [(nodes[n][3], n) for n in range(len(nodes)) if pending[n] == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            _, n = heapq.heappop(ready)
            order.append(n)
            for u in users[n]:
                pending[u] -= 1
                if pending[u] == 0:
                    heapq.heappush(ready, (nodes[u][3], u))
        if len(order) < len(nodes):
            stuck = [nodes[n][0].name for n in range(len(nodes)) if pending[n] > 0]
            raise NetError(f"{self.where}: the layers form a cycle: {', '.join(stuck)}")

        base_dir = os.path.dirname(os.path.abspath(self.source)) if self.source else None
        self.blobs = OrderedDict()
        self.layers, self._bottom, self._top, self._layer_names = [], [], [], []
        for n in order:
            lp, bs, ts, _ = nodes[n]
            layer = layer_class(lp.type, self._where(lp))(lp, self.phase, self.dtype,
                                                          base_dir=base_dir)
            self.layers.append(layer)
            self._bottom.append(bs)
            self._top.append(ts)
            self._layer_names.append(lp.name)
            for name, blob in zip(lp.top, ts):
                self.blobs[name] = blob      # a later in-place version takes the name
        self._blobs_of = [bs + ts for bs, ts in zip(self._bottom, self._top)]
        # The blob generation after each layer's last reshape; the generation at the end of
        # the last whole forward in which nothing changed (then no reshape is due); the
        # backend mode they were made in.
        self._reshaped_at = [0] * len(self.layers)
        self._settled = None
        self._plan = self._plan_key = self._plan_scratch = None
        self._mode = mode()
        self._outputs = None

    def _setup_layers(self):
        self._loss_tops = []              # (blob, layer index) pairs weighed into the loss
        owners = {}                       # ParamSpec name -> (blob, layer name)
        self.learnable_params, self.lr_mults, self.decay_mults = [], [], []
        self.params = OrderedDict()
        for li, layer in enumerate(self.layers):
            bottom, top = self._bottom[li], self._top[li]
            layer.check_blob_counts(bottom, top)
            try:
                layer.setup(bottom, top)
            except Exception as err:
                self._raise_from_layer(li, err)
            self._reshape_layer(li)
            lp = layer.param
            if lp.loss_weight and len(lp.loss_weight) != len(top):
                raise NetError(f"{self._where(lp)}: {len(lp.loss_weight)} loss_weight values for "
                               f"{len(top)} tops")
            for ti, blob in enumerate(top):
                weight = lp.loss_weight[ti] if lp.loss_weight else (
                    1.0 if layer.is_loss and ti == 0 else 0.0)
                if weight:
                    blob.diff[...] = weight
                    self._loss_tops.append((blob, li))
            if len(lp.param) > len(layer.blobs):
                raise NetError(f"{self._where(lp)}: {len(lp.param)} param specs for "
                               f"{len(layer.blobs)} learnable blobs")
            for pi, blob in enumerate(layer.blobs):
                spec = lp.param[pi] if pi < len(lp.param) else pb.ParamSpec()
                if spec.name and spec.name in owners:
                    owner, owner_layer = owners[spec.name]
                    same = (owner.shape == blob.shape if spec.share_mode == pb.ParamSpec.STRICT
                            else owner.count == blob.count)
                    if not same:
                        raise ShapeError(f"{self._where(lp)}: shared param '{spec.name}' has "
                                         f"shape {blob.shape} here but {owner.shape} in layer "
                                         f"'{owner_layer}'")
                    if owner.shape != blob.shape:
                        owner = owner.view(blob.shape)
                    layer.blobs[pi] = owner
                    continue
                if spec.name:
                    owners[spec.name] = (blob, lp.name)
                self.learnable_params.append(blob)
                self.lr_mults.append(spec.lr_mult)
                self.decay_mults.append(spec.decay_mult)
            if layer.blobs:
                self.params[lp.name] = layer.blobs

    def _decide_backward(self, force_backward):
        """Which layers run backward and to which bottoms (Caffe's rules)."""
        needs = {}                                        # id(blob) -> needs backward
        layer_needs = []
        bottom_needs = []
        for li, layer in enumerate(self.layers):
            lp = layer.param
            flags = [needs.get(id(b), False) for b in self._bottom[li]]
            if lp.propagate_down:
                if len(lp.propagate_down) != len(flags):
                    raise NetError(f"{self._where(lp)}: propagate_down needs one value per bottom")
                flags = [bool(p) for p in lp.propagate_down]
            if force_backward:
                flags = [f or layer.allow_backward(i) for i, f in enumerate(flags)]
            param_need = any(self._lr_mult(li, pi) != 0 for pi in range(len(layer.blobs)))
            need = any(flags) or param_need
            for t in self._top[li]:
                needs[id(t)] = needs.get(id(t), False) or need
            layer_needs.append(need)
            bottom_needs.append(flags)

        under_loss = set(id(b) for b, _ in self._loss_tops)
        for li in reversed(range(len(self.layers))):
            contributes = force_backward or any(id(t) in under_loss for t in self._top[li])
            if contributes:
                under_loss.update(id(b) for b in self._bottom[li])
            else:
                layer_needs[li] = False
                bottom_needs[li] = [False] * len(bottom_needs[li])
        self._layer_needs_backward = layer_needs
        self._bottom_needs_backward = [
            [f and self.layers[li].allow_backward(i) for i, f in enumerate(flags)]
            for li, flags in enumerate(bottom_needs)]

    def _share_blobs(self, keep):
        """The buffer pool of share_blobs=True, for a net that never runs backward."""
        backward = [name for name, need in zip(self._layer_names, self._layer_needs_backward)
                    if need]
        if backward:
            raise NetError(f"{self.where}: share_blobs=True is for nets that run no backward, "
                           f"but layer(s) {', '.join(backward)} do (a loss, or force_backward)")
        return BlobSharing(self, keep)

    def _lr_mult(self, li, pi):
        specs = self.layers[li].param.param
        return specs[pi].lr_mult if pi < len(specs) else 1.0

    # -- running ------------------------------------------------------------------

    @property
    def inputs(self):
        """Names of the blobs fed from outside (the tops of Input layers)."""
        return [t for l in self.layers if l.type == "Input" for t in l.param.top]

    @property
    def outputs(self):
        """Names of the blobs no layer consumes."""
        if self._outputs is None:
            consumed = set(id(b) for bs in self._bottom for b in bs)
            seen, names = set(), []
            for name, blob in self.blobs.items():
                if id(blob) not in consumed and id(blob) not in seen and "_split_" not in name:
                    seen.add(id(blob))
                    names.append(name)
            self._outputs = names
        return list(self._outputs)

    @property
    def batch_size(self):
        """The first axis of the first top of the first layer without bottoms (the data), or None."""
        for layer in self.layers:
            if layer.param.top and not layer.param.bottom:
                shape = self.blobs[layer.param.top[0]].shape
                if shape:
                    return shape[0]
        return None

    def reshape(self):
        """Propagate input shapes through every layer (after reshaping an input blob).

        forward() does this itself, layer by layer, where a blob changed shape or memory.
        """
        start = generation()
        for li in range(len(self.layers)):
            self._reshape_layer(li)
        self._after_run(start, False)

    def _reshape_layer(self, li):
        """Shape layer li's tops, on the side its forward runs (see Layer.reshape_side)."""
        layer, bottom, top = self.layers[li], self._bottom[li], self._top[li]
        try:
            with layer.reshape_side(bottom, top):
                layer.reshape(bottom, top)
        except Exception as err:
            self._raise_from_layer(li, err)
        self._reshaped_at[li] = generation()

    def _raise_from_layer(self, li, err):
        """Raise err, raised by layer li's own code, as an error naming the layer: a
        CyffeError as it is (named), anything else as a LayerError that is also of err's
        class, err its cause."""
        wrapped = wrap_layer_error(err, self._where(self.layers[li].param))
        if wrapped is err:
            raise err
        raise wrapped from err

    def _reshape_if_changed(self, li):
        """Reshape layer li, as Caffe before every forward, unless its reshape depends on
        shapes only and none of its blobs changed shape or memory since its last one."""
        if self.layers[li].reshape_by_shapes and max(
                [b._stamp for b in self._blobs_of[li]], default=0) <= self._reshaped_at[li]:
            return
        self._reshape_layer(li)

    def _follow_mode(self):
        """After a switch between CPU and GPU mode, every layer reshapes (its scratch moves)."""
        if mode() != self._mode:
            self._mode = mode()
            self._reshaped_at = [-1] * len(self.layers)
            self._settled = None

    def _after_run(self, start, whole):
        """Bookkeeping after layers ran from blob generation `start`: a whole forward that
        changed nothing settles the net."""
        if generation() != start:
            self._settled = None
        elif whole:
            self._settled = start

    def _layer_index(self, name, default):
        """The run-order index of the layer called name (default when name is None)."""
        if name is None:
            return default
        try:
            return self._layer_names.index(name)
        except ValueError:
            raise NetError(f"{self.where}: no layer named '{name}'; layers: "
                           f"{', '.join(self._layer_names)}") from None

    def _blob(self, name, what):
        try:
            return self.blobs[name]
        except KeyError:
            raise NetError(f"{self.where}: no blob named '{name}' {what}") from None

    def forward(self, blobs=None, start=None, end=None, **inputs):
        """Run forward from layer `start` to layer `end` (both included; default: all).

        Keyword arguments are copied into the named blobs first (an input of a
        new batch size reshapes the net). Returns {name: data array} (the live
        arrays, as pycaffe) for the net's outputs, or for the tops of `end`
        when it is given, plus the blob names listed in `blobs`.
        """
        first = self._layer_index(start, 0)
        last = self._layer_index(end, len(self.layers) - 1)
        for name, value in inputs.items():
            self._check_fed(name, first, last)
            value = np.asarray(value)
            blob = self._blob(name, "to feed")
            if blob.shape != value.shape:
                blob.reshape(value.shape)
            blob.data[...] = value
        if first > last:
            raise NetError(f"{self.where}: forward from '{start}' to '{end}': '{end}' runs "
                           "before it")
        if self._sharing is not None:
            self._sharing.check_readable(blobs or (), self.layers[last].param.top)
            self._sharing.check_start(first, last)
        self.loss = self.forward_from_to(first, last)
        names = list(self.layers[last].param.top) if end is not None else self.outputs
        names += [b for b in (blobs or []) if b not in names]
        return {n: self._blob(n, "to return").data for n in names}

    def _check_fed(self, name, first, last):
        """A NetError when a layer that this forward runs would overwrite the blob fed as name.

        pycaffe takes keyword arrays for the net's inputs only; feeding a blob that a
        data layer writes would be silently ignored.
        """
        for li in range(first, last + 1):
            layer = self.layers[li]
            top, bottom = layer.param.top, layer.param.bottom
            if layer.type != "Input" and name in top and name not in bottom:
                raise NetError(f"{self.where}: forward({name}=...): '{name}' is not a net "
                               f"input: layer '{layer.name}' ({layer.type}) writes it, over what "
                               f"would be fed; the net's inputs (Input layers' tops): "
                               f"{', '.join(self.inputs) or 'none'}")

    def forward_pass(self):
        """Forward through every layer; returns the weighted loss."""
        return self.forward_from_to(0, len(self.layers) - 1)

    def forward_all(self, blobs=None, **inputs):
        """pycaffe's forward_all: run the net over whole arrays, one batch at a time.

        Each keyword names an input blob and gives all its rows; they are fed in
        batches of that blob's first axis (the last batch padded with zeros).
        Returns {name: array of all rows} for the outputs and the blobs listed
        in `blobs`, the padding dropped. A scalar output (a loss) gives one
        value per batch.
        """
        return self._over_batches(lambda batch: self.forward(blobs=blobs, **batch), inputs,
                                  "data", self.outputs + list(blobs or []))

    def backward_all(self, diffs=None, **top_diffs):
        """pycaffe's backward_all: backward over whole arrays of top diffs, batch by batch.

        Each keyword names a blob (an output) and gives the diffs of all its
        rows, fed in batches of that blob's first axis; as pycaffe's, each batch
        goes back through the activations of the last forward. Returns
        {name: array of all rows} for the input diffs and the blobs listed in
        `diffs`, the padding dropped.
        """
        return self._over_batches(lambda batch: self.backward(diffs=diffs, **batch), top_diffs,
                                  "diffs", self.inputs + list(diffs or []))

    def _over_batches(self, run, arrays, what, names):
        """run(batch) for each batch of arrays; {name: the rows of all batches} for names."""
        collected = {name: [] for name in dict.fromkeys(names)}
        for batch in self._batches(arrays, what):
            for name, value in run(batch).items():
                collected[name].append(np.array(value, copy=True))
        return self._unpad(collected, arrays)

    def _batches(self, arrays, what):
        """Yield {name: batch rows} for equal-length arrays, in batches of the blobs' first axis."""
        if not arrays:
            raise NetError(f"{self.where}: give the {what} to run over as keyword arrays "
                           "(name=array); for one pass over the current blobs use forward() or "
                           "forward_pass()")
        arrays = {name: np.asarray(a) for name, a in arrays.items()}
        counts = {len(a) for a in arrays.values()}
        if len(counts) != 1:
            raise ShapeError(f"{self.where}: the arrays have different lengths: "
                             + ", ".join(f"{n} {len(a)}" for n, a in arrays.items()))
        total = counts.pop()
        size = self._blob(next(iter(arrays)), "to feed").shape[0]
        for start in range(0, total, size):
            batch = {}
            for name, a in arrays.items():
                rows = a[start:start + size]
                if len(rows) < size:
                    pad = np.zeros((size - len(rows),) + a.shape[1:], a.dtype)
                    rows = np.concatenate([rows, pad])
                batch[name] = rows
            yield batch

    @staticmethod
    def _unpad(collected, arrays):
        """The collected batches joined, cut to the rows given (scalars: one per batch)."""
        total = len(next(iter(arrays.values())))
        out = {}
        for name, parts in collected.items():
            if parts and parts[0].ndim == 0:
                out[name] = np.stack(parts)
            else:
                out[name] = np.concatenate(parts)[:total] if parts else np.zeros((0,))
        return out

    def forward_from_to(self, first, last):
        """Forward through the layers first..last (run-order indices, both included).

        Each layer reshapes first, as in Caffe, but only if one of its blobs changed shape
        or memory since its last reshape (always, where Layer.reshape_by_shapes is False).
        A whole pass of a TEST net on the CPU (without force_backward) folds BatchNorm,
        Scale, Bias and ReLU chains into the convolutions before them (net/fold.py).
        Returns the weighted loss of the loss tops among them.
        """
        whole = first == 0 and last == len(self.layers) - 1
        self._follow_mode()
        if self._sharing is not None and generation() != self._settled:
            # Shapes first, then the pool follows them: a forward never runs on memory the
            # plan did not give.
            for li in range(len(self.layers)):
                if self.layers[li].reshape_by_shapes:
                    self._reshape_if_changed(li)
            self._sharing.follow()
        start = generation()
        folding = bool(self._folds) and whole and not gpu_mode()
        if not (whole and self._run_plan(folding)):
            self._run(range(first, last + 1), folding)
        self._after_run(start, whole)
        losses = [b for b, li in self._loss_tops if first <= li <= last]
        if not losses:
            return 0.0
        with device_side():             # summed where the tops are: one number comes back
            return float(sum(float(array_module(b.data).sum(b.data * b.diff)) for b in losses))

    def backward(self, diffs=None, start=None, end=None, **top_diffs):
        """Run backward from layer `start` down to layer `end` (both included; default: all).

        Keyword arguments set the diffs of the named blobs first; otherwise it
        starts from the diffs they hold (a loss top's diff is its loss weight).
        Returns {name: diff array} for the net's inputs, or for the bottoms of
        `end` when it is given, plus the blob names listed in `diffs`.
        """
        for name, value in top_diffs.items():
            self._blob(name, "to set the diff of").diff[...] = value
        first = self._layer_index(start, len(self.layers) - 1)
        last = self._layer_index(end, 0)
        if first < last:
            raise NetError(f"{self.where}: backward from '{start}' to '{end}': '{end}' runs "
                           "after it")
        self.backward_from_to(first, last)
        names = self.bottom_names[end] if end is not None else list(self.inputs)
        names += [b for b in (diffs or []) if b not in names]
        return {n: self._blob(n, "to return").diff for n in names}

    def backward_pass(self):
        """Backward through the layers that need it, last to first."""
        self.backward_from_to(len(self.layers) - 1, 0)

    def _set_folding(self, folding):
        """Fold the chains (net/fold.py) or not; returns the indices of the layers folded."""
        skipped = set()
        for li, (fold, folded) in self._folds.items():
            self.layers[li].fold = fold if folding else None
            if folding:
                skipped.update(folded)
        self._folded = folding
        return skipped

    def _run(self, indices, folding):
        """Forward the layers of `indices`, folded or each as written (net/fold.py)."""
        skipped = self._set_folding(folding)
        layers, bottoms, tops = self.layers, self._bottom, self._top
        with one_blas_thread():
            for li in indices:
                if li in skipped:
                    continue
                if generation() != self._settled or not layers[li].reshape_by_shapes:
                    self._reshape_if_changed(li)
                try:
                    layers[li].forward(bottoms[li], tops[li])
                except Exception as err:
                    self._raise_from_layer(li, err)

    def _run_plan(self, folding):
        """Run a whole forward of a settled TEST net on the CPU as its plan: the layers'
        steps (layers/kernels/step.pyx), made once for the blobs' shapes and memory. False,
        having run nothing, when this forward can't: a blob changed since the last forward,
        GPU mode, a TRAIN net, or a layer that reshapes every time."""
        if self.phase != pb.TEST or generation() != self._settled or gpu_mode():
            # its arrays may be ones no blob has now: let them go
            self._plan = self._plan_key = self._plan_scratch = None
            return False
        key = (self._settled, folding)
        if self._plan_key != key:
            self._plan, self._plan_key = None, key
            skipped = self._set_folding(folding)
            if all(layer.reshape_by_shapes for layer in self.layers):
                self._plan = self._make_plan(skipped)
        elif self._folded != folding:
            self._set_folding(folding)
        if self._plan is None:
            return False
        items, order = self._plan
        with contextlib.nullcontext() if self._plan_blas_free else one_blas_thread():
            ran = run_plan(items, self._forward_layer, self._refresh_step)
            if ran < len(items):            # a layer moved blobs: the rest as written
                self._run(order[ran:], folding)
        return True

    def _make_plan(self, skipped):
        """([a Step, or a layer's index to run through forward], [the layers' indices])."""
        items, order = [], []
        for li in range(len(self.layers)):
            if li not in skipped:
                step = self._step_of(li)
                if type(step) is not Step:          # a bare Step does nothing
                    items.append(li if step is None else step)
                    order.append(li)
        self._plan_scratch = None
        self._give_scratch(items)
        return items, order

    def _step_of(self, li):
        try:
            return self.layers[li].step(self._bottom[li], self._top[li])
        except Exception as err:
            self._raise_from_layer(li, err)

    def _give_scratch(self, items):
        """One scratch block for every step: the largest single need."""
        steps = [item for item in items if type(item) is not int]
        # Steps on the AVX-512 kernels call no BLAS: then NumPy's BLAS threads can stay.
        self._plan_blas_free = avx512.available() and len(steps) == len(items)
        need = max([step.scratch_need for step in steps], default=0)
        if self._plan_scratch is None or self._plan_scratch.size < need:
            self._plan_scratch = aligned(need)
        for step in steps:
            step.bind(self._plan_scratch)

    def _forward_layer(self, li):
        """Forward layer li as written; True when a blob changed shape or memory meanwhile."""
        start = generation()
        try:
            self.layers[li].forward(self._bottom[li], self._top[li])
        except Exception as err:
            self._raise_from_layer(li, err)
        return generation() != start

    def _refresh_step(self, position):
        """Item `position` of the plan, a step whose layer's params changed: the layer runs
        as written (deriving what it derives from them again) and gives a new step. True,
        as _forward_layer, when a blob changed shape or memory meanwhile."""
        items, order = self._plan
        li = order[position]
        if self._forward_layer(li):
            return True
        step = self._step_of(li)
        items[position] = li if step is None else step
        self._give_scratch(items)
        return False

    def backward_from_to(self, first, last):
        """Backward through the layers first down to last (run-order indices, both included).

        After a folded forward (see forward_from_to) the folded layers hold no state for a
        backward: every layer but the data sources (whose batch stays) runs again first,
        each as written.
        """
        if self._folded:
            self._run([li for li in range(len(self.layers)) if self._bottom[li]], False)
        with one_blas_thread():
            for li in range(first, last - 1, -1):
                if self._layer_needs_backward[li]:
                    try:
                        self.layers[li].backward(self._top[li], self._bottom_needs_backward[li],
                                                 self._bottom[li])
                    except Exception as err:
                        self._raise_from_layer(li, err)

    def forward_backward(self):
        """One forward and backward pass; returns the loss."""
        loss = self.forward_pass()
        self.backward_pass()
        return loss

    def clear_param_diffs(self):
        """Zero the diffs of the learnable params (they accumulate otherwise)."""
        with device_side():
            for blob in self.learnable_params:
                blob.diff[...] = 0

    def first_non_finite_layer(self):
        """The name of the first layer (in run order) whose top holds NaN or inf."""
        for li, layer in enumerate(self.layers):
            if any(not np.all(np.isfinite(t.data)) for t in self._top[li]):
                return layer.name
        return None

    def check_finite(self, loss, iteration):
        """A NonFiniteError naming the iteration and first offending layer if loss is not finite."""
        if np.isfinite(loss):
            return
        culprit = self.first_non_finite_layer()
        where = f"; layer '{culprit}' was the first to output NaN/inf" if culprit else ""
        raise NonFiniteError(f"{self.where}: loss is {loss} at iteration {iteration}{where}")

    @property
    def layer_dict(self):
        """OrderedDict layer name -> layer, in run order (Split layers included)."""
        return OrderedDict(zip(self._layer_names, self.layers))

    @property
    def top_names(self):
        """OrderedDict layer name -> the names of its top blobs, in run order."""
        return OrderedDict((name, list(layer.param.top))
                           for name, layer in zip(self._layer_names, self.layers))

    @property
    def bottom_names(self):
        """OrderedDict layer name -> its bottom blob names (a Split output by its own name)."""
        split_tops = {id(blob): name for layer, tops in zip(self.layers, self._top)
                      if layer.type == "Split" for name, blob in zip(layer.param.top, tops)}
        return OrderedDict(
            (name, [split_tops.get(id(blob), b) for b, blob in zip(layer.param.bottom, bottoms)])
            for name, layer, bottoms in zip(self._layer_names, self.layers, self._bottom))

    def set_input_arrays(self, data, labels):
        """Feed (N, C, H, W) data and N labels to the net's first layer, a MemoryData (pycaffe's)."""
        if not self.layers or self.layers[0].type != "MemoryData":
            raise NetError(f"{self.where}: set_input_arrays needs a MemoryData first layer")
        self.layers[0].reset(data, labels)

    def share_with(self, other):
        """Use other's learnable blobs for the layers of the same name (test nets)."""
        theirs = other.layer_dict
        for layer in self.layers:
            source = theirs.get(layer.name)
            if source is None or not layer.blobs:
                continue
            for i, blob in enumerate(layer.blobs):
                if i < len(source.blobs):
                    if source.blobs[i].shape != blob.shape:
                        raise ShapeError(f"layer '{layer.name}': cannot share param {i}: shape "
                                         f"{blob.shape} vs {source.blobs[i].shape}")
                    layer.blobs[i] = source.blobs[i]
            self.params[layer.name] = layer.blobs

    # -- weights (net/weights.py) ----------------------------------------------------

    def copy_from(self, weights):
        """Copy learned blobs by layer name from a .caffemodel, a .caffemodel.h5 or a NetParameter.

        As Caffe: layers of the file that the net lacks are skipped (fine-tuning
        keeps the fillers of new layers); a layer present in both must match in
        blob count and shapes. Old V0/V1 weights are upgraded first.
        """
        load_weights(self, weights)

    def to_proto(self, write_diff=False):
        """The net as a NetParameter with its learned blobs (and their diffs: Caffe's ToProto)."""
        return weights_to_proto(self, write_diff)

    def save(self, path, write_diff=False):
        """Write the learned weights (atomically): HDF5 for a `.h5` name, else a binary .caffemodel.

        write_diff also stores the param diffs (the solver's snapshot_diff).
        """
        save_weights(self, path, write_diff)

    def save_hdf5(self, path):
        """Write the learned weights as HDF5 (Caffe's .caffemodel.h5 layout), whatever its name."""
        save_weights(self, path, hdf5=True)

    def load_hdf5(self, path):
        """Copy learned weights by layer name from an HDF5 weights file, whatever its name."""
        load_weights(self, path, hdf5=True)

    # -- description (net/analysis/summary.py) -------------------------------------------

    def summary(self):
        """A table of each layer's type, top shapes, params and memory (what print(net) shows)."""
        return tables.summary(self)

    __str__ = summary

    def __repr__(self):
        return tables.describe(self)
