"""cyffe.Classifier, as pycaffe's caffe.Classifier."""
import numpy as np
import pytest

import cyffe
from cyffe import layers as L

RNG = np.random.default_rng(3)
CROP, IMAGE = 6, 8


def deploy(tmp_path, batch=2):
    n = cyffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[batch, 3, CROP, CROP]))
    n.conv = L.Convolution(n.data, num_output=4, kernel_size=3,
                           weight_filler=dict(type="gaussian", std=0.3),
                           bias_filler=dict(type="constant", value=0.1))
    n.ip = L.InnerProduct(n.conv, num_output=5, weight_filler=dict(type="gaussian", std=0.3))
    n.prob = L.Softmax(n.ip)
    model = tmp_path / "deploy.prototxt"
    model.write_text(str(n.to_proto()))
    weights = tmp_path / "w.caffemodel"
    cyffe.Net(str(model), cyffe.TEST).save(str(weights))
    return str(model), str(weights)


def scores(clf, crops):
    """The reference: preprocess each crop by hand and run the net one by one."""
    out = []
    for crop in crops:
        x = crop[:, :, ::-1].transpose(2, 0, 1) * 255.0 - np.array([50, 100, 150])[:, None, None]
        out.append(clf.forward(data=x[None].astype(np.float32))["prob"][0].copy())
    return np.array(out)


def classifier(tmp_path, **kwargs):
    model, weights = deploy(tmp_path)
    return cyffe.Classifier(model, weights, image_dims=(IMAGE, IMAGE), raw_scale=255.0,
                            mean=np.array([50.0, 100.0, 150.0]), channel_swap=(2, 1, 0),
                            **kwargs)


def test_center_crop_prediction(tmp_path):
    clf = classifier(tmp_path)
    assert clf.phase == cyffe.TEST and list(clf.image_dims) == [IMAGE, IMAGE]
    images = [RNG.random((IMAGE, IMAGE, 3)).astype(np.float32) for _ in range(5)]
    predictions = clf.predict(images, oversample=False)     # 5 images through a batch of 2
    assert predictions.shape == (5, 5)
    expected = scores(clf, [im[1:7, 1:7] for im in images])
    np.testing.assert_allclose(predictions, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(predictions.sum(axis=1), 1, rtol=1e-5)


def test_oversampled_prediction_averages_ten_crops(tmp_path):
    clf = classifier(tmp_path)
    images = [RNG.random((10, 12, 3)).astype(np.float32) for _ in range(2)]  # resized to 8x8
    predictions = clf.predict(images)
    assert predictions.shape == (2, 5)
    for k, im in enumerate(images):
        resized = cyffe.io.resize_image(im, (IMAGE, IMAGE))
        expected = scores(clf, cyffe.io.oversample([resized], (CROP, CROP))).mean(axis=0)
        np.testing.assert_allclose(predictions[k], expected, rtol=1e-5, atol=1e-6)


def test_defaults_to_the_crop_size_and_random_weights(tmp_path):
    model, _ = deploy(tmp_path)
    clf = cyffe.Classifier(model)
    assert list(clf.image_dims) == [CROP, CROP]
    image = RNG.random((CROP, CROP, 3)).astype(np.float32)
    direct = clf.forward(data=image.transpose(2, 0, 1)[None])["prob"][0].copy()
    np.testing.assert_allclose(clf.predict([image], oversample=False)[0], direct, rtol=1e-5)


def test_errors(tmp_path):
    model, weights = deploy(tmp_path)
    with pytest.raises(cyffe.ShapeError, match="smaller than the input's crop"):
        cyffe.Classifier(model, weights, image_dims=(4, 4))
    with pytest.raises(cyffe.ShapeError, match="at least one image"):
        cyffe.Classifier(model, weights).predict([])
    with pytest.raises(cyffe.ShapeError, match="mean of 2 channels"):
        cyffe.Classifier(model, weights, mean=np.zeros(2))
    n = cyffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 3]))
    n.prob = L.Softmax(n.data)
    with pytest.raises(cyffe.ShapeError, match="4-D image input"):
        cyffe.Classifier(n.to_proto())
    with pytest.raises(cyffe.DataError):
        cyffe.Classifier(model, str(tmp_path / "missing.caffemodel"))
