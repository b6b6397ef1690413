"""cyffe's exception types.

They live in proto/ because it sits at the bottom of the import graph: every
other package may raise them. Each message names the file, line, layer or blob
at fault, so a tool can print it as one line. Where pycaffe raises a builtin
type for the same mistake, ours is that type too, so code written for pycaffe
catches it with the `except` it already has.
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


class LayerError(CyffeError):
    """An exception raised inside a layer's own code, with the layer's name and type.

    The original exception is the __cause__, and the error is also an instance of
    the original's class (see wrap_layer_error), so `except ValueError` still catches it.
    """

    def __str__(self):
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


_wrappers = {}


def wrap_layer_error(err, where):
    """err, raised in a layer, as an error whose message starts with where (the layer).

    A CyffeError is returned as it is, but for a ShapeError that does not name the layer
    (a blob's own, over its size limit): that one gains where. Any other exception
    becomes a LayerError that is also an instance of err's class, or of the nearest
    class above it that takes a message alone.
    """
    if isinstance(err, CyffeError):
        if not isinstance(err, ShapeError) or where.split(": ")[-1].split(" (")[0] in str(err):
            return err
        cls = type(err)
    else:
        cls = _wrapper_class(type(err))
    try:
        return cls(f"{where}: {_describe(err)}")
    except Exception:                   # a class that wants more than a message
        return LayerError(f"{where}: {_describe(err)}")


def _describe(err):
    if isinstance(err, CyffeError):
        return str(err)
    text = str(err) if not isinstance(err, KeyError) else repr(err.args[0]) if err.args else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _wrapper_class(cls):
    """A LayerError class that is also a subclass of cls, or of the nearest class above it
    that can be one (and is made with a message alone)."""
    if cls not in _wrappers:
        made = LayerError
        for base in cls.__mro__:
            if base in (BaseException, object):
                break
            try:
                candidate = type(f"Layer{base.__name__}", (LayerError, base), {})
                candidate("test")
            except Exception:
                continue
            made = candidate
            break
        _wrappers[cls] = made
    return _wrappers[cls]
