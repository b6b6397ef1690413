"""cyffe's exception types.

They live in proto/ because it sits at the bottom of the import graph: every
other package may raise them. Each message names the file, line, layer or blob
at fault, so a tool can print it as one line. Where pycaffe raises a builtin
type for the same mistake, ours is that type too, so code written for pycaffe
catches it with the `except` it already has.
"""


class CyffeError(Exception):
    """Base class of every error cyffe raises on bad input."""


class ProtoError(CyffeError, ValueError):
    """A prototxt or binary proto file that cannot be read (file:line:col)."""


class NetError(CyffeError, ValueError, RuntimeError):
    """A net that cannot be wired: unknown layer type, missing bottom, cycle.

    A RuntimeError as well, as pycaffe's errors from C++ are.
    """


class NotATopError(NetError, TypeError):
    """NetSpec given something that is not a Top as a bottom (pycaffe's TypeError)."""


class ShapeError(CyffeError, ValueError):
    """Blobs whose shapes do not fit the layer that uses them."""


class DataError(CyffeError, OSError):
    """A data or weights file that is missing, unreadable or malformed."""


class NonFiniteError(CyffeError, FloatingPointError):
    """A NaN or inf loss or activation during training."""
