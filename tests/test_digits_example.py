"""The embedded example end to end: LeNet learns the 8x8 digits past 97% test accuracy."""
from pathlib import Path

import cyffe

SOLVER = Path(__file__).resolve().parents[1] / "examples" / "digits" / "lenet_solver.prototxt"


def test_lenet_reaches_97_percent_on_the_digits(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                # data paths resolve from the prototxt's folder
    lines = []
    solver = cyffe.get_solver(str(SOLVER), log=lines.append)
    solver.solve()
    accuracy = solver.test()["accuracy"]
    assert accuracy >= 0.97, "\n".join(lines[-20:])
    assert solver.iter == 2000
