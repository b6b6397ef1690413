"""Reading and writing Caffe's files: prototxt (text format) and binary protos."""
import os

import numpy as np
from google.protobuf import message, text_format

from . import cyffe_pb2 as pb
from .atomic import write_bytes
from .errors import DataError, ProtoError
from .upgrade import upgrade_net


def _parse_text(text, msg, where):
    try:
        text_format.Parse(text, msg)
    except text_format.ParseError as e:
        # ParseError carries line and column; say them in the compiler's way.
        if e.GetLine() is not None:
            raise ProtoError(f"{where}:{e.GetLine()}:{e.GetColumn()}: {_strip_position(e)}") from None
        raise ProtoError(f"{where}: {e}") from None
    return msg


def _strip_position(err):
    text = str(err)
    head, sep, tail = text.partition(" : ")
    return tail if sep and head.replace(":", "").isdigit() else text


def _read_text_file(path, kind):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: {kind} file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read {kind} file: {e}") from None


def _looks_like_text(source):
    return "\n" in source or "{" in source or ":" in source and not os.path.exists(source)


def read_net(source):
    """A NetParameter from a prototxt path, a prototxt string, or a NetParameter.

    Returns (net_param, path) where path is the file it came from or None.
    """
    if isinstance(source, pb.NetParameter):
        return source, None
    source = os.fspath(source)
    if _looks_like_text(source):
        return _parse_text(source, pb.NetParameter(), "<string>"), None
    return _parse_text(_read_text_file(source, "net"), pb.NetParameter(), source), source


def read_solver(source):
    """A SolverParameter from a prototxt path or string; returns (param, path or None)."""
    if isinstance(source, pb.SolverParameter):
        return source, None
    source = os.fspath(source)
    if _looks_like_text(source):
        return _parse_text(source, pb.SolverParameter(), "<string>"), None
    return _parse_text(_read_text_file(source, "solver"), pb.SolverParameter(), source), source


def read_binary_net(path):
    """The NetParameter stored in a binary file (.caffemodel), as it is: no upgrade."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataError(f"{path}: cannot read weights: {e.strerror or e}") from None
    if not data:
        raise DataError(f"{path}: empty file, not a .caffemodel")
    net = pb.NetParameter()
    try:
        net.ParseFromString(data)
    except (message.DecodeError, ValueError):
        raise DataError(f"{path}: not a .caffemodel (binary NetParameter), or truncated or "
                        "corrupt") from None
    return net


def read_net_weights(path):
    """The NetParameter of a binary .caffemodel, upgraded to today's format (V0/V1 nets too)."""
    return upgrade_net(read_binary_net(path), os.fspath(path))


def write_binary(msg, path):
    """Serialize a message to path atomically: a temporary file, then a rename."""
    write_bytes(path, msg.SerializeToString())


def write_text(msg, path):
    """Write a message as prototxt text to path atomically."""
    write_bytes(path, text_format.MessageToString(msg).encode("utf-8"))


def has_legacy_shape(blob):
    """Whether a BlobProto gives its shape as Caffe's old num/channels/height/width fields."""
    return any(blob.HasField(f) for f in ("num", "channels", "height", "width"))


def blobproto_shape(blob):
    """The shape a BlobProto declares: `shape`, else its legacy 4-D (num, channels, height, width)."""
    if has_legacy_shape(blob):
        return (blob.num, blob.channels, blob.height, blob.width)
    return tuple(blob.shape.dim)


def blob_shape_matches(blob, shape):
    """Caffe's Blob::ShapeEquals: does the BlobProto fit a blob of `shape`?

    A legacy 4-D BlobProto fits a shape of at most 4 axes padded with leading
    1s (a bias (1, 1, 1, N) fits (N,), an InnerProduct weight (1, 1, M, N)
    fits (M, N)); otherwise the shapes must be equal.
    """
    shape = tuple(shape)
    if has_legacy_shape(blob):
        return len(shape) <= 4 and (1,) * (4 - len(shape)) + shape == blobproto_shape(blob)
    return tuple(blob.shape.dim) == shape


def blobproto_to_array(blob):
    """The data of a BlobProto as a float32/float64 numpy array of its shape."""
    if blob.HasField("shape") or has_legacy_shape(blob):
        shape = blobproto_shape(blob)
    else:
        shape = (len(blob.data) or len(blob.double_data),)
    if len(blob.double_data):
        values = np.asarray(blob.double_data, dtype=np.float64)
    else:
        values = np.asarray(blob.data, dtype=np.float32)
    if values.size != int(np.prod(shape, dtype=np.int64)):
        raise DataError(f"blob of shape {shape} holds {values.size} values")
    return values.reshape(shape)


def _packed_field(number, values):
    """The wire bytes of a packed repeated field: tag, length, the values' little-endian bytes."""
    raw = values.tobytes()
    return _varint(number << 3 | 2) + _varint(len(raw)) + raw


def _varint(value):
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def array_to_blobproto(array, diff=None):
    """A BlobProto holding array (float32 data; float64 arrays keep double_data).

    The values go in as the wire bytes of their packed fields, which protobuf parses at
    memory speed: extending a repeated field from a Python list took 10 s for VGG-16.
    """
    array = np.asarray(array)
    blob = pb.BlobProto()
    blob.shape.dim.extend(array.shape)
    if array.dtype == np.float64:
        raw = _packed_field(8, array.astype("<f8", copy=False).ravel())
    else:
        raw = _packed_field(5, array.astype("<f4", copy=False).ravel())
    if diff is not None:
        raw += _packed_field(6, np.asarray(diff).astype("<f4", copy=False).ravel())
    blob.MergeFromString(raw)
    return blob
