"""A .caffemodel's layers read one at a time, their blobs' data left in the file.

Parsing a whole .caffemodel holds it three times at once: the file's bytes, the parsed
message, and the arrays made from it (AlexNet's 244 MB of weights took cyffe's load to 743
MB). Caffe writes each blob's values as one packed run of little-endian float32, so a
reader can walk the protobuf wire format instead: the layers (NetParameter field 100)
one at a time, each parsed by protobuf with its blobs' data fields cut out (so everything
but the values is checked as before), and the values read later straight from the file
into the net's arrays (read_values).

Files in an older format (V0/V1 `layers`), with double or unpacked values, or that do not
walk cleanly are left to io.read_net_weights, which reads them whole and gives their
errors.
"""
import os

import numpy as np
from google.protobuf import message

from . import cyffe_pb2 as pb

LAYER, V1_LAYERS = 100, 2           # NetParameter's fields
BLOBS = 7                           # LayerParameter.blobs
DATA, DOUBLE_DATA = 5, 8            # BlobProto's values
VARINT, FIXED64, BYTES, FIXED32 = 0, 1, 2, 5      # wire types


class _Elsewhere(Exception):
    """The file is one for the whole-file reader."""


def layer_records(path):
    """[(LayerParameter without its blobs' values, [(file offset, count) per blob])] in the
    file's order, or None when io.read_net_weights must read the file."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if not size:
                raise _Elsewhere()          # (the whole-file reader names an empty file)
            records, others = [], []
            for number, wire, begin, start, end in _file_fields(f, size):
                if number == V1_LAYERS:
                    raise _Elsewhere()
                if number == LAYER and wire == BYTES:
                    f.seek(start)
                    records.append(_layer(f.read(end - start), start))
                else:
                    f.seek(begin)
                    others.append(f.read(end - begin))
        pb.NetParameter().ParseFromString(b"".join(others))     # the rest, checked as before
    except (_Elsewhere, message.DecodeError, ValueError, OSError):
        return None
    return records


def read_values(f, offset, count, out):
    """The count float32 values at offset of the open file f into the array out (any float
    dtype, count elements)."""
    f.seek(offset)
    if out.dtype == np.dtype("<f4") and out.flags.c_contiguous:
        target = out
    else:
        target = np.empty(count, "<f4")
    if f.readinto(memoryview(target).cast("B")) != 4 * count:
        raise EOFError("the file ended inside a blob's values")
    if target is not out:
        out[...] = target.reshape(out.shape)


def _layer(raw, offset):
    """(LayerParameter parsed from raw without its blobs' values, [(offset, count)])."""
    kept, values = [], []
    for number, wire, begin, start, end in _fields(raw, 0, len(raw)):
        if number == BLOBS and wire == BYTES:
            blob, where = _blob(raw, start, end, offset)
            kept.append(_tag(BLOBS, BYTES) + _varint_bytes(len(blob)) + blob)
            values.append(where)
        else:
            kept.append(raw[begin:end])
    layer = pb.LayerParameter()
    layer.ParseFromString(b"".join(kept))
    return layer, values


def _blob(raw, start, end, offset):
    """(BlobProto bytes at raw[start:end] without field DATA, (file offset, count) of its
    packed values)."""
    kept, where = [], (offset + start, 0)
    for number, wire, b, s, e in _fields(raw, start, end):
        if number == DATA and wire == BYTES and (e - s) % 4 == 0 and where[1] == 0:
            where = (offset + s, (e - s) // 4)
        elif number in (DATA, DOUBLE_DATA):
            raise _Elsewhere()          # unpacked, split or double values
        else:
            kept.append(raw[b:e])
    return b"".join(kept), where


def _field(raw, pos, end):
    """(number, wire type, start of its value, the value's end) of the field whose key is at
    raw[pos]; its key, and a length or varint value, lie before end."""
    key, pos = _varint(raw, pos, end)
    number, wire = key >> 3, key & 7
    if wire == VARINT:
        after = _varint(raw, pos, end)[1]
    elif wire == BYTES:
        length, pos = _varint(raw, pos, end)
        after = pos + length
    elif wire in (FIXED64, FIXED32):
        after = pos + (8 if wire == FIXED64 else 4)
    else:
        raise _Elsewhere()
    if number == 0:
        raise _Elsewhere()
    return number, wire, pos, after


def _fields(raw, pos, end):
    """(number, wire type, start of the field, of its value, the value's end) of each
    field in raw[pos:end]."""
    while pos < end:
        number, wire, start, after = _field(raw, pos, end)
        if after > end:
            raise _Elsewhere()
        yield number, wire, pos, start, after
        pos = after


def _file_fields(f, size):
    """_fields over the open file f of size bytes, reading only keys and lengths."""
    pos = 0
    while pos < size:
        f.seek(pos)
        head = f.read(20)               # a key and a length: at most 15 bytes
        number, wire, start, end = _field(head, 0, len(head))
        if pos + end > size:
            raise _Elsewhere()
        yield number, wire, pos, pos + start, pos + end
        pos += end


def _varint(raw, pos, end):
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Elsewhere()
        byte = raw[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _varint_bytes(value):
    out = bytearray()
    while True:
        out.append(value & 0x7F | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _tag(number, wire):
    return _varint_bytes(number << 3 | wire)
