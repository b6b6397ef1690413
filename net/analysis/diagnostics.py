"""Seeing training: per-layer norms of activations, gradients and updates, with warnings.

Every `every` iterations (the solver's `display` by default), for each layer with
learnable params:

    activation    ||top||                    its top blobs as the net holds them after
                                             forward (an in-place ReLU after it shows its output)
    gradient      ||dL/dparams||             all its param blobs, before the solver touches them
                                             (divided by iter_size, no decay or clipping)
    update_ratio  ||update|| / ||params||    the step the solver subtracted, against the
                                             params before the step

(L2 norms over all of a layer's param or top blobs together.) A warning names the
layer when its gradient norm over the top-most param layer's is below `vanish`
(vanishing) or above `explode` or not finite (exploding), and a ReLU layer when
more than `dead` of its outputs are <= 0.
"""
import math

import numpy as np

from ...proto.atomic import atomic_path
from ...proto.errors import CyffeError


def _norm(arrays):
    return math.sqrt(sum(float(np.sum(np.square(a, dtype=np.float64))) for a in arrays))


class Diagnostics:
    """Watches a solver's training; attach with Diagnostics(solver) or solver.enable_diagnostics().

    `log` (a callable taking one line, e.g. solver.log) receives the table and the
    warnings at every recorded iteration; without it the diagnostics stay quiet and
    only keep `history` and `warnings`.
    """

    def __init__(self, solver, every=None, log=None, vanish=1e-4, explode=1e4, dead=0.9):
        self.solver = solver
        self.every = every or solver.param.display or 100
        self.log = log
        self.vanish, self.explode, self.dead = vanish, explode, dead
        net = solver.net
        named = list(zip(net._layer_names, net.layers, net._top))
        self.param_layers = [(name, layer, tops) for name, layer, tops in named if layer.blobs]
        self.relu_layers = [(name, tops) for name, layer, tops in named if layer.type == "ReLU"]
        names = [name for name, _, _ in self.param_layers]
        self.history = {"iteration": [],
                        "activation": {n: [] for n in names},
                        "gradient": {n: [] for n in names},
                        "update_ratio": {n: [] for n in names},
                        "dead_fraction": {n: [] for n, _ in self.relu_layers}}
        self.warnings = []            # (iteration, message), every one ever issued
        self._weight_norms = None     # set before an update this instance records
        solver.before_update.append(self._before_update)
        solver.add_callback(self._after_update)
        solver.diagnostics = self

    def _before_update(self, solver):
        if solver.iter % self.every:
            return
        scale = 1.0 / max(solver.param.iter_size, 1)
        h = self.history
        h["iteration"].append(solver.iter)
        self._weight_norms = {}
        for name, layer, tops in self.param_layers:
            h["activation"][name].append(_norm(t.data for t in tops))
            h["gradient"][name].append(_norm(b.diff for b in layer.blobs) * scale)
            self._weight_norms[name] = _norm(b.data for b in layer.blobs)
        for name, tops in self.relu_layers:
            size = sum(t.data.size for t in tops)
            dead = sum(int(np.count_nonzero(t.data <= 0)) for t in tops)
            h["dead_fraction"][name].append(dead / size if size else 0.0)

    def _after_update(self, solver):
        if self._weight_norms is None:
            return
        # Every solver leaves the step it subtracted in blob.diff.
        for name, layer, _ in self.param_layers:
            weights = self._weight_norms[name]
            step = _norm(b.diff for b in layer.blobs)
            ratio = step / weights if weights else (0.0 if step == 0 else math.inf)
            self.history["update_ratio"][name].append(ratio)
        self._weight_norms = None
        found = self.check()
        iteration = self.history["iteration"][-1]
        self.warnings.extend((iteration, message) for message in found)
        if self.log is not None:
            for line in self.table():
                self.log(line)
            for message in found:
                self.log(f"Warning: {message}")

    def latest(self):
        """{layer: (activation, gradient, update_ratio)} of the last recorded iteration."""
        h = self.history
        return {name: (h["activation"][name][-1], h["gradient"][name][-1],
                       h["update_ratio"][name][-1]) for name in h["gradient"]}

    def check(self):
        """The warnings (strings) for the last recorded iteration."""
        h, found = self.history, []
        iteration = h["iteration"][-1]
        grads = {name: values[-1] for name, values in h["gradient"].items()}
        top = grads[self.param_layers[-1][0]] if self.param_layers else 0.0
        for name, grad in grads.items():
            ratio = grad / top if top and math.isfinite(top) else None
            if not math.isfinite(grad):
                found.append(f"iteration {iteration}: layer '{name}' gradients explode "
                             f"(norm {grad})")
            elif ratio is not None and ratio > self.explode:
                found.append(f"iteration {iteration}: layer '{name}' gradients explode "
                             f"(norm {grad:.3g}, {ratio:.3g} x the top layer's)")
            elif ratio is not None and ratio < self.vanish:
                found.append(f"iteration {iteration}: layer '{name}' gradients vanish "
                             f"(norm {grad:.3g}, {ratio:.3g} x the top layer's)")
        for name, values in h["dead_fraction"].items():
            if values[-1] > self.dead:
                found.append(f"iteration {iteration}: ReLU layer '{name}' is mostly dead "
                             f"({values[-1]:.0%} of its outputs are <= 0)")
        return found

    def table(self):
        """The last recorded iteration as text lines: one row per param layer."""
        width = max([len(name) for name, _, _ in self.param_layers] + [5])
        lines = [f"Diagnostics at iteration {self.history['iteration'][-1]}:",
                 f"    {'layer':<{width}}  {'activation':>10}  {'gradient':>10}  "
                 f"{'update/weight':>13}"]
        for name, (act, grad, ratio) in self.latest().items():
            lines.append(f"    {name:<{width}}  {act:>10.3g}  {grad:>10.3g}  {ratio:>13.3g}")
        return lines

    def plot(self, path):
        """Write a PNG of each param layer's gradient norm over the iterations (log scale)."""
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            raise CyffeError(f"{path}: plotting diagnostics needs matplotlib: "
                             "pip install matplotlib") from None
        figure = Figure(figsize=(8, 5))
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        iterations = self.history["iteration"]
        for name, values in self.history["gradient"].items():
            shown = [v if v > 0 and math.isfinite(v) else math.nan for v in values]
            axes.plot(iterations, shown, marker=".", label=name)
        axes.set_yscale("log")
        axes.set_xlabel("iteration")
        axes.set_ylabel("gradient L2 norm")
        axes.set_title(f"Gradient norm per layer: {self.solver.net.name or 'net'}")
        if self.history["gradient"]:
            axes.legend(fontsize="small", loc="best")
        figure.tight_layout()
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png")
        return path
