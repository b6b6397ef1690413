"""Fixtures the test modules share."""
import pytest

from cyffe.layers import backend


@pytest.fixture
def mode(monkeypatch):
    """Lets a test switch the backend mode and device; the process's come back afterwards."""
    monkeypatch.setattr(backend, "_mode", backend.mode())
    monkeypatch.setattr(backend, "_device", backend.device())
    monkeypatch.setattr(backend, "_environment_error", None)
    return backend
