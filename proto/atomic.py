"""Writing a file (or a folder) so that a reader never sees half of it.

Everything is written under a temporary name beside the target, then renamed
over it: a rename within one folder is atomic, so the target is either the old
file or the whole new one, whatever interrupts the write.
"""
import contextlib
import os
import secrets
import shutil

from .errors import CyffeError, DataError


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary name beside path to create the file at; rename it over path on success.

        with atomic_path("w.caffemodel.h5") as tmp:
            h5py.File(tmp, "w") ...        # or open(tmp, "xb"), fig.savefig(tmp), lmdb.open(tmp)

    The name is fresh and nothing exists there yet: the caller creates the file
    (or folder) itself, so it gets the mode open() gives (0o666 less the umask),
    not a temporary file's 0o600. If the body raises, whatever it made there is
    removed and the error goes on; an OSError becomes a DataError naming path.
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".tmp-{secrets.token_hex(6)}-{name}")
    try:
        os.makedirs(folder, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except BaseException as err:
        _remove(tmp)
        if isinstance(err, OSError) and not isinstance(err, CyffeError):
            raise DataError(f"{path}: cannot write: {err.strerror or err}") from None
        raise


def write_bytes(path, data):
    """Write data (bytes) to path atomically (see atomic_path)."""
    with atomic_path(path) as tmp, open(tmp, "xb") as f:
        f.write(data)


def _remove(tmp):
    """Remove what a failed write left at tmp: a file, a folder or nothing."""
    if os.path.isdir(tmp) and not os.path.islink(tmp):
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):      # never hide the error that got us here
            os.unlink(tmp)
