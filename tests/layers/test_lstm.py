import numpy as np
import pytest
from google.protobuf import text_format

import cyffe
from cyffe.layers.blob import Blob
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError
from helpers import recurrent
from helpers.gradcheck import check_gradient, setup_layer
from helpers.recurrent import D_STATIC, H, N, T, params_of
from helpers.recurrent import lstm_reference as reference

X_SHAPE = (T, N, 2, 2)          # D = 4: the axes from 2 on are flattened, as Caffe's IP
D = 4


def lstm(dtype=np.float64, expose=False, blobs=(), num_output=H):
    return recurrent.recurrent_layer("LSTM", dtype, expose, blobs, num_output)


def sequence(**kwargs):
    """Bottoms x, cont (a reset mid-sequence in stream 1), [x_static], [h_0, c_0]."""
    return recurrent.sequence(X_SHAPE[2:], 2, **kwargs)


def run(layer, arrays):
    return recurrent.run(layer, arrays, 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("static", [False, True])
def test_forward_matches_reference(dtype, static):
    layer = lstm(dtype)
    arrays = sequence(static=static)
    _, top = run(layer, arrays)
    want, _, _ = reference(*arrays[:2], params_of(layer), *arrays[2:])
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(top[0].data, want, rtol=tol, atol=tol)
    assert top[0].shape == (T, N, H) and top[0].data.dtype == dtype


def test_param_blobs_are_caffes():
    assert [b.shape for b in lstm_with(static=False).blobs] == [(4 * H, D), (4 * H,), (4 * H, H)]
    assert [b.shape for b in lstm_with(static=True).blobs] == [
        (4 * H, D), (4 * H,), (4 * H, D_STATIC), (4 * H, H)]


def lstm_with(static, **kwargs):
    layer = lstm(**kwargs)
    run(layer, sequence(static=static, expose=kwargs.get("expose", False)))
    return layer


def test_given_weights_are_used_in_caffes_gate_order():
    r = np.random.default_rng(3)
    params = [r.standard_normal((4 * H, D)), r.standard_normal(4 * H),
              r.standard_normal((4 * H, H))]
    layer = lstm(blobs=params)
    arrays = sequence()
    _, top = run(layer, arrays)
    np.testing.assert_allclose(top[0].data, reference(*arrays, params)[0], rtol=1e-12)


def test_wrong_given_weights_are_errors():
    with pytest.raises(NetError, match="layer 'lstm' \\(LSTM\\): expected 3 param blobs"):
        run(lstm(blobs=[np.zeros((4 * H, D))]), sequence())
    with pytest.raises(ShapeError, match="layer 'lstm' \\(LSTM\\).*W_hc has shape"):
        run(lstm(blobs=[np.zeros((4 * H, D)), np.zeros(4 * H), np.zeros((4 * H, H + 1))]),
            sequence())


def test_a_zero_in_cont_restarts_the_sequence():
    layer = lstm()
    x, cont = sequence(steps=6)
    cont[:] = 1
    cont[0] = cont[3] = 0
    _, top = run(layer, [x, cont])
    whole = top[0].data.copy()
    _, top = run(layer, [x[3:], cont[3:]])
    np.testing.assert_allclose(whole[3:], top[0].data, rtol=1e-12)


def test_state_carries_over_between_forwards_as_in_caffe():
    layer = lstm()
    x, cont = sequence(steps=2 * T)
    bottom, top = run(layer, [x[:T], cont[:T]])
    second_cont = np.ones((T, N))
    bottom[0].data[...] = x[T:]
    bottom[1].data[...] = second_cont
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    whole_cont = np.concatenate([cont[:T], second_cont])
    want = reference(x, whole_cont, params_of(layer))[0][T:]
    np.testing.assert_allclose(top[0].data, want, rtol=1e-12)


def test_expose_hidden_round_trip_equals_the_concatenated_sequence():
    layer = lstm(expose=True)
    x, cont, h0, c0 = sequence(steps=2 * T, expose=True, first_cont=1.0)
    _, first = run(layer, [x[:T], cont[:T], h0, c0])
    h_t, c_t = first[1].data.copy(), first[2].data.copy()
    _, second = run(layer, [x[T:], cont[T:], h_t, c_t])
    want, want_h, want_c = reference(x, cont, params_of(layer), h0=h0, c0=c0)
    np.testing.assert_allclose(np.concatenate([first[0].data, second[0].data]), want,
                               rtol=1e-12)
    np.testing.assert_allclose(second[1].data, want_h, rtol=1e-12)
    np.testing.assert_allclose(second[2].data, want_c, rtol=1e-12)


def test_gradient():
    layer = lstm()
    bottom, top = run(layer, sequence(steps=3))
    check_gradient(layer, bottom, top, check_bottom=[0])


def test_gradient_with_static_input_and_exposed_states():
    layer = lstm(expose=True)
    bottom, top = run(layer, sequence(steps=3, static=True, expose=True, first_cont=1.0))
    assert len(layer.blobs) == 4 and len(top) == 3
    check_gradient(layer, bottom, top, check_bottom=[0, 2, 3, 4])


def test_no_gradient_to_cont_and_param_diffs_accumulate():
    layer = lstm()
    assert not layer.allow_backward(1) and layer.allow_backward(0)
    bottom, top = run(layer, sequence())
    top[0].diff[...] = 1
    bottom[0].diff[...] = 5
    layer.backward(top, [False, False], bottom)
    np.testing.assert_array_equal(bottom[0].diff, 5)
    once = [b.diff.copy() for b in layer.blobs]
    layer.backward(top, [False, False], bottom)
    for b, d in zip(layer.blobs, once):
        np.testing.assert_allclose(b.diff, 2 * d, rtol=1e-12)


def test_gpu_path_on_numpy_equals_cpu_path():
    arrays = sequence(static=True, expose=True, first_cont=1.0)
    results = []
    for gpu in (False, True):
        from cyffe.layers.backend import set_random_seed
        set_random_seed(7)
        layer = lstm(expose=True)
        bottom, top = run(layer, arrays)
        (layer.forward_gpu if gpu else layer.forward_cpu)(bottom, top)
        r = np.random.default_rng(2)
        for t in top:
            t.diff[...] = r.standard_normal(t.shape)
        (layer.backward_gpu if gpu else layer.backward_cpu)(top, [True, False, True, True, True],
                                                            bottom)
        results.append([t.data.copy() for t in top] + [bottom[i].diff.copy() for i in (0, 2, 3, 4)]
                       + [b.diff.copy() for b in layer.blobs])
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)


def test_batch_size_may_change():
    layer = lstm()
    run(layer, sequence())
    x, cont = sequence()
    bottom = [Blob((T, 1) + X_SHAPE[2:], np.float64), Blob((T, 1), np.float64)]
    bottom[0].data[...] = x[:, :1]
    bottom[1].data[...] = cont[:, :1]
    top = [Blob((), np.float64)]
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, reference(x[:, :1], cont[:, :1],
                                                      params_of(layer))[0], rtol=1e-12)


@pytest.mark.parametrize("shapes, message", [
    ([(T, N, D), (T, N + 1)], "cont must be \\(T, N\\)"),
    ([(T, N, D), (T + 1, N)], "cont must be \\(T, N\\)"),
    ([(T, N), (T, N)], "at least 3 axes"),
    ([(T, N, D), (T, N), (N + 1, D_STATIC)], "x_static must be \\(N, ...\\)"),
])
def test_shape_errors_name_the_layer(shapes, message):
    bottom = [Blob(s, np.float64) for s in shapes]
    with pytest.raises(ShapeError, match=f"layer 'lstm' \\(LSTM\\).*{message}"):
        setup_layer(lstm(), bottom)


def test_exposed_state_of_the_wrong_shape_is_an_error():
    bottom = [Blob(s, np.float64) for s in [(T, N, D), (T, N), (1, N, H), (1, N, H + 1)]]
    with pytest.raises(ShapeError, match="layer 'lstm' \\(LSTM\\).*c_0 must be \\(1, 3, 2\\)"):
        setup_layer(lstm(expose=True), bottom, num_top=3)


def test_blob_counts_follow_expose_hidden():
    bottom = [Blob(s, np.float64) for s in [(T, N, D), (T, N)]]
    with pytest.raises(NetError, match="layer 'lstm' \\(LSTM\\) takes 4 to 5 bottom"):
        setup_layer(lstm(expose=True), bottom, num_top=3)
    with pytest.raises(NetError, match="layer 'lstm' \\(LSTM\\) takes 1 top"):
        setup_layer(lstm(), bottom, num_top=3)


def test_num_output_must_be_positive():
    with pytest.raises(NetError, match="layer 'lstm' \\(LSTM\\).*num_output must be positive"):
        run(lstm(num_output=0), sequence())


ECHO_NET = """
name: "echo"
layer { name: "input" type: "Input" top: "x" top: "cont" top: "target"
        input_param { shape { dim: 8 dim: 16 dim: 1 } shape { dim: 8 dim: 16 }
                      shape { dim: 8 dim: 16 dim: 1 } } }
layer { name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h"
        recurrent_param { num_output: 8 weight_filler { type: "uniform" min: -0.3 max: 0.3 }
                          bias_filler { type: "constant" value: 0 } } }
layer { name: "out" type: "InnerProduct" bottom: "h" top: "y"
        inner_product_param { num_output: 1 axis: 2 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "target" top: "loss" }
"""


def echo_batch(r, delay=2, steps=8, streams=16):
    """Random +-1 inputs; the target at t is the input at t - delay (0 before)."""
    x = r.choice([-1.0, 1.0], size=(steps, streams, 1))
    target = np.zeros_like(x)
    target[delay:] = x[:-delay]
    cont = np.ones((steps, streams))
    cont[0] = 0
    return x, cont, target


def test_sgd_trains_an_lstm_to_echo_its_input():
    solver_param = pb.SolverParameter(base_lr=0.02, lr_policy="fixed", momentum=0.9,
                                      max_iter=400, random_seed=1)
    text_format.Parse(ECHO_NET, solver_param.net_param)
    solver = cyffe.get_solver(solver_param, log=lambda line: None)
    net = solver.net
    r = np.random.default_rng(0)
    held_out = echo_batch(r)

    def held_out_loss():
        x, cont, target = held_out
        return net.forward(x=x, cont=cont, target=target)["loss"].item()

    before = held_out_loss()
    for _ in range(300):
        x, cont, target = echo_batch(r)
        net.blobs["x"].data[...] = x
        net.blobs["cont"].data[...] = cont
        net.blobs["target"].data[...] = target
        solver.step(1)
    after = held_out_loss()
    assert after < before / 20, (before, after)
