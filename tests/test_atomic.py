"""Atomic writes (proto/atomic.py): all or nothing, and the mode a plain open() gives."""
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest

import cyffe
from cyffe.net.analysis.drawing import draw_net_to_file
from cyffe.net.analysis.training_log import plot_training_log
from cyffe.layers.pipeline.databases import write_lmdb
from cyffe.proto.atomic import atomic_path, write_bytes
from cyffe.proto.io import write_text
from cyffe.tools.convert_digits import write_h5

TINY = '''name: "tiny"
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
        inner_product_param { num_output: 2 } }
'''


@pytest.fixture(params=[0o022, 0o077])
def umask(request):
    """Run the test under this umask; the process's comes back afterwards."""
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def leftovers(folder):
    return [p for p in os.listdir(folder) if p.startswith(".tmp")]


def plot_log(path):
    pytest.importorskip("matplotlib")
    plot_training_log([{"iter": 0, "phase": "train", "loss": 1.0, "lr": 0.1}], path)


WRITERS = {
    "bytes": lambda path: write_bytes(path, b"abc"),
    "caffemodel": lambda path: cyffe.Net(TINY).save(path),
    "caffemodel.h5": lambda path: cyffe.Net(TINY).save(path + ".h5"),
    "prototxt": lambda path: write_text(cyffe.Net(TINY).param, path),
    "dot": lambda path: draw_net_to_file(TINY, path + ".dot"),
    "training log png": lambda path: plot_log(path + ".png"),
    "digits h5": lambda path: write_h5(path + ".h5", np.zeros((2, 1, 8, 8)), np.zeros(2)),
}


@pytest.mark.parametrize("writer", WRITERS)
def test_every_writer_gives_the_mode_open_gives(writer, umask, tmp_path):
    WRITERS[writer](str(tmp_path / "out"))
    (written,) = tmp_path.iterdir()
    assert mode(written) == 0o666 & ~umask
    assert leftovers(tmp_path) == []


def test_an_lmdb_folder_gets_the_mode_mkdir_gives(umask, tmp_path):
    write_lmdb(tmp_path / "db", [(b"0", b"x")], 1 << 20)
    assert mode(tmp_path / "db") == 0o777 & ~umask
    assert mode(tmp_path / "db" / "data.mdb") == 0o666 & ~umask
    assert leftovers(tmp_path) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "w.caffemodel"
    path.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(path) as tmp:
            with open(tmp, "xb") as f:
                f.write(b"half")
            raise KeyboardInterrupt
    assert path.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_a_folder_is_written_whole_or_not_at_all(tmp_path):
    with atomic_path(tmp_path / "db") as tmp:
        os.mkdir(tmp)
        Path(tmp, "data.mdb").write_bytes(b"")
    assert os.listdir(tmp_path / "db") == ["data.mdb"]
    with pytest.raises(ValueError):
        with atomic_path(tmp_path / "db2") as tmp:
            os.mkdir(tmp)
            raise ValueError("stop")
    assert sorted(os.listdir(tmp_path)) == ["db"]


def test_a_write_error_is_a_data_error_naming_the_path(tmp_path):
    target = tmp_path / "w.caffemodel"
    with pytest.raises(cyffe.DataError, match=re.escape(f"{target}: cannot write")):
        with atomic_path(target) as tmp:
            raise OSError(28, "No space left on device", tmp)
    assert leftovers(tmp_path) == []
    blocked = tmp_path / "file"
    blocked.write_bytes(b"")
    with pytest.raises(cyffe.DataError, match="cannot write"):
        write_bytes(blocked / "w.caffemodel", b"abc")


def test_write_bytes_creates_the_folder_and_replaces_the_file(tmp_path):
    path = tmp_path / "a" / "b" / "x.bin"
    write_bytes(path, b"one")
    write_bytes(path, b"two")
    assert path.read_bytes() == b"two"
    assert leftovers(path.parent) == []
