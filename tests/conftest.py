"""Fixtures the test modules share."""
import pytest

from cyffe.layers import backend
from cyffe.net import glog


@pytest.fixture
def mode(monkeypatch):
    """Lets a test switch the backend mode and device; the process's come back afterwards."""
    monkeypatch.setattr(backend, "_mode", backend.mode())
    monkeypatch.setattr(backend, "_device", backend.device())
    monkeypatch.setattr(backend, "_environment_error", None)
    return backend


@pytest.fixture(autouse=True)
def _fresh_log():
    """Each test starts with cyffe's default logging (a train_net run in-process changes it)."""
    glog.reset_log()
    yield
    glog.reset_log()
