"""RNN: Caffe's RNN layer, a RecurrentLayer with a tanh cell and a tanh output layer.

Params, in Caffe's order and shapes (O = H = num_output): W_xh (H, D), b_h (H,),
W_xh_static (H, D_static) only with a static input, W_hh (H, H), W_ho (H, H), b_o (H,).
Per step

    h_t = tanh(W_xh x_t + b_h + W_xh_static x_static + W_hh (cont_t * h_{t-1}))
    o_t = tanh(W_ho h_t + b_o)

The top is o (T, N, H); expose_hidden adds the bottom h_0 and the top h_T.
"""
from .backend import array_module
from .recurrent import RecurrentLayer


class RNN(RecurrentLayer):
    """A simple (Elman) recurrent net over a (T, N, ...) sequence; the top is o (T, N, H)."""

    type = "RNN"
    state_names = ("h",)
    gate_count = 1
    param_names = ("W_xh", "b_h", "W_xh_static", "W_hh", "W_ho", "b_o")

    def extra_param_shapes(self):
        return [(self.hidden, self.hidden), (self.hidden,)]

    def _output_params(self):
        first = self.recurrent_index + 1
        return self.blobs[first], self.blobs[first + 1]

    def step_forward(self, t, cont_t, state, gpu):
        tanh = array_module(self.gates).tanh
        tanh(self.gates[t], out=self.hiddens[t])
        return (self.hiddens[t],)

    def step_backward(self, t, cont_t, dh, dstates, dgates_t, gpu):
        h = self.hiddens[t]
        dgates_t[...] = dh * (1 - h * h)

    def output_forward(self, top, xp):
        w_ho, b_o = self._output_params()
        rows = self.hiddens.shape[0] * self.hiddens.shape[1]
        o = top[0].data.reshape(rows, self.hidden)
        xp.dot(self.hiddens.reshape(rows, self.hidden), w_ho.data.T, out=o)
        o += b_o.data
        xp.tanh(o, out=o)

    def output_backward(self, top, xp):
        w_ho, b_o = self._output_params()
        steps, num = self.hiddens.shape[:2]
        rows = steps * num
        o = top[0].data.reshape(rows, self.hidden)
        dpre = self._buffer("output_input_diff", (rows, self.hidden), xp)
        xp.multiply(top[0].diff.reshape(rows, self.hidden), 1 - o * o, out=dpre)
        w_ho.diff += xp.dot(dpre.T, self.hiddens.reshape(rows, self.hidden))
        b_o.diff += dpre.sum(axis=0)
        from_output = self._buffer("h_from_output_diff", (steps, num, self.hidden), xp)
        xp.dot(dpre, w_ho.data, out=from_output.reshape(rows, self.hidden))
        return from_output
