"""transform_param, as Caffe's DataTransformer: crop, mirror, subtract the mean, scale.

An item is a (C, H, W) array (uint8 pixels or floats). Per item, in Caffe's order:
mirror is drawn first (``mirror`` and a coin flip, TRAIN and TEST alike), then
the crop offsets (random in TRAIN, centred in TEST); the output is
``(x[:, crop] - mean[:, crop]) * scale``, flipped left-right when mirrored. The
mean is a full-size ``mean_file`` (a BlobProto of the item's C, H, W, cropped
at the same place) or ``mean_value`` (one for all channels, or one per channel).

Encoded items (JPEG, PNG, ... bytes) are decoded with Pillow into Caffe's (OpenCV's)
channel order, BGR; `force_color` decodes to 3 channels, `force_gray` to 1,
otherwise the image keeps its own (1 for gray, 3 for color). As in Caffe, the two
force flags act only on encoded data.
"""
import io
import os

import numpy as np

from ..proto import cyffe_pb2 as pb
from ..proto.errors import DataError, NetError


def beside(path, folder):
    """path as given when it exists (from the working directory), else the same relative path
    under folder (the net's prototxt folder) when that exists; else path, for the error."""
    if os.path.exists(path) or os.path.isabs(path) or not folder:
        return path
    candidate = os.path.join(folder, path)
    return candidate if os.path.exists(candidate) else path


def decode_image(data, color=None, where="image"):
    """(C, H, W) uint8 in BGR order from encoded bytes; color True/False forces 3/1 channels."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError(f"{where}: decoding images needs Pillow (pip install pillow)") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image_to_array(image, color)
    except (OSError, ValueError, SyntaxError) as err:
        raise DataError(f"{where}: not a readable image: {err}") from None


def image_to_array(image, color=None):
    """A Pillow image as (C, H, W) uint8, BGR, with 3 channels (color True), 1 (False) or its own."""
    if color is None:
        color = image.mode not in ("L", "1", "I;16", "I", "F")
    image = image.convert("RGB" if color else "L")
    array = np.asarray(image, dtype=np.uint8)
    if color:
        return np.ascontiguousarray(array[:, :, ::-1].transpose(2, 0, 1))
    return array[np.newaxis]


def datum_to_array(datum, force_color=False, force_gray=False, where="datum"):
    """The (C, H, W) array a Datum holds: decoded, raw uint8 bytes, or float_data."""
    if datum.encoded:
        color = True if force_color else False if force_gray else None
        return decode_image(datum.data, color, where)
    shape = (datum.channels, datum.height, datum.width)
    count = int(np.prod(shape))
    if datum.data:
        values = np.frombuffer(datum.data, dtype=np.uint8)
    else:
        values = np.asarray(datum.float_data, dtype=np.float32)
    if count <= 0 or values.size != count:
        raise DataError(f"{where}: Datum of shape {shape} holds {values.size} values")
    return values.reshape(shape)


class DataTransformer:
    """One layer's transform_param, applied item by item."""

    def __init__(self, param, phase, base_dir=None, where="data layer"):
        self.where = where
        self.phase = phase
        self.scale = param.scale
        self.mirror = param.mirror
        self.crop_size = param.crop_size
        self.force_color = param.force_color
        self.force_gray = param.force_gray
        if self.force_color and self.force_gray:
            raise NetError(f"{where}: transform_param sets both force_color and force_gray")
        if param.mean_file and param.mean_value:
            raise NetError(f"{where}: transform_param cannot have both mean_file and mean_value")
        self.mean = None
        if param.mean_file:
            self.mean = self._read_mean(param.mean_file, base_dir)
        self.mean_value = np.asarray(param.mean_value, dtype=np.float64)

    def _read_mean(self, path, base_dir):
        from ..proto.io import blobproto_to_array
        path = beside(path, base_dir)
        blob = pb.BlobProto()
        try:
            with open(path, "rb") as f:
                blob.ParseFromString(f.read())
            mean = blobproto_to_array(blob)
        except OSError as err:
            raise DataError(f"{self.where}: cannot read mean_file {path!r}: "
                            f"{err.strerror or err}") from None
        except Exception as err:      # protobuf's DecodeError and a wrong value count
            raise DataError(f"{self.where}: mean_file {path!r} is not a BlobProto: {err}") from None
        if mean.ndim == 4 and mean.shape[0] == 1:
            mean = mean[0]
        if mean.ndim != 3:
            raise DataError(f"{self.where}: mean_file {path!r} has shape {mean.shape}, "
                            "expected (1, C, H, W)")
        return mean.astype(np.float64)

    def to_array(self, datum, where):
        """The (C, H, W) item a Datum holds, decoded under force_color / force_gray."""
        return datum_to_array(datum, self.force_color, self.force_gray, where)

    def output_shape(self, shape):
        """(C, H, W) of a transformed item of input shape (C, H, W)."""
        c, h, w = shape
        if self.crop_size:
            if h < self.crop_size or w < self.crop_size:
                raise DataError(f"{self.where}: crop_size {self.crop_size} is larger than the "
                                f"{h}x{w} image")
            return c, self.crop_size, self.crop_size
        return c, h, w

    def transform(self, item, out, rng, where="item"):
        """Write the transformed (C, H, W) item into out, drawing mirror and crop from rng."""
        c, h, w = item.shape
        if out.shape != self.output_shape(item.shape):
            raise DataError(f"{where}: item of shape {item.shape} does not fit the batch of "
                            f"items of shape {out.shape} (before cropping all items must "
                            "have one shape)")
        do_mirror = bool(self.mirror and rng.integers(2))
        h_off = w_off = 0
        size_h, size_w = h, w
        if self.crop_size:
            size_h = size_w = self.crop_size
            if self.phase == pb.TRAIN:
                h_off = int(rng.integers(h - size_h + 1))
                w_off = int(rng.integers(w - size_w + 1))
            else:
                h_off, w_off = (h - size_h) // 2, (w - size_w) // 2
        window = (slice(None), slice(h_off, h_off + size_h), slice(w_off, w_off + size_w))
        x = item[window].astype(np.float64)
        if self.mean is not None:
            if self.mean.shape != item.shape:
                raise DataError(f"{where}: mean_file has shape {self.mean.shape}, the data "
                                f"{item.shape}")
            x -= self.mean[window]
        elif self.mean_value.size:
            if self.mean_value.size not in (1, c):
                raise DataError(f"{self.where}: {self.mean_value.size} mean_value values for "
                                f"{c} channels; give one, or one per channel")
            x -= self.mean_value.reshape(-1, 1, 1)
        if self.scale != 1:
            x *= self.scale
        out[...] = x[:, :, ::-1] if do_mirror else x


def read_image(path, height=0, width=0, color=True, where="image"):
    """(C, H, W) uint8 BGR (or 1-channel gray) of an image file, as Caffe's ReadImageToCVMat.

    Resized to height x width (bilinear) when both are positive.
    """
    try:
        from PIL import Image
    except ImportError:
        raise DataError(f"{where}: reading images needs Pillow (pip install pillow)") from None
    try:
        with Image.open(path) as image:
            image.load()
            if height > 0 and width > 0 and image.size != (width, height):
                image = image.convert("RGB" if color else "L").resize(
                    (width, height), Image.BILINEAR)
            return image_to_array(image, color)
    except FileNotFoundError:
        raise DataError(f"{where}: image {path!r} not found") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise DataError(f"{where}: {path!r} is not a readable image: {err}") from None
