"""transform_param, as Caffe's DataTransformer: crop, mirror, subtract the mean, scale.

An item is a (C, H, W) array (uint8 pixels or floats). Per item, in Caffe's order:
mirror is drawn first (``mirror`` and a coin flip, TRAIN and TEST alike), then
the crop offsets (random in TRAIN, centred in TEST); the output is
``(x[:, crop] - mean[:, crop]) * scale``, flipped left-right when mirrored. The
mean is a full-size ``mean_file`` (a BlobProto of the item's C, H, W, cropped
at the same place) or ``mean_value`` (one for all channels, or one per channel).
"""
import numpy as np

from ...proto import cyffe_pb2 as pb
from ...proto.errors import DataError, NetError
from ...proto.paths import resolve_path
from .images import datum_to_array


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
        from ...proto.io import blobproto_to_array
        path = resolve_path(path, base_dir)
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
