import numpy as np
import pytest

from cyffe.layers.blob import Blob
from cyffe.layers.registry import layer_class
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import NetError, ShapeError

from helpers.golden import run_case
from helpers.gradcheck import check_gradient, make_blobs, setup_layer

GAUSS = pb.FillerParameter(type="gaussian", std=1.0)


def embed(num_output=4, input_dim=6, bias_term=True, dtype=np.float64):
    param = pb.LayerParameter(name="embed", type="Embed")
    p = param.embed_param
    p.num_output, p.input_dim, p.bias_term = num_output, input_dim, bias_term
    p.weight_filler.CopyFrom(GAUSS)
    p.bias_filler.CopyFrom(GAUSS)
    return layer_class("Embed")(param, pb.TRAIN, dtype)


INDICES = np.array([[0, 5, 2], [2, 2, 1]], float)     # repeats: rows accumulate


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias_term", [True, False])
def test_forward_matches_numpy(dtype, bias_term):
    layer = embed(bias_term=bias_term, dtype=dtype)
    bottom = [Blob(INDICES.shape, dtype)]
    bottom[0].data[...] = INDICES
    top = setup_layer(layer, bottom)
    assert top[0].shape == (2, 3, 4)
    w = layer.blobs[0].data
    want = w[INDICES.astype(int)]
    if bias_term:
        want = want + layer.blobs[1].data
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, want, rtol=1e-6)


@pytest.mark.parametrize("bias_term", [True, False])
def test_gradient_on_params(bias_term):
    layer = embed(bias_term=bias_term)
    bottom = make_blobs(INDICES)
    top = setup_layer(layer, bottom)
    check_gradient(layer, bottom, top, check_bottom=[])


def test_weight_gradient_accumulates_at_the_indexed_rows():
    layer = embed(bias_term=False)
    bottom = make_blobs(INDICES)
    top = setup_layer(layer, bottom)
    layer.forward(bottom, top)
    dy = np.random.default_rng(1).standard_normal(top[0].shape)
    top[0].diff[...] = dy
    layer.blobs[0].diff[...] = 1.0
    layer.backward(top, [False], bottom)
    want = np.ones((6, 4))
    for idx, g in zip(INDICES.reshape(-1).astype(int), dy.reshape(-1, 4)):
        want[idx] += g
    np.testing.assert_allclose(layer.blobs[0].diff, want)
    assert not layer.allow_backward(0)


@pytest.mark.parametrize("bias_term", [True, False])
def test_gpu_path_on_numpy_equals_cpu_path(bias_term):
    cpu, gpu = embed(bias_term=bias_term), embed(bias_term=bias_term)
    b1, b2 = make_blobs(INDICES), make_blobs(INDICES)
    t1, t2 = setup_layer(cpu, b1), setup_layer(gpu, b2)
    for p, q in zip(cpu.blobs, gpu.blobs):
        q.data[...] = p.data
    cpu.forward_cpu(b1, t1)
    gpu.forward_gpu(b2, t2)
    np.testing.assert_allclose(t2[0].data, t1[0].data)
    t1[0].diff[...] = t2[0].diff[...] = np.random.default_rng(2).standard_normal(t1[0].shape)
    cpu.backward_cpu(t1, [False], b1)
    gpu.backward_gpu(t2, [False], b2)
    for p, q in zip(cpu.blobs, gpu.blobs):
        np.testing.assert_allclose(q.diff, p.diff)


@pytest.mark.parametrize("value", [6.0, -1.0, 1.5])
def test_bad_index_names_the_layer(value):
    layer = embed()
    indices = INDICES.copy()
    indices[1, 2] = value
    bottom = make_blobs(indices)
    top = setup_layer(layer, bottom)
    with pytest.raises(ShapeError, match=rf"'embed'.*index {value:g} at position 5"):
        layer.forward(bottom, top)


def test_bad_params_name_the_layer():
    with pytest.raises(NetError, match="'embed'.*num_output"):
        setup_layer(embed(num_output=0), make_blobs(INDICES))
    with pytest.raises(NetError, match="'embed'.*input_dim"):
        setup_layer(embed(input_dim=0), make_blobs(INDICES))


@pytest.mark.parametrize("case", ["embed", "embed_nobias"])
def test_caffe_golden(case):
    run_case(case)
