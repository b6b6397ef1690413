import numpy as np
import pytest

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, run_layer, setup_layer
from helpers.neuron import check_gpu_matches_cpu, check_in_place, make_layer

# (power, scale, shift): the general case, Caffe's special cases (power 1, power 2,
# power 0, scale 0), and a fractional power that needs a positive base.
SETTINGS = [(3.0, 0.5, 0.2), (2.0, 0.5, 1.0), (1.0, 2.0, 0.5), (0.5, 1.0, 0.0),
            (-1.5, 2.0, 3.0), (0.0, 2.0, 1.0), (2.0, 0.0, 3.0)]


def power(power=1.0, scale=1.0, shift=0.0, dtype=np.float64):
    return make_layer("Power", dtype, "power_param", power=power, scale=scale, shift=shift)


def positive_base(shape, scale, shift, seed=0):
    """Inputs whose base shift + scale * x lies in [0.2, 2.2]."""
    base = np.random.default_rng(seed).uniform(0.2, 2.2, shape)
    return (base - shift) / scale if scale else base


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p, scale, shift", SETTINGS)
def test_forward_matches_numpy(dtype, p, scale, shift):
    x = positive_base((2, 3, 4), scale, shift).astype(dtype)
    _, top = run_layer(power(p, scale, shift, dtype), x)
    np.testing.assert_allclose(top[0].data, (shift + scale * x.astype(np.float64)) ** p,
                               rtol=1e-5)


def test_integer_power_of_negative_base():
    x = np.array([-2.0, -0.5, 0.0, 1.5])
    _, top = run_layer(power(3.0), x)
    np.testing.assert_allclose(top[0].data, x ** 3)


@pytest.mark.parametrize("p, scale, shift", SETTINGS)
def test_gradient(p, scale, shift):
    layer = power(p, scale, shift)
    bottom = make_blobs(positive_base((2, 3, 2), scale, shift))
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top)


def test_gradient_where_the_base_is_zero():
    # Caffe's y / base rule gives 0/0 here; the derivative of base^3 is 0.
    layer = power(3.0, 2.0, -1.0)
    bottom, top = run_layer(layer, np.array([0.5, 1.0]))
    top[0].diff[...] = 1.0
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, [0.0, 6.0])


@pytest.mark.parametrize("gpu", [False, True])
@pytest.mark.parametrize("p, scale, shift", SETTINGS)
def test_in_place_equals_separate_top(p, scale, shift, gpu):
    check_in_place(lambda: power(p, scale, shift), positive_base((3, 5), scale, shift),
                   gpu=gpu)


@pytest.mark.parametrize("p, scale, shift", SETTINGS)
def test_gpu_path_on_numpy_equals_cpu_path(p, scale, shift):
    check_gpu_matches_cpu(lambda: power(p, scale, shift), positive_base((4, 6), scale, shift))


@pytest.mark.parametrize("case", ["power_p2_s0.5_sh1", "power_p0.5", "power_p1_s2_sh0.5"])
def test_caffe_golden(case):
    run_case(case)


def test_constant_output_follows_c_pow():
    # scale 0: the output is shift ^ power everywhere, NaN for a negative shift and a
    # fractional power, as C's pow (and so Caffe) gives.
    _, top = run_layer(power(0.5, 0.0, -4.0), np.ones(3))
    assert np.all(np.isnan(top[0].data))
    _, top = run_layer(power(0.0, 1.0, -4.0), np.ones(3))
    np.testing.assert_array_equal(top[0].data, 1.0)
