"""RecurrentLayer, the machinery LSTM and RNN share (layers/recurrent.pyx).

The time loop, `cont` resets, the static input, exposed initial/final states and
the state carried between forwards belong to the base class; each test runs it
through both subclasses against their step-by-step references.
"""
import numpy as np
import pytest

from helpers import recurrent
from helpers.gradcheck import check_gradient
from helpers.recurrent import N, STATES, T, lstm_reference, params_of, rnn_reference

KINDS = {"LSTM": ((2, 3), lstm_reference), "RNN": ((5,), rnn_reference)}


def make(kind, **kwargs):
    return recurrent.recurrent_layer(kind, **kwargs)


def sequence(kind, **kwargs):
    return recurrent.sequence(KINDS[kind][0], STATES[kind], **kwargs)


def run(kind, layer, arrays):
    return recurrent.run(layer, arrays, STATES[kind])


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_with_static_input_and_exposed_states_matches_the_reference(kind, dtype):
    layer = make(kind, dtype=dtype, expose=True)
    arrays = sequence(kind, static=True, expose=True, first_cont=1.0)
    _, top = run(kind, layer, arrays)
    want = KINDS[kind][1](*arrays[:2], params_of(layer), *arrays[2:])
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert len(top) == len(want) == 1 + STATES[kind]
    for got, expected in zip(top, want):
        np.testing.assert_allclose(got.data, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_gradient_on_every_bottom_and_param(kind):
    layer = make(kind, expose=True)
    bottom, top = run(kind, layer, sequence(kind, steps=3, static=True, expose=True,
                                            first_cont=1.0))
    # x, x_static and the initial states take gradients; cont (bottom 1) does not.
    takes = [i for i in range(len(bottom)) if i != 1]
    assert all(layer.allow_backward(i) for i in takes) and not layer.allow_backward(1)
    check_gradient(layer, bottom, top, check_bottom=takes)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_cont_zero_restarts_only_its_stream(kind):
    layer = make(kind)
    arrays = sequence(kind, steps=2 * T)
    _, top = run(kind, layer, arrays)
    reset = T                               # cont[T, 1] == 0 (the mid-sequence reset)
    x, cont = arrays
    fresh = KINDS[kind][1](x[reset:], cont[reset:], params_of(layer))[0]
    np.testing.assert_allclose(top[0].data[reset:, 1], fresh[:, 1], rtol=1e-12)
    assert not np.allclose(top[0].data[reset:, 0], fresh[:, 0])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_state_carries_over_between_forwards(kind):
    layer = make(kind)
    x, cont = sequence(kind, steps=2 * T)
    bottom, top = run(kind, layer, [x[:T], cont[:T]])
    bottom[0].data[...] = x[T:]
    bottom[1].data[...] = 1.0
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    whole = np.concatenate([cont[:T], np.ones((T, N))])
    want = KINDS[kind][1](x, whole, params_of(layer))[0][T:]
    np.testing.assert_allclose(top[0].data, want, rtol=1e-12)
