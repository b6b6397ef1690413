import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, setup_layer


def crop(axis=None, offsets=(), dtype=np.float64):
    param = pb.LayerParameter(name="cr", type="Crop")
    if axis is not None:
        param.crop_param.axis = axis
    param.crop_param.offset.extend(offsets)
    return layer_class("Crop")(param, pb.TRAIN, dtype)


def blobs(shape, ref, dtype=np.float64, seed=0):
    x, r = Blob(shape, dtype), Blob(ref, dtype)
    x.data[...] = np.random.default_rng(seed).standard_normal(shape)
    return [x, r]


def numpy_crop(x, ref, axis, offsets):
    out = x
    for a in range(axis, x.ndim):
        o = 0 if not offsets else offsets[0] if len(offsets) == 1 else offsets[a - axis]
        out = np.take(out, np.arange(o, o + ref[a]), axis=a)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis,offsets,shape,ref", [
    (None, (), (2, 3, 6, 5), (2, 3, 4, 4)),
    (None, (1,), (2, 3, 6, 5), (1, 1, 4, 4)),
    (1, (1, 2, 0), (2, 3, 6, 5), (5, 2, 4, 5)),
    (0, (1,), (3, 4), (2, 3)),
    (-1, (2,), (2, 3, 6), (2, 3, 3)),
    (2, (0, 1), (2, 3, 6, 5), (9, 9, 6, 4))])
def test_forward_matches_numpy(dtype, axis, offsets, shape, ref):
    bottom = blobs(shape, ref, dtype)
    layer = crop(axis, offsets, dtype)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    canonical = (2 if axis is None else axis) % len(shape)
    expected = numpy_crop(bottom[0].data, ref, canonical, offsets)
    assert top[0].data.dtype == dtype
    np.testing.assert_array_equal(top[0].data, expected)


def test_backward_pads_the_diff_with_zeros():
    bottom = blobs((2, 3, 5, 5), (2, 3, 2, 3))
    layer = crop(2, (1, 2))
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    bottom[0].diff[...] = 7
    layer.backward(top, [True, False], bottom)
    expected = np.zeros((2, 3, 5, 5))
    expected[:, :, 1:3, 2:5] = 1
    np.testing.assert_array_equal(bottom[0].diff, expected)


@pytest.mark.parametrize("axis,offsets", [(2, (1,)), (1, (0, 1, 2))])
def test_gradient(axis, offsets):
    bottom = blobs((2, 3, 4, 4), (2, 2, 2, 2))
    layer = crop(axis, offsets)
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top, check_bottom=[0])


def test_reference_takes_no_gradient():
    layer = crop()
    bottom = blobs((2, 3, 4, 4), (2, 3, 2, 2))
    top = setup_layer(layer, bottom)
    assert layer.allow_backward(0) and not layer.allow_backward(1)
    bottom[1].diff[...] = 5
    layer.backward(top, [True, True], bottom)
    np.testing.assert_array_equal(bottom[1].diff, 0)


def test_gpu_path_on_numpy_equals_cpu_path():
    cpu, gpu = crop(1, (1,)), crop(1, (1,))
    b1, b2 = blobs((2, 4, 5), (2, 2, 3)), blobs((2, 4, 5), (2, 2, 3))
    t1, t2 = setup_layer(cpu, b1), setup_layer(gpu, b2)
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    np.testing.assert_array_equal(t2[0].data, t1[0].data)
    t1[0].diff[...] = t2[0].diff[...] = np.random.default_rng(3).standard_normal(t1[0].shape)
    cpu.backward_cpu(t1, [True, False], b1)
    gpu.backward_gpu(t2, [True, False], b2)
    np.testing.assert_array_equal(b2[0].diff, b1[0].diff)


@pytest.mark.parametrize("axis,offsets,ref", [
    (2, (3,), (2, 3, 4, 4)), (2, (0, 4), (2, 3, 4, 4)), (2, (), (2, 3, 8, 4)),
    (1, (0, 0, 0), (2, 4, 4, 4))])
def test_offsets_out_of_range_name_the_layer(axis, offsets, ref):
    with pytest.raises(ShapeError, match=r"'cr'.*axis \d.*\(2, 3, 6, 6\)"):
        setup_layer(crop(axis, offsets), blobs((2, 3, 6, 6), ref))


def test_wrong_number_of_offsets_names_the_layer():
    with pytest.raises(NetError, match="'cr'"):
        setup_layer(crop(1, (1, 1)), blobs((2, 3, 6, 6), (2, 3, 4, 4)))


def test_axis_count_mismatch_names_the_layer():
    with pytest.raises(ShapeError, match="'cr'"):
        setup_layer(crop(), blobs((2, 3, 6, 6), (2, 3, 4)))


def test_axis_out_of_range_names_the_layer():
    with pytest.raises(ShapeError, match="'cr'"):
        setup_layer(crop(4), blobs((2, 3, 6, 6), (2, 3, 4, 4)))


@pytest.mark.parametrize("case", ["crop_axis2_offset1", "crop_axis1_offsets"])
def test_caffe_golden(case):
    run_case(case)
