"""Where the team's reference data lives: ../shared beside the checkout, or $CYFFE_SHARED."""
import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("CYFFE_SHARED", Path(__file__).resolve().parents[3] / "shared"))


def shared_path(*parts):
    """A path under the shared folder; skips the calling test if it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: put the team's shared/ folder beside the checkout "
                    "or set CYFFE_SHARED")
    return path
