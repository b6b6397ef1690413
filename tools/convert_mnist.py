"""convert_mnist: MNIST IDX files -> an LMDB of Datums, as Caffe's convert_mnist_data.

    convert_mnist train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz mnist_train_lmdb

The IDX files may be gzipped. Each image becomes a Datum (1 channel, raw uint8
pixels, its label) under the key "%08d" of its index, as Caffe writes them. The
database is built in a temporary folder and renamed when complete.
"""
import gzip
import struct
import sys
import zlib

import numpy as np

from cyffe.layers.pipeline.databases import write_database
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import DataError
from cyffe.tools import cli

IMAGES_MAGIC, LABELS_MAGIC = 0x803, 0x801


def read_idx(path, magic, dims):
    """The uint8 array of an IDX file (optionally gzipped) with this magic and dims count."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        if isinstance(err, FileNotFoundError):
            raise DataError(f"{path}: not found") from None
        raise DataError(f"{path}: cannot read (corrupt gzip?): {err}") from None
    header = 4 + 4 * dims
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX file ({len(raw)} bytes, header needs {header})")
    found, *shape = struct.unpack(f">{1 + dims}i", raw[:header])
    if found != magic:
        raise DataError(f"{path}: not an IDX file of {dims}-D uint8 data (magic {found:#x}, "
                        f"expected {magic:#x})")
    if any(n < 0 for n in shape):
        raise DataError(f"{path}: IDX header gives a negative size: {tuple(shape)}")
    count = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != count:
        raise DataError(f"{path}: truncated or padded IDX file: {len(raw) - header} bytes of "
                        f"data for shape {tuple(shape)} ({count} bytes)")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def read_mnist(images_path, labels_path):
    """(images (N, rows, cols) uint8, labels (N,) uint8) from MNIST IDX files."""
    images = read_idx(images_path, IMAGES_MAGIC, 3)
    labels = read_idx(labels_path, LABELS_MAGIC, 1)
    if len(images) != len(labels):
        raise DataError(f"{images_path} has {len(images)} images but {labels_path} "
                        f"{len(labels)} labels")
    return images, labels


def mnist_records(images, labels):
    """(key, serialized Datum) for each image, Caffe's keys and layout."""
    rows, cols = images.shape[1:]
    for i, (image, label) in enumerate(zip(images, labels)):
        datum = pb.Datum(channels=1, height=rows, width=cols, data=image.tobytes(),
                         label=int(label))
        yield b"%08d" % i, datum.SerializeToString()


def convert(args):
    images, labels = read_mnist(args.images, args.labels)
    size = images.size + 64 * len(images)
    write_database(args.db, mnist_records(images, labels), args.backend, 4 * size + (64 << 20))
    print(f"convert_mnist: wrote {len(images)} items to {args.db}")
    return 0


def build_parser():
    p = cli.parser("convert_mnist", "MNIST IDX files -> an LMDB of Datums, as Caffe's "
                                    "convert_mnist_data.")
    p.add_argument("images", metavar="IMAGES", help="IDX images file (idx3-ubyte, may be .gz)")
    p.add_argument("labels", metavar="LABELS", help="IDX labels file (idx1-ubyte, may be .gz)")
    p.add_argument("db", metavar="DB", help="the database folder to create")
    cli.add_backend(p)
    cli.add_common(p)
    return p


def main(argv=None):
    return cli.run("convert_mnist", convert, cli.parse_args(build_parser(), argv))


if __name__ == "__main__":
    sys.exit(main())
