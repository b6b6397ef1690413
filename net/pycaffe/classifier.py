"""Classifier: a TEST-phase Net that takes images and returns class scores (pycaffe's)."""
import numpy as np

from ...proto import cyffe_pb2 as pb
from ...proto.errors import ShapeError
from . import io
from ..graph import Net


class Classifier(Net):
    """pycaffe's caffe.Classifier: resize, crop, preprocess and classify H x W x K images.

    Classifier(model_file, pretrained_file, image_dims=None, mean=None,
    input_scale=None, raw_scale=None, channel_swap=None). The first net input
    takes the images; its H x W is the crop size. image_dims (default: the crop
    size) is the size images are resized to before cropping. mean, input_scale,
    raw_scale and channel_swap configure `self.transformer` (a cyffe.io.Transformer,
    transposing H x W x K to K x H x W).
    """

    def __init__(self, model_file, pretrained_file=None, image_dims=None, mean=None,
                 input_scale=None, raw_scale=None, channel_swap=None, **net_kwargs):
        super().__init__(model_file, pb.TEST, weights=pretrained_file, **net_kwargs)
        _, shape, self.transformer = io.image_input_transformer(
            self, "Classifier", mean, input_scale, raw_scale, channel_swap)
        self.crop_dims = np.array(shape[2:])
        self.image_dims = np.array(image_dims if image_dims is not None else self.crop_dims)
        if np.any(self.image_dims < self.crop_dims):
            raise ShapeError(f"{self.where}: image_dims {tuple(self.image_dims)} are smaller than "
                             f"the input's crop {tuple(self.crop_dims)}")

    def predict(self, inputs, oversample=True):
        """Class scores (N x classes) for N H x W x K images.

        With oversample, each image's scores are the mean over ten crops (corners,
        center and their mirrors, see cyffe.io.oversample); else the center crop.
        """
        if len(inputs) == 0:
            raise ShapeError(f"{self.where}: predict needs at least one image")
        h, w = (int(d) for d in self.image_dims)
        images = np.stack([io.resize_image(im, (h, w)) for im in inputs])
        ch, cw = (int(d) for d in self.crop_dims)
        if oversample:
            crops = io.oversample(images, (ch, cw))
        else:
            y, x = (h - ch) // 2, (w - cw) // 2
            crops = images[:, y:y + ch, x:x + cw]
        in_ = self.inputs[0]
        batch = np.stack([self.transformer.preprocess(in_, c) for c in crops])
        scores = self._forward_in_batches(in_, batch)
        if oversample:
            scores = scores.reshape(len(inputs), 10, -1).mean(axis=1)
        return scores

    def _forward_in_batches(self, in_, batch):
        """The first output for every row of batch, fed in the net's own batch size."""
        size = self.blobs[in_].shape[0]
        out = self.outputs[0]
        results = []
        for start in range(0, len(batch), size):
            result = self.forward(**{in_: batch[start:start + size]})[out]
            results.append(np.array(result).reshape(len(batch[start:start + size]), -1))
        return np.concatenate(results)
