"""examples/mnist end to end: the shared MNIST IDX -> LMDB with convert_mnist, Caffe's LeNet
trained on it through the Data layer for 300 iterations, tested on all 10000 test images."""
from pathlib import Path

from cyffe.net.solver import get_solver
from cyffe.proto.io import read_solver
from cyffe.tools import convert_mnist
from helpers.shared import shared_path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mnist"


def test_lenet_on_mnist_lmdb_passes_95_percent_in_300_iterations(tmp_path, monkeypatch):
    mnist = shared_path("data", "mnist")
    monkeypatch.chdir(tmp_path)             # the net's LMDB sources are found here first
    for split, db in (("train", "mnist_train_lmdb"), ("t10k", "mnist_test_lmdb")):
        assert convert_mnist.main([str(mnist / f"{split}-images-idx3-ubyte.gz"),
                                   str(mnist / f"{split}-labels-idx1-ubyte.gz"), db]) == 0
    param, _ = read_solver(str(EXAMPLE / "lenet_solver.prototxt"))
    param.max_iter = 300
    param.test_interval = 10000
    param.test_initialization = False
    param.random_seed = 1701
    param.ClearField("snapshot")
    lines = []
    solver = get_solver(param, log=lines.append, base_dir=str(EXAMPLE))
    solver.solve()
    accuracy = solver.test()["accuracy"]
    assert accuracy >= 0.95, "\n".join(lines[-20:])
