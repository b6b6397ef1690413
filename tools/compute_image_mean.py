"""compute_image_mean: the per-pixel mean of an LMDB of Datums -> a .binaryproto, as Caffe's tool.

    compute_image_mean mnist_train_lmdb mean.binaryproto

Every Datum (raw, float_data or encoded) must have one shape; the mean is a
BlobProto of shape (1, C, H, W), as a transform_param mean_file reads it. Also
prints the mean of each channel (for mean_value). Written atomically.
"""
import os
import sys

import numpy as np

from cyffe.layers.pipeline.databases import lmdb_keys, open_lmdb, parse_datum
from cyffe.layers.pipeline.images import datum_to_array
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import DataError
from cyffe.proto.io import write_binary
from cyffe.tools import cli


def image_mean(db):
    """The (C, H, W) float64 mean of the Datums in the LMDB at db."""
    import lmdb
    env = open_lmdb(db)
    keys = lmdb_keys(env, db)
    if not keys:
        raise DataError(f"{db}: the database is empty")
    total = None
    try:
        with env.begin() as txn:
            for key in keys:
                where = f"{db}: record {key.decode(errors='replace')!r}"
                item = datum_to_array(parse_datum(txn.get(key), where), where=where)
                if total is None:
                    total = np.zeros(item.shape, np.float64)
                elif item.shape != total.shape:
                    raise DataError(f"{where}: shape {item.shape}, the first was {total.shape}")
                total += item
    except lmdb.Error as err:
        raise DataError(f"{db}: cannot read the LMDB: {err}") from None
    return total / len(keys)


def compute(args):
    if args.backend != "lmdb":
        raise DataError(f"{args.db}: reading a {args.backend} database is not supported yet; "
                        "convert it with --backend=lmdb")
    mean = image_mean(args.db)
    c, h, w = mean.shape
    blob = pb.BlobProto(num=1, channels=c, height=h, width=w)
    blob.data.extend(mean.astype(np.float32).ravel().tolist())
    write_binary(blob, args.output)
    for k, value in enumerate(mean.reshape(c, -1).mean(axis=1)):
        print(f"mean_value channel [{k}]: {value:.6g}")
    print(f"Wrote the mean image ({c}x{h}x{w}) to {os.path.abspath(args.output)}")
    return 0


def build_parser():
    p = cli.parser("compute_image_mean", "The per-pixel mean of an LMDB of Datums, written as "
                                         "a .binaryproto for transform_param's mean_file, as "
                                         "Caffe's compute_image_mean.")
    p.add_argument("db", metavar="DB", help="LMDB of Datums")
    p.add_argument("output", metavar="MEAN", help="the .binaryproto to write")
    cli.add_backend(p, "the kind of database DB is")
    cli.add_common(p)
    return p


def main(argv=None):
    return cli.run("compute_image_mean", compute, cli.parse_args(build_parser(), argv))


if __name__ == "__main__":
    sys.exit(main())
