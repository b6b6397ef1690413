"""End to end: exact resume through `train_net` on real data layers.

Each test trains straight to n, writing a snapshot at k on the way (`snapshot: k`),
then resumes a second process from `<prefix>_iter_<k>.solverstate` to n, and
asserts that both final weights are bit-identical. The data layers are the real
ones: HDF5Data with shuffle (the digits example), LMDB Data with a random crop
and mirror in TRAIN (over the first MNIST images), ImageData with shuffle (tiny
PNGs made here). Exactness needs the resumed layer to serve the same batches
(`skip`) and the same random crops/flips/permutations as the straight run.
"""
import subprocess
import sys
from pathlib import Path

import numpy as np

from cyffe.proto.io import blobproto_to_array, read_net_weights

from helpers import mnist

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "examples" / "digits"


def train_net(cwd, *args, timeout=120):
    """Run `python -m cyffe.tools.train_net args` in cwd; fail the test with its stderr if it fails."""
    r = subprocess.run([sys.executable, "-m", "cyffe.tools.train_net", *map(str, args)],
                       cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    return r


def weights(path):
    """{(layer, index): array} of a .caffemodel."""
    return {(layer.name, i): blobproto_to_array(b)
            for layer in read_net_weights(str(path)).layer for i, b in enumerate(layer.blobs)}


def assert_bit_identical(straight, resumed):
    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys() and a
    for key in a:
        assert np.array_equal(a[key], b[key]), f"{key} differs after resume"


def write_solver(folder, net, k, n, extra=""):
    """A solver in folder that trains net to n, snapshotting every k iterations."""
    path = Path(folder) / "solver.prototxt"
    path.write_text(f'net: "{net}"\nbase_lr: 0.01\nmomentum: 0.9\nweight_decay: 0.0005\n'
                    f'lr_policy: "inv"\ngamma: 0.0001\npower: 0.75\nmax_iter: {n}\n'
                    f'display: 1\nsnapshot: {k}\nsnapshot_prefix: "run"\n'
                    f'random_seed: 1701\n{extra}')
    return path


def straight_then_resumed(folder, solver, k, n, *flags):
    """Train straight to n (snapshot at k), resume from k to n; both final .caffemodel paths."""
    straight = train_net(folder, "--solver", solver, *flags)
    assert f"Snapshotting solver state to binary proto file run_iter_{k}.solverstate" \
        in straight.stderr
    resumed = train_net(folder, "--solver", solver, "--snapshot", f"run_iter_{k}.solverstate",
                        "--out", "resumed.caffemodel", *flags)
    assert f"Iteration {k}" in resumed.stderr and "Iteration 0," not in resumed.stderr
    return Path(folder) / f"run_iter_{n}.caffemodel", Path(folder) / "resumed.caffemodel"


# -- (a) the digits example: HDF5Data with shuffle -------------------------------------------


def test_digits_example_resumes_exactly(tmp_path):
    # 1347 training rows, batch 64: the shuffled pass wraps (and re-permutes) at iteration 21,
    # between the snapshot (10) and the end (26); a test pass every 8 iterations in between.
    solver = write_solver(tmp_path, DIGITS / "lenet_train_test.prototxt", k=10, n=26,
                          extra="test_iter: 1\ntest_interval: 8\n")
    straight, resumed = straight_then_resumed(tmp_path, solver, 10, 26)
    assert_bit_identical(straight, resumed)


# -- (b) LMDB Data with a random crop and mirror in TRAIN -------------------------------------

LMDB_NET = """name: "mnist-crop"
layer {{ name: "mnist" type: "Data" top: "data" top: "label" include {{ phase: TRAIN }}
        transform_param {{ scale: 0.00390625 mirror: true crop_size: 24 }}
        data_param {{ source: "{db}" batch_size: 16 backend: LMDB }} }}
layer {{ name: "mnist" type: "Data" top: "data" top: "label" include {{ phase: TEST }}
        transform_param {{ scale: 0.00390625 crop_size: 24 }}
        data_param {{ source: "{db}" batch_size: 25 backend: LMDB }} }}
layer {{ name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param {{ num_output: 6 kernel_size: 5 stride: 2
                             weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "conv1" top: "ip1"
        inner_product_param {{ num_output: 10 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }}
"""




def test_lmdb_data_with_random_crop_and_mirror_resumes_exactly(tmp_path):
    mnist.lmdb(tmp_path / "mnist_lmdb", 200)
    net = tmp_path / "net.prototxt"
    net.write_text(LMDB_NET.format(db=tmp_path / "mnist_lmdb"))
    # 200 records, batch 16: the pass wraps at iteration 12, after the snapshot at 7.
    solver = write_solver(tmp_path, net, k=7, n=16, extra="test_iter: 2\ntest_interval: 5\n")
    straight, resumed = straight_then_resumed(tmp_path, solver, 7, 16)
    assert_bit_identical(straight, resumed)


# -- (c) ImageData with shuffle over PNGs ----------------------------------------------------

IMAGE_NET = """name: "pngs"
layer {{ name: "images" type: "ImageData" top: "data" top: "label"
        transform_param {{ scale: 0.00390625 mirror: true crop_size: 8 }}
        image_data_param {{ source: "{listing}" root_folder: "{root}/" batch_size: 4
                            shuffle: true }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param {{ num_output: 3 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }}
"""


def test_image_data_with_shuffle_resumes_exactly(tmp_path):
    from PIL import Image
    pixels = np.random.default_rng(5).integers(0, 256, size=(10, 10, 10, 3), dtype=np.uint8)
    lines = []
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(tmp_path / f"img{i}.png")
        lines.append(f"img{i}.png {i % 3}\n")
    (tmp_path / "list.txt").write_text("".join(lines))
    net = tmp_path / "net.prototxt"
    net.write_text(IMAGE_NET.format(listing=tmp_path / "list.txt", root=tmp_path))
    # 10 images, batch 4: several shuffled passes, one of them across the snapshot at 5.
    solver = write_solver(tmp_path, net, k=5, n=12)
    straight, resumed = straight_then_resumed(tmp_path, solver, 5, 12)
    assert_bit_identical(straight, resumed)
