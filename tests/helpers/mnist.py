"""The shared MNIST IDX files, read for tests, and small LMDBs made from them."""
import gzip
import struct

import numpy as np

from .shared import shared_path


def load(split="t10k", count=None):
    """(images (N, 1, 28, 28) uint8, labels (N,) uint8) of the train or t10k split."""
    with gzip.open(shared_path("data", "mnist", f"{split}-images-idx3-ubyte.gz")) as f:
        magic, n, rows, cols = struct.unpack(">iiii", f.read(16))
        assert magic == 0x803
        n = min(n, count or n)
        images = np.frombuffer(f.read(n * rows * cols), np.uint8).reshape(n, 1, rows, cols)
    with gzip.open(shared_path("data", "mnist", f"{split}-labels-idx1-ubyte.gz")) as f:
        magic, _ = struct.unpack(">ii", f.read(8))
        assert magic == 0x801
        labels = np.frombuffer(f.read(n), np.uint8)
    return images, labels


def lmdb(db, count):
    """An LMDB of the first count training images at db, as convert_mnist writes them; db."""
    from cyffe.layers.pipeline.databases import write_lmdb
    from cyffe.tools.convert_mnist import mnist_records
    images, labels = load("train", count)
    write_lmdb(db, mnist_records(images[:, 0], labels), map_size=16 << 20)
    return db
