"""LSTM: Caffe's LSTM layer, a RecurrentLayer whose cell is Caffe's LSTMUnit.

Params, in Caffe's order and shapes: W_xc (4H, D), b_c (4H,), W_xc_static (4H, D_static)
only with a static input, W_hc (4H, H); the 4H gate rows are ordered i, f, o, g. Per step

    [i', f', o', g'] = W_xc x_t + b_c + W_xc_static x_static + W_hc (cont_t * h_{t-1})
    c_t = cont_t * sigmoid(f') * c_{t-1} + sigmoid(i') * tanh(g')
    h_t = sigmoid(o') * tanh(c_t)

The top is h (T, N, H); expose_hidden adds bottoms h_0, c_0 and tops h_T, c_T.
"""
from .lstm_unit import unit_backward, unit_backward_array, unit_forward, unit_forward_array
from .recurrent import RecurrentLayer


class LSTM(RecurrentLayer):
    """Long short-term memory over a (T, N, ...) sequence; the top is h (T, N, H)."""

    type = "LSTM"
    state_names = ("h", "c")
    gate_count = 4
    param_names = ("W_xc", "b_c", "W_xc_static", "W_hc")

    def sequence_buffers(self, xp, steps, num):
        self.cells = self._buffer("cells", (steps, num, self.hidden), xp)

    def step_forward(self, t, cont_t, state, gpu):
        kernel = unit_forward_array if gpu else unit_forward
        # The gate inputs are overwritten with the activations backward needs.
        kernel(state[1], self.gates[t], cont_t, self.gates[t], self.cells[t], self.hiddens[t])
        return self.hiddens[t], self.cells[t]

    def step_backward(self, t, cont_t, dh, dstates, dgates_t, gpu):
        kernel = unit_backward_array if gpu else unit_backward
        c_prev = self.cells[t - 1] if t > 0 else self.initial[1]
        dc = dstates[0]
        kernel(c_prev, self.gates[t], cont_t, self.cells[t], dc, dh, dc, dgates_t)

    def output_forward(self, top, xp):
        top[0].data[...] = self.hiddens

    def output_backward(self, top, xp):
        return top[0].diff
