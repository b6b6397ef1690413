"""compute_image_mean: the per-pixel mean of an LMDB of Datums -> a .binaryproto, as Caffe's tool.

    compute_image_mean mnist_train_lmdb mean.binaryproto

Every Datum (raw, float_data or encoded) must have one shape; the mean is a
BlobProto of shape (1, C, H, W), as a transform_param mean_file reads it. Also
prints the mean of each channel (for mean_value). Written atomically.
"""
import argparse
import sys

import numpy as np

from cyffe.layers.pipeline.databases import lmdb_keys, open_lmdb, parse_datum
from cyffe.layers.pipeline.images import datum_to_array
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import DataError
from cyffe.proto.io import write_binary
from cyffe.tools.cli import run


def image_mean(db):
    """The (C, H, W) float64 mean of the Datums in the LMDB at db."""
    import lmdb
    env = open_lmdb(db, "compute_image_mean")
    keys = lmdb_keys(env, db, "compute_image_mean")
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
    mean = image_mean(args.db)
    c, h, w = mean.shape
    blob = pb.BlobProto(num=1, channels=c, height=h, width=w)
    blob.data.extend(mean.astype(np.float32).ravel().tolist())
    write_binary(blob, args.output)
    for k, value in enumerate(mean.reshape(c, -1).mean(axis=1)):
        print(f"mean_value channel [{k}]: {value:.6g}")
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog="compute_image_mean", description=__doc__.split("\n")[0])
    p.add_argument("db", help="LMDB of Datums")
    p.add_argument("output", help="the .binaryproto to write")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return p


def main(argv=None):
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return run("compute_image_mean", compute, args)


if __name__ == "__main__":
    sys.exit(main())
