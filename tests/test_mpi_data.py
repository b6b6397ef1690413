"""Data-parallel training on the real data layers: `mpiexec -n 2 train_net` on HDF5Data and LMDB.

What each rank reads: rank r of N keeps the records at positions r, r+N, r+2N, ...
of the looping data stream (Caffe's Data/HDF5Data `Skip`, over passes, not within
one pass), so at iteration i the
N ranks with batch B together read stream positions i*N*B .. (i+1)*N*B - 1: the
records of a single process's batch i with batch N*B, in another order. Their
averaged gradient is that batch's gradient, so the weights agree to float rounding.
Random transforms (crop, mirror) draw from per-batch streams that differ from the
single process's, so the LMDB nets here use none; HDF5Data's shuffle is tested too.

Snapshots come from rank 0 alone; a resumed job puts every rank at its own place
in its shard and goes on exactly as the job that was not stopped.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_mpi import MPIEXEC, job_env, mpi, train_net, weights

from helpers import mnist

pytestmark = mpi

HDF5_NET = """name: "rows"
layer {{ name: "rows" type: "HDF5Data" top: "data" top: "label"
        hdf5_data_param {{ source: "{listing}" batch_size: {batch} shuffle: {shuffle} }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param {{ num_output: 8 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "relu" type: "ReLU" bottom: "ip1" top: "ip1" }}
layer {{ name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param {{ num_output: 3 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }}
"""

LMDB_NET = """name: "mnist"
layer {{ name: "mnist" type: "Data" top: "data" top: "label"
        transform_param {{ scale: 0.00390625 }}
        data_param {{ source: "{db}" batch_size: {batch} backend: LMDB }} }}
layer {{ name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param {{ num_output: 4 kernel_size: 5 stride: 3
                             weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "conv1" top: "ip1"
        inner_product_param {{ num_output: 10 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }}
"""


def solver(folder, name, net, max_iter, snapshot=0):
    """Write net (a prototxt text) and its SGD solver as folder/name_*; the solver's path."""
    folder = Path(folder)
    (folder / f"{name}_net.prototxt").write_text(net)
    path = folder / f"{name}_solver.prototxt"
    path.write_text(f'net: "{name}_net.prototxt"\nbase_lr: 0.1\nmomentum: 0.9\n'
                    f'weight_decay: 0.0005\nlr_policy: "fixed"\nmax_iter: {max_iter}\n'
                    f'display: 1\nsnapshot: {snapshot}\nsnapshot_prefix: "{name}"\n'
                    'random_seed: 7\n')
    return path


def hdf5_rows(folder):
    """Two HDF5 files of 28 and 20 rows (6 features, 3 classes) and their list file."""
    import h5py
    rng = np.random.default_rng(11)
    names = []
    for i, rows in enumerate((28, 20)):
        name = Path(folder) / f"part{i}.h5"
        with h5py.File(name, "w") as f:
            f["data"] = rng.normal(size=(rows, 6)).astype(np.float32)
            f["label"] = rng.integers(0, 3, size=rows).astype(np.float32)
        names.append(str(name))
    listing = Path(folder) / "parts.txt"
    listing.write_text("\n".join(names) + "\n")
    return listing




def assert_close(one, two):
    a, b = weights(one), weights(two)
    assert a.keys() == b.keys() and a
    for key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-6, err_msg=str(key))


def two_ranks_as_one(tmp_path, net, max_iter):
    """Train net(batch) (a prototxt text) on 1 rank, batch 8, and on 2 ranks, batch 4."""
    folder = str(tmp_path)
    one = train_net(1, "--solver", solver(folder, "one", net(8), max_iter),
                    "--out", "one.caffemodel", cwd=folder)
    assert one.returncode == 0, one.stderr
    two = train_net(2, "--solver", solver(folder, "two", net(4), max_iter),
                    "--out", "two.caffemodel", cwd=folder)
    assert two.returncode == 0, two.stderr
    assert two.stderr.count(f"Iteration {max_iter}, loss") == 1
    assert_close(tmp_path / "one.caffemodel", tmp_path / "two.caffemodel")


@pytest.mark.parametrize("shuffle", ["false", "true"])
def test_hdf5_data_two_ranks_train_as_one_with_twice_the_batch(tmp_path, shuffle):
    listing = hdf5_rows(tmp_path)
    # 48 rows over two files, 16 rows an iteration: over two passes, each rank crossing both
    # files. Shuffled, every rank walks the permutations of the single process (the layer's
    # own generator, seeded alike on every rank at setup), so the shards still partition.
    two_ranks_as_one(tmp_path, lambda batch: HDF5_NET.format(listing=listing, batch=batch,
                                                            shuffle=shuffle), max_iter=7)


def test_lmdb_data_two_ranks_train_as_one_with_twice_the_batch(tmp_path):
    # 57 records, 16 an iteration: the pass wraps in iteration 3 and 7, each time with the
    # ranks swapping parities (the odd record count), as in Caffe and the single process.
    db = mnist.lmdb(tmp_path / "mnist_lmdb", 57)
    two_ranks_as_one(tmp_path, lambda batch: LMDB_NET.format(db=db, batch=batch), max_iter=9)


@pytest.mark.parametrize("data", ["hdf5", "lmdb"])
def test_snapshots_come_from_rank_zero_and_resume_on_every_rank(tmp_path, data):
    if data == "hdf5":
        listing = hdf5_rows(tmp_path)
        net = lambda batch: HDF5_NET.format(listing=listing, batch=batch,  # noqa: E731
                                            shuffle="true")
    else:
        db = mnist.lmdb(tmp_path / "mnist_lmdb", 45)
        net = lambda batch: LMDB_NET.format(db=db, batch=batch)  # noqa: E731
    # Each rank in its own working directory: a relative snapshot_prefix shows who writes.
    for rank in (0, 1):
        (tmp_path / f"rank{rank}").mkdir()
    path = solver(tmp_path, "run", net(4), max_iter=8, snapshot=3)
    command = [sys.executable, "-m", "cyffe.tools.train_net", "--solver", str(path)]

    def job(*args):
        ranks = [part for rank in (0, 1) for part in
                 ((":",) if rank else ()) + ("-n", "1", "-wdir", str(tmp_path / f"rank{rank}"),
                                             *command, *args)]
        r = subprocess.run(MPIEXEC + ranks, env=job_env(), capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        return r

    job()
    written = sorted(os.listdir(tmp_path / "rank0"))
    assert written == [f"run_iter_{i}.{ext}" for i in (3, 6, 8)
                       for ext in ("caffemodel", "solverstate")]
    assert os.listdir(tmp_path / "rank1") == []
    resumed = job("--snapshot", tmp_path / "rank0" / "run_iter_3.solverstate",
                  "--out", "resumed.caffemodel")
    assert "Iteration 3" in resumed.stderr and "Iteration 0," not in resumed.stderr
    # Every rank went on from its own place in its shard: rank 0's weights are those of the
    # job that was not stopped, bit for bit (a rank reading the wrong records would show).
    straight, again = (weights(tmp_path / "rank0" / name)
                       for name in ("run_iter_8.caffemodel", "resumed.caffemodel"))
    assert straight.keys() == again.keys()
    for key in straight:
        assert np.array_equal(straight[key], again[key]), key
    assert not os.path.exists(tmp_path / "rank1" / "resumed.caffemodel")
    # The 2-rank snapshot resumed on 1 rank with twice the batch: the same, to float rounding.
    one = train_net(1, "--solver", solver(tmp_path, "one", net(8), max_iter=8),
                    "--snapshot", tmp_path / "rank0" / "run_iter_3.solverstate",
                    "--out", "one.caffemodel", cwd=str(tmp_path))
    assert one.returncode == 0, one.stderr
    assert_close(tmp_path / "one.caffemodel", tmp_path / "rank0" / "resumed.caffemodel")
