"""Convert the UCI ML hand-written digits (8x8, values 0..16) into cyffe's HDF5 data set.

    python -m cyffe.tools.convert_digits OUT_DIR [--source FILE]

Reads the digits from FILE: scikit-learn's ``sklearn/datasets/data/digits.csv.gz``
(or the same csv uncompressed), or UCI's ``optdigits.tes`` / ``optdigits.tra``;
every line is 64 pixel values then the label, comma-separated. Without
--source it uses the csv inside an installed scikit-learn (found without
importing it). Writes OUT_DIR/train.h5 and OUT_DIR/test.h5, each with
``data`` (N, 1, 8, 8) float32 in [0, 1] (pixels / 16) and ``label`` (N,) float32,
split 80/20 by a fixed-seed stratified split (1797 images -> 1437 train, 360 test;
rows keep the source order), plus OUT_DIR/train.txt and OUT_DIR/test.txt, the
list files an HDF5Data layer reads, and OUT_DIR/samples.npy: the first test image
of each digit, 0 to 9, (10, 8, 8) float32, for classify. Every file is written to a temporary name
and renamed, so nothing half-written is left behind.
"""
import argparse
import gzip
import importlib.util
import math
import os
import sys

import numpy as np

from ..proto.atomic import atomic_path, write_bytes
from ..proto.errors import DataError

TEST_FRACTION = 0.2
SEED = 1998
HOW_TO_GET = ("pass --source FILE: scikit-learn's sklearn/datasets/data/digits.csv.gz, or "
              "optdigits.tes / optdigits.tra from the UCI repository "
              "(https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits)"
              "; or install scikit-learn, which ships the csv")


def find_source():
    """The digits csv inside an installed scikit-learn, or None."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, "datasets", "data", "digits.csv.gz")
        if os.path.isfile(path):
            return path
    return None


def read_digits(path):
    """(pixels (N, 64) int, labels (N,) int) from a digits csv(.gz) or optdigits file."""
    opener = gzip.open if path.endswith(".gz") else open
    pixels, labels = [], []
    try:
        with opener(path, "rt", encoding="ascii") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    values = [int(v) for v in line.split(",")]
                except ValueError:
                    values = []
                if (len(values) != 65 or not all(0 <= v <= 16 for v in values[:64])
                        or not 0 <= values[64] <= 9):
                    raise DataError(f"{path}:{number}: expected 64 pixel values in 0..16 and "
                                    "a label in 0..9, comma-separated")
                pixels.append(values[:64])
                labels.append(values[64])
    except (OSError, UnicodeDecodeError, EOFError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"cannot read digits file {path}: {err}") from None
    if not labels:
        raise DataError(f"{path}: no digits in the file")
    return np.array(pixels, np.int64), np.array(labels, np.int64)


def stratified_split(labels, test_fraction=TEST_FRACTION, seed=SEED):
    """(train indices, test indices), sorted; each class split in proportion.

    The test size is ceil(test_fraction * N); each class gets its proportional
    share, rounded down, and the leftover places go to the classes with the
    largest remainders (ties: the smaller label). Which items of a class go to
    the test set is drawn from a generator seeded with `seed`.
    """
    n = len(labels)
    n_test = math.ceil(test_fraction * n)
    classes, counts = np.unique(labels, return_counts=True)
    share = counts * n_test / n
    per_class = np.floor(share).astype(np.int64)
    leftover = n_test - int(per_class.sum())
    order = sorted(range(len(classes)), key=lambda k: (-(share[k] - per_class[k]), k))
    per_class[order[:leftover]] += 1
    rng = np.random.default_rng(seed)
    test = []
    for c, k in zip(classes, per_class):
        members = np.flatnonzero(labels == c)
        test.extend(rng.permutation(members)[:k])
    test = np.sort(np.array(test, np.int64))
    train = np.setdiff1d(np.arange(n), test)
    return train, test


def write_h5(path, data, label):
    """An HDF5 file with datasets `data` and `label` (gzip), written atomically."""
    import h5py
    with atomic_path(path) as tmp, h5py.File(tmp, "x") as f:
        f.create_dataset("data", data=data, compression="gzip")
        f.create_dataset("label", data=label, compression="gzip")


def samples(data, label):
    """The first image of each digit 0..9 in (data, label), as (10, 8, 8)."""
    return np.stack([data[np.flatnonzero(label == d)[0], 0] for d in range(10)])


def convert(out_dir, source=None):
    """Write train/test .h5 and list files into out_dir; returns {name: (N, per-class counts)}."""
    if source is None:
        source = find_source()
        if source is None:
            raise DataError("no digits data found: " + HOW_TO_GET)
    pixels, labels = read_digits(source)
    data = (pixels.reshape(-1, 1, 8, 8) / 16.0).astype(np.float32)
    label = labels.astype(np.float32)
    os.makedirs(out_dir, exist_ok=True)
    summary = {}
    split = stratified_split(labels)
    for name, rows in zip(("train", "test"), split):
        write_h5(os.path.join(out_dir, f"{name}.h5"), data[rows], label[rows])
        write_bytes(os.path.join(out_dir, f"{name}.txt"), f"{name}.h5\n".encode())
        summary[name] = (len(rows), np.bincount(labels[rows], minlength=10).tolist())
    with atomic_path(os.path.join(out_dir, "samples.npy")) as tmp, open(tmp, "xb") as f:
        np.save(f, samples(data[split[1]], label[split[1]]))
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m cyffe.tools.convert_digits",
        description="Convert the UCI hand-written digits (8x8) into train/test HDF5 files "
                    "and their list files.")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to write into")
    parser.add_argument("--source", metavar="FILE",
                        help="digits.csv(.gz) as scikit-learn ships it, or UCI's optdigits.tes "
                             "/ optdigits.tra (default: the csv of an installed scikit-learn)")
    args = parser.parse_args(argv)
    try:
        summary = convert(args.out_dir, args.source)
    except DataError as err:
        print(f"convert_digits: {err}", file=sys.stderr)
        return 1
    for name, (n, counts) in summary.items():
        print(f"{os.path.join(args.out_dir, name + '.h5')}: {n} images, per digit {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
