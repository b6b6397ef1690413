"""Reading and writing Caffe's files: prototxt (text format) and binary protos."""
import os
import tempfile

import numpy as np
from google.protobuf import message, text_format

from . import cyffe_pb2 as pb
from .errors import DataError, ProtoError


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


def read_net_weights(path):
    """The NetParameter stored in a binary .caffemodel file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataError(f"{path}: cannot read weights: {e.strerror or e}") from None
    net = pb.NetParameter()
    try:
        net.ParseFromString(data)
    except message.DecodeError as e:
        raise DataError(f"{path}: not a binary NetParameter (.caffemodel): {e}") from None
    return net


def write_binary(msg, path):
    """Serialize a message to path atomically: a temporary file, then a rename."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(msg.SerializeToString())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def blobproto_to_array(blob):
    """The data of a BlobProto as a float32/float64 numpy array of its shape."""
    if blob.HasField("shape"):
        shape = tuple(blob.shape.dim)
    elif blob.num or blob.channels or blob.height or blob.width:
        shape = (blob.num, blob.channels, blob.height, blob.width)
    else:
        shape = (len(blob.data) or len(blob.double_data),)
    if len(blob.double_data):
        values = np.asarray(blob.double_data, dtype=np.float64)
    else:
        values = np.asarray(blob.data, dtype=np.float32)
    if values.size != int(np.prod(shape, dtype=np.int64)):
        raise DataError(f"blob of shape {shape} holds {values.size} values")
    return values.reshape(shape)


def array_to_blobproto(array, diff=None):
    """A BlobProto holding array (float32 data; float64 arrays keep double_data)."""
    array = np.asarray(array)
    blob = pb.BlobProto()
    blob.shape.dim.extend(array.shape)
    if array.dtype == np.float64:
        blob.double_data.extend(array.ravel().tolist())
    else:
        blob.data.extend(array.astype(np.float32, copy=False).ravel().tolist())
    if diff is not None:
        blob.diff.extend(np.asarray(diff, np.float32).ravel().tolist())
    return blob
