"""train_net --log (JSON lines and CSV), plot_training_log, and the progress bar."""
import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cyffe.net.analysis.training_log import TrainingLog, read_training_log
from cyffe.proto.errors import DataError

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "examples" / "digits" / "lenet_train_test.prototxt"
SHORT_RUN = ("--proto", DIGITS, "--max-iter", 40, "--display", 10, "--test-interval", 20,
             "--seed", 1)


def tool(name, *args, cwd, **kwargs):
    return subprocess.run([sys.executable, "-m", f"cyffe.tools.{name}", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=300, **kwargs)


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """One short digits run per log format: {"jsonl": (path, result), "csv": (path, result)}."""
    out = {}
    for kind in ("jsonl", "csv"):
        folder = tmp_path_factory.mktemp(kind)
        r = tool("train_net", *SHORT_RUN, "--log", f"run.{kind}", cwd=folder)
        assert r.returncode == 0, r.stderr
        out[kind] = (folder / f"run.{kind}", r)
    return out


def test_json_lines_log_has_every_display_and_test(logs):
    path, result = logs["jsonl"]
    events = [json.loads(line) for line in path.read_text().splitlines()]
    train = [e for e in events if e["phase"] == "train"]
    test = [e for e in events if e["phase"] == "test"]
    assert [e["iter"] for e in train] == [0, 10, 20, 30, 40]
    for e in train:
        assert set(e) == {"iter", "phase", "loss", "lr"}
        assert e["loss"] > 0 and 0 < e["lr"] <= 0.01
    assert train[0]["lr"] == pytest.approx(0.01)          # inv policy at iteration 0
    assert [e["iter"] for e in test] == [0, 20, 40]       # test_initialization, as Caffe
    for e in test:
        assert e["net"] == 0 and set(e) == {"iter", "phase", "net", "accuracy", "loss"}
        assert 0 <= e["accuracy"] <= 1
    # The structured log agrees with Caffe's log lines, on stderr.
    assert "Iteration 20, Testing net (#0)" in result.stderr
    assert f"Test net output #0: accuracy = {test[1]['accuracy']:.6g}" in result.stderr
    assert read_training_log(path) == events


def test_csv_log_is_one_table(logs):
    path, _ = logs["csv"]
    rows = list(csv.reader(path.read_text().splitlines()))
    assert rows[0] == ["iter", "phase", "net", "name", "value"]
    body = rows[1:]
    assert [r[:4] for r in body[:4]] == [["0", "test", "0", "accuracy"], ["0", "test", "0", "loss"],
                                         ["0", "train", "", "loss"], ["0", "train", "", "lr"]]
    assert sum(r[1] == "train" and r[3] == "loss" for r in body) == 5
    tests = [r for r in body if r[1] == "test"]
    assert {(r[0], r[2], r[3]) for r in tests} == {
        (it, "0", name) for it in ("0", "20", "40") for name in ("accuracy", "loss")}
    events = read_training_log(path)
    assert [e["iter"] for e in events if e["phase"] == "test"] == [0, 20, 40]
    assert all(e["net"] == 0 and 0 <= e["accuracy"] <= 1
               for e in events if e["phase"] == "test")


def test_events_reach_python_listeners_and_log_round_trips(tmp_path):
    log = tmp_path / "x.csv"
    events = [{"iter": 0, "phase": "train", "loss": 2.5, "lr": 0.1},
              {"iter": 5, "phase": "test", "net": 1, "accuracy": 0.5, "prob[0]": 0.25}]
    with TrainingLog(log) as writer:
        for e in events:
            writer(e)
    assert read_training_log(log) == events
    with TrainingLog(tmp_path / "x.jsonl") as writer:
        writer(events[0])
        # Flushed event by event: readable before the writer is closed.
        assert read_training_log(tmp_path / "x.jsonl") == events[:1]


def test_plot_training_log_writes_a_png(logs, tmp_path):
    pytest.importorskip("matplotlib")
    for kind in ("jsonl", "csv"):
        out = tmp_path / f"curves-{kind}.png"
        r = tool("plot_training_log", logs[kind][0], out, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"Wrote {out}" in r.stdout
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".plot-")] == []


def test_plot_training_log_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"iter": 0, "phase": "train", "loss": 1.0, "lr": 0.1}\n{"iter": 10, "loss\n')
    cases = [(tmp_path / "missing.jsonl", "no such training log"),
             (bad, f"{bad}:2:")]
    for log, fragment in cases:
        r = tool("plot_training_log", log, tmp_path / "out.png", cwd=tmp_path)
        assert r.returncode == 1
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        assert lines[0].startswith("plot_training_log: error:") and fragment in lines[0]
        assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("text, fragment", [
    ('{"iter": 0, "phase": "train"}\n[1, 2]\n', ":2: not a JSON object"),
    ('\n{"phase": "train", "loss": 1}\n', ":2: an event needs an integer 'iter'"),
    ('{"iter": 0, "phase": "test", "net": 0, "accuracy": "high"}\n', ":1: 'accuracy' is not"),
])
def test_malformed_json_lines_name_the_line(tmp_path, text, fragment):
    path = tmp_path / "log.jsonl"
    path.write_text(text)
    with pytest.raises(DataError, match="log.jsonl" + fragment):
        read_training_log(path)


@pytest.mark.parametrize("text, fragment", [
    ("iter,loss\n", ":1: a CSV training log starts with the header"),
    ("iter,phase,net,name,value\n0,train,,loss,1.0\n0,train,,lr\n", ":3: expected 5 fields"),
    ("iter,phase,net,name,value\nten,train,,loss,1.0\n", ":2: iter, net and value"),
    ("iter,phase,net,name,value\n0,val,,loss,1.0\n", ":2: phase must be"),
])
def test_malformed_csv_names_the_line(tmp_path, text, fragment):
    path = tmp_path / "log.csv"
    path.write_text(text)
    with pytest.raises(DataError, match="log.csv" + fragment):
        read_training_log(path)


def test_no_progress_bar_when_stderr_is_not_a_tty(logs):
    _, result = logs["jsonl"]
    # Only Caffe's log lines, each whole on its line: no bar's carriage returns.
    assert "\r" not in result.stderr and "it/s" not in result.stderr
    assert all(re.match(r"[IWEF]\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ \w+\.py:\d+\] ", line)
               for line in result.stderr.splitlines())
    from cyffe.tools.train_net import progress_bar
    assert progress_bar(10, io.StringIO()) is None


def test_progress_bar_on_a_tty(tmp_path):
    pytest.importorskip("tqdm")
    pty = pytest.importorskip("pty")
    import fcntl
    import struct
    import termios
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "cyffe.tools.train_net", *map(str, SHORT_RUN),
                             "--max-iter", "20"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:                   # the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    stdout = proc.stdout.read()
    assert proc.wait(timeout=300) == 0
    os.close(master)
    bar = b"".join(chunks).decode(errors="replace")
    assert "20/20" in bar and "loss=" in bar and "img/s=" in bar
    # Caffe's log lines go to stderr above the bar (tqdm.write), whole; stdout has none.
    assert "Iteration 10 (" in bar and "Optimization Done." in bar
    assert "Iteration 10 (" not in stdout
