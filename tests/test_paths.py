"""Relative paths in prototxt and solver files (proto/paths.py): Caffe's working directory first."""
import os

import pytest

from cyffe.proto.paths import resolve_path


@pytest.fixture
def two_places(tmp_path, monkeypatch):
    """A working directory and a file's folder, each with its own data/x.txt."""
    for where in ("cwd", "nets"):
        (tmp_path / where / "data").mkdir(parents=True)
        (tmp_path / where / "data" / "x.txt").write_text(where)
    monkeypatch.chdir(tmp_path / "cwd")
    return str(tmp_path / "nets")


def test_the_working_directory_comes_first_as_in_caffe(two_places):
    assert resolve_path("data/x.txt", two_places) == "data/x.txt"


def test_beside_the_file_when_the_working_directory_lacks_it(two_places):
    os.remove("data/x.txt")
    assert resolve_path("data/x.txt", two_places) == os.path.join(two_places, "data/x.txt")


def test_neither_gives_the_path_as_written(two_places):
    assert resolve_path("data/none.txt", two_places) == "data/none.txt"
    assert resolve_path("data/none.txt", None) == "data/none.txt"


def test_an_absolute_path_is_taken_as_it_is(two_places, tmp_path):
    missing = str(tmp_path / "none.txt")
    assert resolve_path(missing, two_places) == missing
