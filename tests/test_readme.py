"""Every code block of README.md runs as written.

Blocks run in README order in one scratch folder with the repository's examples/ beside
them, so a later block finds what an earlier one wrote (the quick start's weights, say):
`python` blocks each in a fresh interpreter, `sh` blocks line by line in bash. `text` blocks
are synopses (a usage line), not commands. They run in a user's default environment: without
$CYFFE_BACKEND (the gpu-emulated run of the suite has other tests for that path). Two things in sh blocks are left to .ci/run, which
runs them as the README says: `pip install ...` (the tests run in that installation) and the
test suite itself (`pytest`: it would run this test again).
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
PIP_INSTALL = re.compile(r"^pip install [^&#]*(&&\s*|#.*)?")


def blocks():
    return BLOCK.findall(README.read_text())


def commands(body):
    """The commands of an sh block this test runs (see the module docstring)."""
    for line in body.splitlines():
        line = PIP_INSTALL.sub("", line.strip()).strip()
        if line and not re.search(r"(^|\s)pytest(\s|$)", line):
            yield line


def test_every_block_says_what_it_is():
    kinds = [kind for kind, _ in blocks()]
    assert kinds and set(kinds) <= {"sh", "python", "text"}, kinds


def test_the_sh_filter_keeps_the_command_after_the_install():
    assert list(commands('pip install . && train_net --proto n\n')) == ["train_net --proto n"]
    assert list(commands('pip install ".[test]" && pytest && X=1 pytest\n')) == []
    assert list(commands('pip install ".[mpi]" mpich     # comment\nmpiexec -n 2 t\n')) == [
        "mpiexec -n 2 t"]


def test_every_readme_block_runs_as_written(tmp_path):
    for tool in ("train_net", "cyffe", "classify"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not on PATH: install cyffe with pip as the README says")
    (tmp_path / "examples").symlink_to(REPO / "examples")
    env = {k: v for k, v in os.environ.items() if k != "CYFFE_BACKEND"}
    ran = 0
    for number, (kind, body) in enumerate(blocks(), 1):
        if kind == "python":
            runs = [[sys.executable, "-c", body]]
        elif kind == "sh":
            runs = [["bash", "-c", command] for command in commands(body)]
        else:
            continue
        for argv in runs:
            if argv[0] == "bash" and argv[2].startswith("mpiexec") and not shutil.which(
                    "mpiexec"):
                pytest.skip("mpiexec is not on PATH (pip install mpich)")
            r = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=600)
            assert r.returncode == 0, f"README block {number} ({kind}): {argv[-1]}\n{r.stderr}"
            ran += 1
            if argv[-1].startswith("classify "):
                assert len(r.stdout.strip().splitlines()) == 10, r.stdout
    assert ran >= 6
