"""cyffe.io: pycaffe's caffe.io — images in, blobs out.

Images are H x W x K float arrays (K channels last, RGB, values in [0, 1] as
load_image gives them); a net's input is K x H x W. Transformer turns one into
the other with pycaffe's steps and order; resize_image, oversample and the
BlobProto converters are the helpers pycaffe scripts call.
"""
import os

import numpy as np

from ...proto import cyffe_pb2 as pb
from ...proto import io as proto_io
from ...proto.errors import DataError, NetError, ShapeError


def load_image(filename, color=True):
    """An image file as an H x W x 3 (color) or H x W x 1 float32 array in [0, 1].

    Needs Pillow (`pip install pillow`, or cyffe's `[image]` extra).
    """
    try:
        from PIL import Image
    except ImportError:
        raise DataError(f"load_image({filename!r}) needs Pillow to read images: "
                        "pip install pillow") from None
    if not os.path.exists(filename):
        raise DataError(f"load_image: no image file {filename!r}")
    try:
        with Image.open(filename) as image:
            pixels = np.asarray(image.convert("RGB" if color else "L"), dtype=np.float32)
    except OSError as err:
        raise DataError(f"load_image: cannot read {filename!r}: {err}") from None
    pixels /= 255.0
    return pixels if color else pixels[:, :, np.newaxis]


def _linear_weights(n_in, n_out):
    """Source indices and weights for resampling one axis (pixel centers aligned)."""
    position = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    position = np.clip(position, 0, n_in - 1)
    low = np.floor(position).astype(np.intp)
    high = np.minimum(low + 1, n_in - 1)
    return low, high, (position - low).astype(np.float32)


def resize_image(im, new_dims, interp_order=1):
    """Resize an H x W x K image to new_dims (height, width), keeping K.

    interp_order 1 is bilinear (pixel centers aligned, edges clamped, as most
    image libraries do), 0 nearest neighbour. Returns float32.
    """
    im = np.asarray(im, dtype=np.float32)
    if im.ndim != 3:
        raise ShapeError(f"resize_image: the image must be H x W x K, not of shape {im.shape}")
    h, w = (int(d) for d in new_dims[:2])
    if h <= 0 or w <= 0:
        raise ShapeError(f"resize_image: new_dims must be positive, not {tuple(new_dims)}")
    if im.shape[:2] == (h, w):
        return im.copy()
    if interp_order == 0:
        rows = np.minimum(((np.arange(h) + 0.5) * im.shape[0] / h).astype(np.intp), im.shape[0] - 1)
        cols = np.minimum(((np.arange(w) + 0.5) * im.shape[1] / w).astype(np.intp), im.shape[1] - 1)
        return im[rows][:, cols]
    if interp_order != 1:
        raise NetError(f"resize_image: interp_order {interp_order} is not supported yet "
                       "(0: nearest, 1: bilinear)")
    r0, r1, rw = _linear_weights(im.shape[0], h)
    c0, c1, cw = _linear_weights(im.shape[1], w)
    rows = im[r0] * (1 - rw)[:, None, None] + im[r1] * rw[:, None, None]
    return rows[:, c0] * (1 - cw)[None, :, None] + rows[:, c1] * cw[None, :, None]


def oversample(images, crop_dims):
    """Ten crops of each H x W x K image: four corners and the center, then their mirrors.

    Returns a (10 * N) x crop_h x crop_w x K float32 array, the crops of each
    image together (corners top-left, top-right, bottom-left, bottom-right,
    center; then the same five flipped left-right).
    """
    crop_h, crop_w = (int(d) for d in crop_dims[:2])
    crops = []
    for im in images:
        im = np.asarray(im, dtype=np.float32)
        h, w = im.shape[:2]
        if crop_h > h or crop_w > w:
            raise ShapeError(f"oversample: crop {crop_h} x {crop_w} is larger than the image "
                             f"{h} x {w}")
        corners = [(0, 0), (0, w - crop_w), (h - crop_h, 0), (h - crop_h, w - crop_w),
                   ((h - crop_h) // 2, (w - crop_w) // 2)]
        five = [im[y:y + crop_h, x:x + crop_w] for y, x in corners]
        crops += five + [c[:, ::-1] for c in five]
    return np.stack(crops) if crops else np.zeros((0, crop_h, crop_w, 0), np.float32)


def blobproto_to_array(blob, return_diff=False):
    """The data (or with return_diff, the diff) of a BlobProto as an array of its shape.

    As pycaffe: a blob without any shape is a scalar, so it must hold one value;
    values that do not fill the shape raise ShapeError (a ValueError).
    """
    shape = proto_io.blobproto_shape(blob)
    if return_diff:
        values = np.asarray(blob.diff, dtype=np.float32)
    elif len(blob.double_data):
        values = np.asarray(blob.double_data, dtype=np.float64)
    else:
        values = np.asarray(blob.data, dtype=np.float32)
    if values.size != int(np.prod(shape, dtype=np.int64)):
        described = f"shape {shape}" if shape else "no shape (a scalar)"
        raise ShapeError(f"blobproto_to_array: a blob of {described} holds {values.size} "
                         f"{'diff ' if return_diff else ''}values")
    return values.reshape(shape)


def array_to_blobproto(arr, diff=None):
    """A BlobProto holding arr (and diff, of the same shape, when given)."""
    if diff is not None and np.shape(diff) != np.shape(arr):
        raise ShapeError(f"array_to_blobproto: diff shape {np.shape(diff)} differs from the "
                         f"data shape {np.shape(arr)}")
    return proto_io.array_to_blobproto(arr, diff)


class Transformer:
    """Turn images into net inputs and back, as pycaffe's caffe.io.Transformer.

    Transformer({input name: its blob shape (N, K, H, W)}); configure each
    input with the set_* methods. preprocess runs, in this order: to float32,
    resize to the input's H x W, transpose, channel swap, raw scale, subtract
    the mean, input scale. deprocess undoes them.
    """

    def __init__(self, inputs):
        self.inputs = {name: tuple(int(d) for d in shape) for name, shape in inputs.items()}
        self.transpose = {}
        self.channel_swap = {}
        self.raw_scale = {}
        self.mean = {}
        self.input_scale = {}

    def _check_input(self, in_):
        if in_ not in self.inputs:
            raise NetError(f"Transformer: '{in_}' is not one of the net inputs: "
                           f"{', '.join(self.inputs)}")
        return self.inputs[in_]

    def preprocess(self, in_, data):
        """An H x W x K image as the K x H x W array the input blob `in_` takes."""
        shape = self._check_input(in_)
        caffe_in = np.array(data, dtype=np.float32)
        if len(shape) == 4 and caffe_in.ndim == 3 and caffe_in.shape[:2] != shape[2:]:
            caffe_in = resize_image(caffe_in, shape[2:])
        transpose = self.transpose.get(in_)
        if transpose is not None:
            caffe_in = caffe_in.transpose(transpose)
        channel_swap = self.channel_swap.get(in_)
        if channel_swap is not None:
            caffe_in = caffe_in[list(channel_swap)]
        if in_ in self.raw_scale:
            caffe_in *= self.raw_scale[in_]
        if in_ in self.mean:
            caffe_in -= self.mean[in_]
        if in_ in self.input_scale:
            caffe_in *= self.input_scale[in_]
        return caffe_in

    def deprocess(self, in_, data):
        """Undo preprocess (all but the resize): a net-input array back to an image."""
        self._check_input(in_)
        image = np.array(data, dtype=np.float32).squeeze()
        if in_ in self.input_scale:
            image /= self.input_scale[in_]
        if in_ in self.mean:
            image += self.mean[in_]
        if in_ in self.raw_scale:
            image /= self.raw_scale[in_]
        channel_swap = self.channel_swap.get(in_)
        if channel_swap is not None:
            image = image[np.argsort(channel_swap)]
        transpose = self.transpose.get(in_)
        if transpose is not None:
            image = image.transpose(np.argsort(transpose))
        return image

    def set_transpose(self, in_, order):
        """The axis order that takes the image to the input, e.g. (2, 0, 1) for HxWxK -> KxHxW."""
        shape = self._check_input(in_)
        if len(order) != len(shape) - 1:
            raise ShapeError(f"Transformer: transpose order {tuple(order)} for '{in_}' needs "
                             f"{len(shape) - 1} axes (input shape {shape})")
        self.transpose[in_] = tuple(order)

    def set_channel_swap(self, in_, order):
        """The channel order after transposing, e.g. (2, 1, 0) for RGB -> BGR."""
        shape = self._check_input(in_)
        if len(order) != shape[1]:
            raise ShapeError(f"Transformer: channel swap {tuple(order)} for '{in_}' needs "
                             f"{shape[1]} channels (input shape {shape})")
        self.channel_swap[in_] = tuple(order)

    def set_raw_scale(self, in_, scale):
        """Multiply raw values by scale (e.g. 255 for [0, 1] images into [0, 255] models)."""
        self._check_input(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_, mean):
        """Subtract mean: one value per channel (K,) or a whole K x H x W (or H x W) image."""
        shape = self._check_input(in_)
        mean = np.asarray(mean, dtype=np.float32)
        if mean.ndim == 1:
            if mean.shape[0] != shape[1]:
                raise ShapeError(f"Transformer: mean of {mean.shape[0]} channels for '{in_}' "
                                 f"with {shape[1]} channels")
            mean = mean[:, np.newaxis, np.newaxis]
        else:
            full = mean.shape if mean.ndim == 3 else (1,) + mean.shape
            if mean.ndim not in (2, 3) or full != shape[1:]:
                raise ShapeError(f"Transformer: mean of shape {mean.shape} does not fit the "
                                 f"input '{in_}' of shape {shape}")
            mean = mean.reshape(full)
        self.mean[in_] = mean

    def set_input_scale(self, in_, scale):
        """Multiply by scale after subtracting the mean (e.g. 1/std)."""
        self._check_input(in_)
        self.input_scale[in_] = scale


def image_input_transformer(net, who, mean=None, input_scale=None, raw_scale=None,
                            channel_swap=None):
    """(input name, its shape, a Transformer from H x W x K images to it) for a deploy net
    whose first input takes images (pycaffe's Classifier and Detector set theirs up so)."""
    if not net.inputs:
        raise NetError(f"{net.where}: {who} needs a net with an Input layer (a deploy net) to "
                       "feed the images to")
    name = net.inputs[0]
    shape = net.blobs[name].shape
    if len(shape) != 4:
        raise ShapeError(f"{net.where}: {who} needs a 4-D image input, not '{name}' of shape "
                         f"{shape}")
    transformer = Transformer({name: shape})
    transformer.set_transpose(name, (2, 0, 1))
    for setting, value in (("mean", mean), ("input_scale", input_scale),
                           ("raw_scale", raw_scale), ("channel_swap", channel_swap)):
        if value is not None:
            getattr(transformer, f"set_{setting}")(name, value)
    return name, shape, transformer


def array_to_datum(arr, label=None):
    """A Datum holding a K x H x W array (uint8 as bytes, else float_data)."""
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise ShapeError(f"array_to_datum: the array must be K x H x W, not of shape {arr.shape}")
    datum = pb.Datum(channels=arr.shape[0], height=arr.shape[1], width=arr.shape[2])
    if arr.dtype == np.uint8:
        datum.data = arr.tobytes()
    else:
        datum.float_data.extend(arr.astype(np.float32).ravel().tolist())
    if label is not None:
        datum.label = int(label)
    return datum


def datum_to_array(datum):
    """The K x H x W array of a Datum (uint8 from bytes, float32 from float_data)."""
    shape = (datum.channels, datum.height, datum.width)
    if datum.data:
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape)
    return np.asarray(datum.float_data, dtype=np.float32).reshape(shape)
