"""The recurrent layers, LSTM and RNN, unrolled over their T steps with Caffe's cells, and
LSTMUnit, the LSTM's cell on its own.

ONNX's own LSTM and RNN ops cannot restart a sequence inside the batch, which Caffe's
`cont` input does at every step (cont_t = 0 wipes the state before step t), so each step is
written out: the input projections of all steps in one MatMul, then per step

    LSTM: [i, f, o, g] = that + W_hc (cont_t * h_{t-1});  c_t = cont_t * f * c_{t-1} + i * g;
          h_t = o * tanh(c_t)   (i, f, o sigmoids, g a tanh: Caffe's LSTMUnit)
    RNN:  h_t = tanh(that + W_hh (cont_t * h_{t-1}));  o_t = tanh(W_ho h_t + b_o)

The state starts at zero, or at the bottoms h_0 (c_0) with expose_hidden. Caffe, without
expose_hidden, carries h_T (c_T) of one forward call into the next; a graph has no such
memory: it gives the first call's outputs, and every call's where cont_0 is 0.
"""
import numpy as np

from .graph import maps

NAMES = {"LSTM": ("W_xc", "b_c", "W_xc_static", "W_hc"),
         "RNN": ("W_xh", "b_h", "W_xh_static", "W_hh")}


def lstm_cell(g, gates, cont, c_prev, hidden, axis, prefix, outputs=(None, None)):
    """Caffe's LSTMUnit on gate inputs [i', f', o', g'] along axis: (c, h), written to
    outputs; c_prev None is a zero state."""
    names = [g.temp(f"{prefix}{gate}") for gate in "ifog"]
    g.node_multi("Split", [gates, g.ints(f"{prefix}split", [hidden] * 4)], names, axis=axis)
    i, f, o = (g.node("Sigmoid", [n], what=f"{prefix}{gate}_act")
               for n, gate in zip(names, "ifo"))
    new = g.node("Mul", [i, g.node("Tanh", [names[3]], what=f"{prefix}g_act")],
                 what=f"{prefix}c_new", output=None if c_prev is not None else outputs[0])
    c = new
    if c_prev is not None:
        kept = g.node("Mul", [g.node("Mul", [cont, f], what=f"{prefix}forget"), c_prev],
                      what=f"{prefix}c_kept")
        c = g.node("Add", [kept, new], outputs[0], f"{prefix}c")
    h = g.node("Mul", [o, g.node("Tanh", [c], what=f"{prefix}c_tanh")], outputs[1],
               f"{prefix}h")
    return c, h


@maps("LSTMUnit")
def lstm_unit(g, layer, bottoms, tops):
    cont = g.node("Reshape", [bottoms[2], g.ints("cont_shape", [0, 0, 1])], what="cont")
    lstm_cell(g, bottoms[1], cont, bottoms[0], g.bottom_shapes[0][2], 2, "", tops)


@maps("LSTM", "RNN")
def recurrent(g, layer, bottoms, tops):
    lstm = layer.type == "LSTM"
    params = dict(zip(layer.blob_names, (b.data for b in layer.blobs)))
    w_x, b_x, w_static, w_h = NAMES[layer.type]
    hidden, steps = layer.hidden, g.bottom_shapes[0][0]
    x = g.node("Reshape", [bottoms[0], g.ints("x_shape", [0, 0, -1])], what="x")
    inputs = g.node("MatMul", [x, g.weight(w_x, params[w_x].T)], what="x_projected")
    inputs = g.node("Add", [inputs, g.weight(b_x, params[b_x])], what="inputs")
    if layer.static_input:
        static = g.node("Flatten", [bottoms[2]], what="static", axis=1)
        static = g.node("MatMul", [static, g.weight(w_static, params[w_static].T)],
                        what="static_projected")
        inputs = g.node("Add", [inputs, static], what="inputs_static")
    cont = g.node("Reshape", [bottoms[1], g.ints("cont_shape", [0, 0, 1])], what="cont")
    recurrent_weight = g.weight(w_h, params[w_h].T)
    state_shape = g.ints("state_shape", [-1, hidden])
    first = 2 + layer.static_input
    states = [g.node("Reshape", [b, state_shape], what=f"{name}_0")
              for name, b in zip(layer.state_names, bottoms[first:])] or [None, None]
    h, c = (states + [None])[:2]
    hiddens = []
    for t in range(steps):
        step = g.weight(f"t{t}", np.array(t, np.int64), np.int64)
        gates = g.node("Gather", [inputs, step], what=f"t{t}_inputs", axis=0)
        cont_t = g.node("Gather", [cont, step], what=f"t{t}_cont", axis=0)
        if h is not None:
            kept = g.node("Mul", [cont_t, h], what=f"t{t}_h_conted")
            carried = g.node("MatMul", [kept, recurrent_weight], what=f"t{t}_recurrent")
            gates = g.node("Add", [gates, carried], what=f"t{t}_gates")
        if not lstm:
            h = g.node("Tanh", [gates], what=f"t{t}_h")
            hiddens.append(h)
            continue
        c, h = lstm_cell(g, gates, cont_t, c, hidden, 1, f"t{t}_")
        hiddens.append(h)
    row = g.ints("row_shape", [1, -1, hidden])
    rows = [g.node("Reshape", [h_t, row], what=f"t{t}_row") for t, h_t in enumerate(hiddens)]
    if lstm:
        g.node("Concat", rows, tops[0], axis=0)
    else:
        sequence = g.node("Concat", rows, what="hiddens", axis=0)
        out = g.node("MatMul", [sequence, g.weight("W_ho", params["W_ho"].T)], what="out")
        out = g.node("Add", [out, g.weight("b_o", params["b_o"])], what="out_biased")
        g.node("Tanh", [out], tops[0])
    for top, state in zip(tops[1:], [h, c]):
        g.node("Reshape", [state, row], top)
