import numpy as np
import pytest

from cyffe.layers.backend import set_random_seed
from cyffe.layers.blob import Blob
from cyffe.proto.errors import NetError, ShapeError
from helpers import recurrent
from helpers.gradcheck import check_gradient, setup_layer
from helpers.recurrent import D_STATIC, H, N, T, params_of
from helpers.recurrent import rnn_reference as reference

D = 5


def rnn(dtype=np.float64, expose=False, blobs=(), num_output=H):
    return recurrent.recurrent_layer("RNN", dtype, expose, blobs, num_output)


def sequence(**kwargs):
    """Bottoms x, cont (a reset mid-sequence in stream 1), [x_static], [h_0]."""
    return recurrent.sequence((D,), 1, **kwargs)


def run(layer, arrays):
    return recurrent.run(layer, arrays, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("static", [False, True])
def test_forward_matches_reference(dtype, static):
    layer = rnn(dtype)
    arrays = sequence(static=static)
    _, top = run(layer, arrays)
    want, _ = reference(*arrays[:2], params_of(layer), *arrays[2:])
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(top[0].data, want, rtol=tol, atol=tol)
    assert top[0].shape == (T, N, H) and top[0].data.dtype == dtype


@pytest.mark.parametrize("static, shapes", [
    (False, [(H, D), (H,), (H, H), (H, H), (H,)]),
    (True, [(H, D), (H,), (H, D_STATIC), (H, H), (H, H), (H,)]),
])
def test_param_blobs_are_caffes(static, shapes):
    layer = rnn()
    run(layer, sequence(static=static))
    assert [b.shape for b in layer.blobs] == shapes


def test_given_weights_are_used():
    r = np.random.default_rng(3)
    params = [r.standard_normal(s) for s in [(H, D), (H,), (H, H), (H, H), (H,)]]
    arrays = sequence()
    _, top = run(rnn(blobs=params), arrays)
    np.testing.assert_allclose(top[0].data, reference(*arrays, params)[0], rtol=1e-12)


def test_wrong_given_weights_are_errors():
    with pytest.raises(NetError, match="layer 'rnn' \\(RNN\\): expected 5 param blobs "
                                       "\\(W_xh, b_h, W_hh, W_ho, b_o\\)"):
        run(rnn(blobs=[np.zeros((H, D))]), sequence())


def test_a_zero_in_cont_restarts_the_sequence():
    layer = rnn()
    x, cont = sequence(steps=6)
    cont[:] = 1
    cont[0] = cont[3] = 0
    _, top = run(layer, [x, cont])
    whole = top[0].data.copy()
    _, top = run(layer, [x[3:], cont[3:]])
    np.testing.assert_allclose(whole[3:], top[0].data, rtol=1e-12)


def test_state_carries_over_between_forwards_as_in_caffe():
    layer = rnn()
    x, cont = sequence(steps=2 * T)
    bottom, top = run(layer, [x[:T], cont[:T]])
    second_cont = np.ones((T, N))
    bottom[0].data[...] = x[T:]
    bottom[1].data[...] = second_cont
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    want = reference(x, np.concatenate([cont[:T], second_cont]), params_of(layer))[0][T:]
    np.testing.assert_allclose(top[0].data, want, rtol=1e-12)


def test_expose_hidden_round_trip_equals_the_concatenated_sequence():
    layer = rnn(expose=True)
    x, cont, h0 = sequence(steps=2 * T, expose=True, first_cont=1.0)
    _, first = run(layer, [x[:T], cont[:T], h0])
    _, second = run(layer, [x[T:], cont[T:], first[1].data.copy()])
    want, want_h = reference(x, cont, params_of(layer), h0=h0)
    np.testing.assert_allclose(np.concatenate([first[0].data, second[0].data]), want,
                               rtol=1e-12)
    np.testing.assert_allclose(second[1].data, want_h, rtol=1e-12)


def test_gradient():
    layer = rnn()
    bottom, top = run(layer, sequence(steps=3))
    check_gradient(layer, bottom, top, check_bottom=[0])


def test_gradient_with_static_input_and_exposed_state():
    layer = rnn(expose=True)
    bottom, top = run(layer, sequence(steps=3, static=True, expose=True, first_cont=1.0))
    assert len(layer.blobs) == 6 and len(top) == 2
    check_gradient(layer, bottom, top, check_bottom=[0, 2, 3])


def test_no_gradient_to_cont():
    layer = rnn()
    assert not layer.allow_backward(1) and layer.allow_backward(0)


def test_gpu_path_on_numpy_equals_cpu_path():
    arrays = sequence(static=True, expose=True, first_cont=1.0)
    results = []
    for gpu in (False, True):
        set_random_seed(7)
        layer = rnn(expose=True)
        bottom, top = run(layer, arrays)
        (layer.forward_gpu if gpu else layer.forward_cpu)(bottom, top)
        r = np.random.default_rng(2)
        for t in top:
            t.diff[...] = r.standard_normal(t.shape)
        (layer.backward_gpu if gpu else layer.backward_cpu)(top, [True, False, True, True],
                                                            bottom)
        results.append([t.data.copy() for t in top] + [bottom[i].diff.copy() for i in (0, 2, 3)]
                       + [b.diff.copy() for b in layer.blobs])
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shapes, message", [
    ([(T, N, D), (T, N + 1)], "cont must be \\(T, N\\)"),
    ([(T, N, D), (T - 1, N)], "cont must be \\(T, N\\)"),
    ([(T, N), (T, N)], "at least 3 axes"),
    ([(T, N, D), (T, N), (N - 1, D_STATIC)], "x_static must be \\(N, ...\\)"),
])
def test_shape_errors_name_the_layer(shapes, message):
    bottom = [Blob(s, np.float64) for s in shapes]
    with pytest.raises(ShapeError, match=f"layer 'rnn' \\(RNN\\).*{message}"):
        setup_layer(rnn(), bottom)


def test_input_size_change_after_setup_is_an_error():
    layer = rnn()
    bottom, top = run(layer, sequence())
    bottom[0].reshape((T, N, D + 1))
    with pytest.raises(ShapeError, match="layer 'rnn' \\(RNN\\).*6 inputs per step"):
        layer.reshape(bottom, top)


def test_exposed_state_of_the_wrong_shape_is_an_error():
    bottom = [Blob(s, np.float64) for s in [(T, N, D), (T, N), (N, H)]]
    with pytest.raises(ShapeError, match="layer 'rnn' \\(RNN\\).*h_0 must be \\(1, 3, 2\\)"):
        setup_layer(rnn(expose=True), bottom, num_top=2)


def test_debug_info_logs_the_unrolled_values(caplog):
    layer = rnn()
    layer.param.recurrent_param.debug_info = True
    with caplog.at_level("INFO", logger="cyffe.layers.recurrent"):
        bottom, top = run(layer, sequence())
        top[0].diff[...] = 1
        layer.backward(top, [True, False], bottom)
    text = caplog.text
    assert "[forward] layer rnn, h: mean |.|" in text
    assert "[backward] layer rnn, W_hh: mean |.|" in text
