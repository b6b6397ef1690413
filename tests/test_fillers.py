"""Fillers: each type's distribution and Caffe's fan rules, repeatable from a seed."""
import numpy as np
import pytest

import cyffe
from cyffe.layers.fillers import fill
from cyffe.proto import cyffe_pb2 as pb

SHAPE = (64, 32, 3, 3)            # fan_in = 32*9 = 288, fan_out = 64*9 = 576


def filled(shape=SHAPE, seed=0, **fields):
    cyffe.set_random_seed(seed)
    return fill(np.zeros(shape), pb.FillerParameter(**fields))


def test_constant_and_default():
    assert np.all(filled(type="constant", value=0.25) == 0.25)
    assert np.all(filled() == 0)          # Caffe's default filler: constant 0


def test_uniform_bounds_and_mean():
    x = filled(type="uniform", min=-2, max=3)
    assert x.min() >= -2 and x.max() <= 3
    assert x.mean() == pytest.approx(0.5, abs=0.05)


def test_gaussian_mean_and_std():
    x = filled(type="gaussian", mean=1.0, std=0.1)
    assert x.mean() == pytest.approx(1.0, abs=0.01)
    assert x.std() == pytest.approx(0.1, rel=0.03)


def test_gaussian_sparse_keeps_about_sparse_per_output():
    x = filled(shape=(50, 200), type="gaussian", std=1, sparse=10)
    # each weight survives with probability sparse / num_outputs = 10 / 50
    assert np.mean(x != 0) == pytest.approx(0.2, abs=0.02)


@pytest.mark.parametrize("norm, n", [("FAN_IN", 288), ("FAN_OUT", 576), ("AVERAGE", 432)])
def test_xavier_scale_follows_variance_norm(norm, n):
    x = filled(type="xavier", variance_norm=pb.FillerParameter.VarianceNorm.Value(norm))
    bound = np.sqrt(3.0 / n)
    assert np.abs(x).max() <= bound
    assert x.std() == pytest.approx(bound / np.sqrt(3), rel=0.03)


@pytest.mark.parametrize("norm, n", [("FAN_IN", 288), ("FAN_OUT", 576), ("AVERAGE", 432)])
def test_msra_std_follows_variance_norm(norm, n):
    x = filled(type="msra", variance_norm=pb.FillerParameter.VarianceNorm.Value(norm))
    assert x.mean() == pytest.approx(0, abs=0.01)
    assert x.std() == pytest.approx(np.sqrt(2.0 / n), rel=0.03)


def test_positive_unitball_rows_sum_to_one():
    x = filled(shape=(5, 4, 3), type="positive_unitball")
    assert np.all(x >= 0)
    np.testing.assert_allclose(x.reshape(5, -1).sum(axis=1), 1.0)


def test_bilinear_upsampling_kernel():
    x = filled(shape=(2, 1, 4, 4), type="bilinear")
    # factor 2: f = 2, c = 0.75; 1-D profile [0.25, 0.75, 0.75, 0.25]
    ramp = np.array([0.25, 0.75, 0.75, 0.25])
    np.testing.assert_allclose(x[0, 0], np.outer(ramp, ramp))
    np.testing.assert_allclose(x[1, 0], x[0, 0])


def test_same_seed_same_values_other_seed_other_values():
    a = filled(type="gaussian", seed=7)
    b = filled(type="gaussian", seed=7)
    c = filled(type="gaussian", seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_unknown_filler_is_an_error():
    with pytest.raises(cyffe.NetError, match="unknown filler type 'gaussain'"):
        filled(type="gaussain")
