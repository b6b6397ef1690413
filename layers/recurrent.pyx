"""What LSTM and RNN share (Caffe's RecurrentLayer), computed step by step, not unrolled.

Bottoms: x (T, N, ...) time-major, cont (T, N) sequence-continuation indicators, an
optional static input x_static (N, ...) seen at every step, and with
recurrent_param.expose_hidden the initial states (1, N, H) each (h_0, then c_0 for
LSTM). Tops: the output (T, N, H), then with expose_hidden the final states.

Each step t computes gate inputs from one GEMM over all steps and one per step,

    gates_t = W_x x_t + b + W_static x_static + W_h (cont_t * h_{t-1}),

and the subclass's cell turns them into the new states. cont_t = 0 starts a new
sequence: it zeroes h_{t-1} (and, in the LSTM cell, the forget term). The param blobs
are exactly those of Caffe's unrolled net, in its order: W_x, b, [W_static], W_h, then
the subclass's own.

As in Caffe, without expose_hidden the final states of one forward are the initial
states of the next (zeros at first, and again whenever N changes); cont decides
whether they count. Backward runs through time into x, x_static, every param and,
with expose_hidden, the initial states, starting from the diffs of the final-state
tops.
"""
import logging

import numpy as np

from ..proto.errors import NetError
from . import fillers
from .backend import array_module
from .base import Layer

log = logging.getLogger(__name__)


def _prod(shape):
    return int(np.prod(shape, dtype=np.int64))


class RecurrentLayer(Layer):
    """The recurrent machinery; subclasses set the states, the gates and the cell."""

    state_names = ("h",)        # recurrent states in Caffe's exposed order; h first
    gate_count = 1              # gate inputs per hidden unit (rows of W_x over H)
    param_names = ()            # Caffe's names: W_x, b, W_static, W_h, then the subclass's

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        exposed = len(self.state_names) if self.param.recurrent_param.expose_hidden else 0
        self.num_exposed = exposed
        self.bottoms = (2 + exposed, 3 + exposed)
        self.tops = 1 + exposed

    # -- setup -----------------------------------------------------------------------

    def setup(self, bottom, top):
        p = self.param.recurrent_param
        if p.num_output <= 0:
            raise NetError(f"layer '{self.name}' ({self.type}): recurrent_param.num_output "
                           f"must be positive, got {p.num_output}")
        self.hidden = p.num_output
        self.expose_hidden = p.expose_hidden
        self.debug_info = p.debug_info
        self.static_input = len(bottom) > 2 + self.num_exposed
        self._check_x(bottom)
        self.input_dim = _prod(bottom[0].shape[2:])
        self.static_dim = self._check_static(bottom) if self.static_input else 0
        self.recurrent_index = 3 if self.static_input else 2
        self.blob_names = names = [n for n in self.param_names
                                   if self.static_input or not n.endswith("_static")]
        shapes = self.param_shapes()
        if not self.blobs:
            self.blobs = [self.new_blob(shape) for shape in shapes]
            for name, blob in zip(names, self.blobs):
                filler = p.bias_filler if name.startswith("b_") else p.weight_filler
                fillers.fill(blob.data, filler)
        elif len(self.blobs) != len(shapes):
            raise NetError(f"layer '{self.name}' ({self.type}): expected {len(shapes)} param "
                           f"blobs ({', '.join(names)}), got {len(self.blobs)}")
        for name, blob, shape in zip(names, self.blobs, shapes):
            if blob.shape != shape:
                raise self.shape_error(f"param {name} has shape {blob.shape}, but the "
                                       f"bottoms and num_output need {shape}")
        self._buffers = {}

    def param_shapes(self):
        """Shapes of W_x, b, [W_static], W_h, then of the subclass's extra params."""
        gates = self.gate_count * self.hidden
        shapes = [(gates, self.input_dim), (gates,)]
        if self.static_input:
            shapes.append((gates, self.static_dim))
        return shapes + [(gates, self.hidden)] + self.extra_param_shapes()

    def extra_param_shapes(self):
        return []

    def allow_backward(self, bottom_index):
        return bottom_index != 1    # no gradient for the sequence indicators

    # -- shapes ----------------------------------------------------------------------

    def _check_x(self, bottom):
        x, cont = bottom[0].shape, bottom[1].shape
        if len(x) < 3:
            raise self.shape_error(f"x must be (T, N, ...) with at least 3 axes, got {x}")
        if cont != x[:2]:
            raise self.shape_error(f"cont must be (T, N) = {x[:2]} to match x {x}, "
                                   f"got {cont}")

    def _check_static(self, bottom):
        shape = bottom[2].shape
        if len(shape) < 2 or shape[0] != bottom[0].shape[1]:
            raise self.shape_error(f"x_static must be (N, ...) with N = {bottom[0].shape[1]} "
                                   f"as in x {bottom[0].shape}, got {shape}")
        return _prod(shape[1:])

    def reshape(self, bottom, top):
        self._check_x(bottom)
        steps, num = bottom[0].shape[:2]
        if _prod(bottom[0].shape[2:]) != self.input_dim:
            raise self.shape_error(f"x {bottom[0].shape} has {_prod(bottom[0].shape[2:])} "
                                   f"inputs per step, but the weights take {self.input_dim}")
        if self.static_input and self._check_static(bottom) != self.static_dim:
            raise self.shape_error(f"x_static {bottom[2].shape} has a different size per "
                                   f"item than at setup ({self.static_dim})")
        state_shape = (1, num, self.hidden)
        first = 2 + self.static_input
        for name, b in zip(self.state_names, bottom[first:]):
            if b.shape != state_shape:
                raise self.shape_error(f"initial state {name}_0 must be {state_shape}, "
                                       f"got {b.shape}")
        top[0].reshape((steps, num, self.hidden))
        for t in top[1:]:
            t.reshape(state_shape)

    def _buffer(self, name, shape, xp):
        """A scratch array kept between calls, remade when its shape or device changes."""
        array = self._buffers.get(name)
        if array is None or array.shape != shape or array_module(array) is not xp:
            array = self._buffers[name] = xp.empty(shape, self.dtype)
        return array

    # -- forward ---------------------------------------------------------------------

    def _initial_states(self, bottom, xp, num):
        shape = (num, self.hidden)
        init = [self._buffer(name + "_0", shape, xp) for name in self.state_names]
        if self.expose_hidden:
            for state, b in zip(init, bottom[2 + self.static_input:]):
                state[...] = b.data.reshape(shape)
        else:
            for state, name in zip(init, self.state_names):
                carried = self._buffers.get(name + "_carried")
                if carried is not None and carried.shape == shape and array_module(carried) is xp:
                    state[...] = carried
                else:
                    state[...] = 0
        return init

    def _forward(self, bottom, top, gpu):
        x, cont = bottom[0].data, bottom[1].data
        xp = array_module(x)
        steps, num = x.shape[:2]
        width = self.gate_count * self.hidden
        w_x, b_x = self.blobs[0].data, self.blobs[1].data
        w_h = self.blobs[self.recurrent_index].data
        self.gates = self._buffer("gates", (steps, num, width), xp)
        self.conted = self._buffer("h_conted", (steps, num, self.hidden), xp)
        self.hiddens = self._buffer("hiddens", (steps, num, self.hidden), xp)
        recurrent = self._buffer("recurrent", (num, width), xp)
        self.sequence_buffers(xp, steps, num)

        xp.dot(x.reshape(steps * num, self.input_dim), w_x.T,
               out=self.gates.reshape(steps * num, width))
        self.gates += b_x
        if self.static_input:
            self.gates += xp.dot(bottom[2].data.reshape(num, self.static_dim),
                                 self.blobs[2].data.T)
        self.initial = self._initial_states(bottom, xp, num)
        state = self.initial
        for t in range(steps):
            xp.multiply(state[0], cont[t][:, None], out=self.conted[t])
            xp.dot(self.conted[t], w_h.T, out=recurrent)
            self.gates[t] += recurrent
            state = self.step_forward(t, cont[t], state, gpu)
        for k, (name, final) in enumerate(zip(self.state_names, state)):
            if self.expose_hidden:
                top[1 + k].data[...] = final.reshape(top[1 + k].shape)
            else:
                self._buffer(name + "_carried", final.shape, xp)[...] = final
        self.output_forward(top, xp)
        if self.debug_info:
            self._log("forward", [("gates", self.gates), ("h", self.hiddens),
                                  ("output", top[0].data)])

    def sequence_buffers(self, xp, steps, num):
        """Make the subclass's per-sequence scratch arrays."""

    # -- backward --------------------------------------------------------------------

    def _backward(self, top, propagate_down, bottom, gpu):
        x, cont = bottom[0].data, bottom[1].data
        xp = array_module(x)
        steps, num = x.shape[:2]
        width = self.gate_count * self.hidden
        shape = (num, self.hidden)
        w_h = self.blobs[self.recurrent_index].data
        from_output = self.output_backward(top, xp)
        dgates = self._buffer("gates_diff", (steps, num, width), xp)
        dh = self._buffer("h_diff", shape, xp)
        # Diffs w.r.t. the states entering step t, moving backward in time.
        dstates = [self._buffer(name + "_prev_diff", shape, xp) for name in self.state_names]
        for k, d in enumerate(dstates):
            d[...] = top[1 + k].diff.reshape(shape) if self.expose_hidden else 0
        for t in reversed(range(steps)):
            xp.add(from_output[t], dstates[0], out=dh)
            self.step_backward(t, cont[t], dh, dstates[1:], dgates[t], gpu)
            xp.dot(dgates[t], w_h, out=dstates[0])
            dstates[0] *= cont[t][:, None]

        flat = dgates.reshape(steps * num, width)
        x_flat = x.reshape(steps * num, self.input_dim)
        self.blobs[0].diff += xp.dot(flat.T, x_flat)
        self.blobs[1].diff += flat.sum(axis=0)
        self.blobs[self.recurrent_index].diff += xp.dot(
            flat.T, self.conted.reshape(steps * num, self.hidden))
        if propagate_down[0]:
            xp.dot(flat, self.blobs[0].data,
                   out=bottom[0].diff.reshape(steps * num, self.input_dim))
        if self.static_input:
            dstatic = dgates.sum(axis=0)
            self.blobs[2].diff += xp.dot(dstatic.T,
                                         bottom[2].data.reshape(num, self.static_dim))
            if propagate_down[2]:
                xp.dot(dstatic, self.blobs[2].data,
                       out=bottom[2].diff.reshape(num, self.static_dim))
        first = 2 + self.static_input
        for k, d in enumerate(dstates[:self.num_exposed]):
            if propagate_down[first + k]:
                bottom[first + k].diff[...] = d.reshape(bottom[first + k].shape)
        if self.debug_info:
            self._log("backward", [(name, b.diff) for name, b in zip(self.blob_names, self.blobs)])

    def _log(self, stage, named_arrays):
        for name, array in named_arrays:
            log.info("[%s] layer %s, %s: mean |.| %.6g", stage, self.name, name,
                     float(abs(array).mean()))

    # -- the subclass's cell and output ----------------------------------------------

    def step_forward(self, t, cont_t, state, gpu):
        """Turn self.gates[t] into the states after step t (h_t into self.hiddens[t])."""
        raise NotImplementedError

    def step_backward(self, t, cont_t, dh, dstates, dgates_t, gpu):
        """Write dgates_t from dh (diff of h_t); turn dstates (of the other states at t)
        into their diffs at t - 1, in place."""
        raise NotImplementedError

    def output_forward(self, top, xp):
        """top[0] from self.hiddens."""
        raise NotImplementedError

    def output_backward(self, top, xp):
        """The diff reaching each h_t from top[0], (T, N, H); param diffs accumulated."""
        raise NotImplementedError

    def forward_cpu(self, bottom, top):
        self._forward(bottom, top, gpu=False)

    def backward_cpu(self, top, propagate_down, bottom):
        self._backward(top, propagate_down, bottom, gpu=False)

    def forward_gpu(self, bottom, top):
        self._forward(bottom, top, gpu=True)

    def backward_gpu(self, top, propagate_down, bottom):
        self._backward(top, propagate_down, bottom, gpu=True)
