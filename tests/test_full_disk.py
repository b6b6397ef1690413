"""A full disk: every file cyffe writes fails with one DataError naming it, leaving nothing.

The disk is a 256 KiB tmpfs mounted in a user and mount namespace of our own
(`unshare -rm`), so no privilege is needed; where the machine does not allow such
namespaces the test is skipped, saying so.
"""
import shutil
import subprocess
import sys
import textwrap

import pytest

WRITES = textwrap.dedent("""
    import os, sys
    import numpy as np
    import cyffe
    from cyffe.layers.pipeline.databases import write_lmdb
    from cyffe.proto.solverstate import write_solver_state

    disk = sys.argv[1]
    net = cyffe.Net('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 '
                    'dim: 100 } } } layer { name: "ip" type: "InnerProduct" bottom: "x" '
                    'top: "y" inner_product_param { num_output: 1000 } }', cyffe.TEST)
    big = [np.ones(200000, np.float32)]
    writes = {
        "w.caffemodel.h5": lambda p: net.save(p),
        "w.caffemodel": lambda p: net.save(p),
        "s.solverstate.h5": lambda p: write_solver_state(p, 1, "w", 0, big),
        "s.solverstate": lambda p: write_solver_state(p, 1, "w", 0, big),
        "db": lambda p: write_lmdb(p, ((b"%08d" % i, bytes(4096)) for i in range(200)),
                                   1 << 24),
    }
    for name, write in writes.items():
        path = os.path.join(disk, name)
        try:
            write(path)
            print(name, "WROTE")
        except cyffe.CyffeError as err:
            print(name, type(err).__name__, name in str(err), os.listdir(disk))
        except BaseException as err:
            print(name, "UNCLEAN", type(err).__name__, err)
""")


def namespaces_work():
    if shutil.which("unshare") is None:
        return "there is no unshare command"
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt"],
                           capture_output=True, text=True)
    if probe.returncode:
        return f"this machine refuses user+mount namespaces: {probe.stderr.strip()}"
    return None


@pytest.mark.skipif(namespaces_work() is not None, reason=str(namespaces_work()))
def test_every_write_to_a_full_disk_fails_cleanly(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    script = tmp_path / "writes.py"
    script.write_text(WRITES)
    run = subprocess.run(
        ["unshare", "-rm", "sh", "-c",
         f'mount -t tmpfs -o size=256k tmpfs "$1" && exec "{sys.executable}" "$2" "$1"', "sh",
         str(disk), str(script)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    lines = dict(line.split(" ", 1) for line in run.stdout.splitlines())
    assert sorted(lines) == ["db", "s.solverstate", "s.solverstate.h5", "w.caffemodel",
                             "w.caffemodel.h5"]
    for name, result in lines.items():
        assert result == "DataError True []", (name, result)
