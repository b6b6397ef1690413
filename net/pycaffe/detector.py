"""Detector: a TEST-phase Net that scores windows of images (pycaffe's caffe.Detector, R-CNN)."""
import os

import numpy as np

from ...proto import cyffe_pb2 as pb
from ...proto.errors import DataError, ShapeError
from . import io
from ..graph import Net


class Detector(Net):
    """pycaffe's caffe.Detector: crop windows out of images, warp them to the input, classify.

    Detector(model_file, pretrained_file, mean=None, input_scale=None,
    raw_scale=None, channel_swap=None, context_pad=None). A window is (ymin,
    xmin, ymax, xmax) in pixels. context_pad keeps that many pixels of context
    around each window once warped (R-CNN's padding); context outside the image
    is filled with the mean.
    """

    def __init__(self, model_file, pretrained_file=None, mean=None, input_scale=None,
                 raw_scale=None, channel_swap=None, context_pad=None, **net_kwargs):
        super().__init__(model_file, pb.TEST, weights=pretrained_file, **net_kwargs)
        _, _, self.transformer = io.image_input_transformer(
            self, "Detector", mean, input_scale, raw_scale, channel_swap)
        self.configure_crop(context_pad)

    def configure_crop(self, context_pad):
        """Set the context padding and the fill for context outside the image (the mean)."""
        in_ = self.inputs[0]
        channels, height, width = self.blobs[in_].shape[1:]
        self.crop_dims = np.array((height, width, channels))
        self.context_pad = context_pad
        fill = np.zeros(1, np.float32)
        mean = self.transformer.mean.get(in_)
        if context_pad and mean is not None:
            # The mean is in the net's space (K x H x W, channels swapped, scaled):
            # take it back to an image's H x W x K.
            fill = np.array(mean, np.float32).transpose(1, 2, 0)
            swap = self.transformer.channel_swap.get(in_)
            if swap is not None:
                fill = fill[:, :, np.argsort(swap)]
            raw_scale = self.transformer.raw_scale.get(in_)
            if raw_scale is not None:
                fill = fill / raw_scale
        self.crop_mean = fill

    def crop(self, im, window):
        """The window of an H x W x K image, with context_pad pixels of context once warped."""
        y0, x0, y1, x1 = (int(v) for v in window)
        if not self.context_pad:
            return im[y0:y1, x0:x1]
        size = int(self.crop_dims[1])
        # Grow the box about its center so that, warped to size, it keeps context_pad
        # pixels of context on each side.
        grow = size / (size - 2.0 * self.context_pad)
        center = np.array([(y0 + y1 + 1) / 2, (x0 + x1 + 1) / 2])
        half = grow * np.array([(y1 - y0 + 1) / 2, (x1 - x0 + 1) / 2])
        top, left = np.round(center - half)
        bottom, right = np.round(center + half)
        scale_y, scale_x = size / (bottom - top + 1), size / (right - left + 1)
        # What lies outside the image becomes the fill; the rest is warped into place.
        pad_y, pad_x = round(max(0, -top) * scale_y), round(max(0, -left) * scale_x)
        h, w = im.shape[:2]
        top, left = max(top, 0), max(left, 0)
        bottom, right = min(bottom, h), min(right, w)
        if bottom <= top or right <= left:
            raise ShapeError(f"Detector.crop: window {tuple(window)} lies outside the "
                             f"{h} x {w} image")
        crop_h = min(round((bottom - top + 1) * scale_y), size - pad_y)
        crop_w = min(round((right - left + 1) * scale_x), size - pad_x)
        out = np.empty((size, size, im.shape[2]), np.float32)
        out[...] = self.crop_mean if self.crop_mean.ndim < 3 else io.resize_image(
            self.crop_mean, (size, size))
        context = im[int(top):int(bottom), int(left):int(right)]
        out[pad_y:pad_y + crop_h, pad_x:pad_x + crop_w] = io.resize_image(context,
                                                                          (crop_h, crop_w))
        return out

    def detect_windows(self, images_windows):
        """[{"window", "prediction", "filename"}] for each (image file, [windows]) given."""
        images_windows = [(name, list(windows)) for name, windows in images_windows]
        crops = []
        for name, windows in images_windows:
            image = io.load_image(name)
            crops += [self.crop(image, window) for window in windows]
        if not crops:
            return []
        in_ = self.inputs[0]
        batch = np.stack([self.transformer.preprocess(in_, c) for c in crops])
        predictions = self.forward_all(**{in_: batch})[self.outputs[0]]
        found = iter(predictions)
        return [{"window": window, "prediction": next(found), "filename": name}
                for name, windows in images_windows for window in windows]

    def detect_selective_search(self, image_fnames):
        """detect_windows over the windows of selective search (needs its Python/MATLAB package)."""
        try:
            import selective_search_ijcv_with_python as selective_search
        except ImportError:
            raise DataError("detect_selective_search needs the selective_search_ijcv_with_python "
                            "package (and MATLAB); give windows to detect_windows "
                            "instead") from None
        image_fnames = [os.path.abspath(f) for f in image_fnames]
        windows = selective_search.get_windows(image_fnames, cmd="selective_search_rcnn")
        return self.detect_windows(zip(image_fnames, windows))
