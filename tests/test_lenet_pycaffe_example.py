"""examples/lenet_pycaffe/lenet.py: the pycaffe LeNet script trains the digits."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "lenet_pycaffe" / "lenet.py"


def test_lenet_script_trains_tests_and_saves(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--iters", "300", "--test-interval", "150",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="2"))
    assert done.returncode == 0, done.stderr
    accuracy = float(re.search(r"final test accuracy ([0-9.]+)", done.stdout).group(1))
    assert accuracy > 0.9, done.stdout
    losses = [float(x) for x in re.findall(r"train loss ([0-9.]+)", done.stdout)]
    assert len(losses) == 2
    for name in ("lenet_auto_train.prototxt", "lenet_auto_test.prototxt",
                 "lenet_auto_solver.prototxt", "lenet_digits.caffemodel"):
        assert (tmp_path / name).stat().st_size > 0, name

    import cyffe
    net = cyffe.Net(str(tmp_path / "lenet_auto_test.prototxt"),
                    str(tmp_path / "lenet_digits.caffemodel"), cyffe.TEST)
    assert net.blobs["score"].shape == (120, 10)
    solver = cyffe.proto.read_solver(str(tmp_path / "lenet_auto_solver.prototxt"))[0]
    assert solver.lr_policy == "inv" and solver.max_iter == 300
