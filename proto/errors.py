"""cyffe's exception types.

They live in proto/ because it sits at the bottom of the import graph: every
other package may raise them. Each message names the file, line, layer or blob
at fault, so a tool can print it as one line.
"""


def did_you_mean(word, known):
    """"; did you mean 'x'?" when one of `known` is close to `word` (a typo), else ""."""
    import difflib
    by_case = {k.lower(): k for k in known}
    close = difflib.get_close_matches(word.lower(), list(by_case), n=1, cutoff=0.75)
    return f"; did you mean '{by_case[close[0]]}'?" if close else ""


def at(where):
    """The "where: " that begins a message about something read in `where` (nothing for None)."""
    return f"{where}: " if where else ""


class CyffeError(Exception):
    """Base class of every error cyffe raises on bad input."""


class ProtoError(CyffeError, ValueError):
    """A prototxt or binary proto file that cannot be read (file:line:col)."""


class NetError(CyffeError, ValueError):
    """A net that cannot be wired: unknown layer type, missing bottom, cycle."""


class ShapeError(CyffeError, ValueError):
    """Blobs whose shapes do not fit the layer that uses them."""


class DataError(CyffeError, OSError):
    """A data or weights file that is missing, unreadable or malformed."""


class NonFiniteError(CyffeError, FloatingPointError):
    """A NaN or inf loss or activation during training."""
