"""Structured training logs: write a solver's events as JSON lines or CSV, read them, plot them.

    log = TrainingLog("run.jsonl")          # or "run.csv"
    solver.add_event_listener(log)
    solver.solve(); log.close()
    plot_training_log("run.jsonl", "run.png")

JSON lines (any name not ending in .csv): one object per line, the solver's event
as it is, e.g.

    {"iter": 100, "phase": "train", "loss": 0.31, "lr": 0.0099}
    {"iter": 500, "phase": "test", "net": 0, "accuracy": 0.97, "loss": 0.09}

CSV (a name ending in .csv): one table with the header `iter,phase,net,name,value`
and one row per number of an event (`net` is empty for training rows):

    100,train,,loss,0.31
    100,train,,lr,0.0099
    500,test,0,accuracy,0.97

Every event is written and flushed as it comes, so a run that crashes leaves a
log that reads up to its last complete event.
"""
import csv
import json
import math
import os

from ...proto.atomic import atomic_path
from ...proto.errors import DataError

CSV_HEADER = ("iter", "phase", "net", "name", "value")
_KEYS = ("iter", "phase", "net")


def is_csv(path):
    return str(path).lower().endswith(".csv")


class TrainingLog:
    """An event listener that appends each event to `path` (JSON lines, or CSV for *.csv)."""

    def __init__(self, path):
        self.path = str(path)
        self.csv = is_csv(path)
        self._file = open(self.path, "w", newline="" if self.csv else None, encoding="utf-8")
        if self.csv:
            self._writer = csv.writer(self._file, lineterminator="\n")
            self._writer.writerow(CSV_HEADER)
            self._file.flush()

    def __call__(self, event):
        if self.csv:
            net = event.get("net", "")
            for name, value in event.items():
                if name not in _KEYS:
                    self._writer.writerow((event["iter"], event["phase"], net, name,
                                           repr(float(value))))
        else:
            self._file.write(json.dumps(event) + "\n")
        self._file.flush()

    def close(self):
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_training_log(path):
    """The events of a log written by TrainingLog, as a list of dicts.

    Raises DataError naming the file (and the line number) when it is missing or
    a line is malformed.
    """
    path = str(path)
    try:
        with open(path, encoding="utf-8", newline="") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: no such training log") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read the training log: {e}") from None
    return _read_csv(path, lines) if is_csv(path) else _read_jsonl(path, lines)


def _read_jsonl(path, lines):
    events = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError as e:
            raise DataError(f"{path}:{number}: not a JSON object ({e.msg})") from None
        if not isinstance(event, dict):
            raise DataError(f"{path}:{number}: not a JSON object")
        _check_event(path, number, event)
        events.append(event)
    return events


def _check_event(path, number, event):
    if not isinstance(event.get("iter"), int) or event.get("phase") not in ("train", "test"):
        raise DataError(f"{path}:{number}: an event needs an integer 'iter' and a 'phase' "
                        "of 'train' or 'test'")
    for name, value in event.items():
        if name not in _KEYS and (isinstance(value, bool)
                                  or not isinstance(value, (int, float))):
            raise DataError(f"{path}:{number}: {name!r} is not a number ({value!r})")


def _read_csv(path, lines):
    rows = list(csv.reader(lines))
    if not rows or tuple(rows[0]) != CSV_HEADER:
        raise DataError(f"{path}:1: a CSV training log starts with the header "
                        f"{','.join(CSV_HEADER)}")
    events, key = [], None
    for number, row in enumerate(rows[1:], 2):
        if not row:
            continue
        if len(row) != len(CSV_HEADER):
            raise DataError(f"{path}:{number}: expected {len(CSV_HEADER)} fields "
                            f"({','.join(CSV_HEADER)}), got {len(row)}")
        it, phase, net, name, value = row
        try:
            event_key = (int(it), phase, int(net) if net else None)
            number_value = float(value)
        except ValueError:
            raise DataError(f"{path}:{number}: iter, net and value must be numbers "
                            f"(got {','.join(row)})") from None
        if phase not in ("train", "test"):
            raise DataError(f"{path}:{number}: phase must be 'train' or 'test' (got {phase!r})")
        if event_key != key or name in events[-1]:
            key = event_key
            events.append({"iter": key[0], "phase": phase})
            if key[2] is not None:
                events[-1]["net"] = key[2]
        events[-1][name] = number_value
    return events


def plot_training_log(log, out, title=None):
    """Plot training loss, learning rate and every test output over iterations to `out` (PNG).

    `log` is a log path or a list of events. Needs matplotlib (pip install
    "cyffe[plot]"); the image is written atomically (a temporary file, then renamed).
    """
    # The log first: a missing or malformed log is the error to report, matplotlib or not.
    events = read_training_log(log) if isinstance(log, (str, os.PathLike)) else list(log)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError('plotting a training log needs matplotlib: '
                          'pip install "cyffe[plot]"') from None
    train = [e for e in events if e["phase"] == "train"]
    tests = {}
    for e in (e for e in events if e["phase"] == "test"):
        for name, value in e.items():
            if name not in _KEYS:
                tests.setdefault((e.get("net", 0), name), []).append((e["iter"], value))

    fig, (ax_loss, ax_lr, ax_test) = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    if title:
        fig.suptitle(title)
    _curve(ax_loss, [(e["iter"], e.get("loss")) for e in train], "training loss")
    ax_loss.set_ylabel("loss")
    _curve(ax_lr, [(e["iter"], e.get("lr")) for e in train], "learning rate")
    ax_lr.set_ylabel("learning rate")
    for (net, name), points in sorted(tests.items()):
        _curve(ax_test, points, f"test #{net}: {name}", marker="o")
    ax_test.set_ylabel("test outputs")
    ax_test.set_xlabel("iteration")
    for ax in (ax_loss, ax_lr, ax_test):
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize="small")
        else:
            ax.text(0.5, 0.5, "no data in the log", ha="center", va="center",
                    transform=ax.transAxes)
    fig.tight_layout()
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)


def _curve(ax, points, label, marker=None):
    points = [(i, v) for i, v in points if v is not None and math.isfinite(v)]
    if points:
        xs, ys = zip(*points)
        ax.plot(xs, ys, label=label, marker=marker)
