"""Images as arrays the way Caffe (OpenCV) gives them: (C, H, W) uint8 in BGR order, or one
gray channel. Decoded with Pillow: encoded Datums, image files (resized as Caffe's
ReadImageToCVMat), and what a Datum holds.

Encoded items (JPEG, PNG, ... bytes) decode to 3 channels when color is forced, 1 when
gray is, otherwise the image's own (1 for gray, 3 for color). As in Caffe, force_color
and force_gray act only on encoded data.
"""
import io

import numpy as np

from ...proto.errors import DataError, at
from ...proto.io import check_shape


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
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
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
    check_shape(shape, f"{at(where)}Datum")
    count = int(np.prod(shape, dtype=np.int64))
    if datum.data:
        values = np.frombuffer(datum.data, dtype=np.uint8)
    else:
        values = np.asarray(datum.float_data, dtype=np.float32)
    if count <= 0 or values.size != count:
        raise DataError(f"{where}: Datum of shape {shape} holds {values.size} values")
    return values.reshape(shape)


def read_image(path, height=0, width=0, color=True, where="image"):
    """(C, H, W) uint8 BGR (or 1-channel gray) of an image file, as Caffe's ReadImageToCVMat.

    Resized to height x width (bilinear) when both are positive. Images of more pixels
    than Pillow's MAX_IMAGE_PIXELS (decompression bombs) are refused.
    """
    try:
        from PIL import Image
    except ImportError:
        raise DataError(f"{at(where)}reading images needs Pillow (pip install pillow)") from None
    check_shape((3, height, width), f"{at(where)}{path!r} resized")
    try:
        with Image.open(path) as image:
            image.load()
            if height > 0 and width > 0 and image.size != (width, height):
                image = image.convert("RGB" if color else "L").resize(
                    (width, height), Image.BILINEAR)
            return image_to_array(image, color)
    except FileNotFoundError:
        raise DataError(f"{at(where)}image {path!r} not found") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DataError(f"{at(where)}{path!r} is not a readable image: {err}") from None
