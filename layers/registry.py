"""The registry: Caffe type name -> Layer class.

Layer classes register themselves by defining `type` (see base.Layer). Every
module in layers/ is imported on first lookup, so adding a layer is adding a
file; there is no list to keep.
"""
import importlib
import pkgutil

from ..proto.errors import NetError, did_you_mean

_classes = {}
_loaded = False


def register(cls):
    """Record cls under its Caffe type name."""
    existing = _classes.get(cls.type)
    if existing is not None and existing is not cls:
        raise NetError(f"layer type {cls.type!r} is registered twice: "
                       f"{existing.__module__} and {cls.__module__}")
    _classes[cls.type] = cls
    return cls


def _load_all():
    global _loaded
    if _loaded:
        return
    package = importlib.import_module(__package__)
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{__package__}.{info.name}")
    _loaded = True


def layer_types():
    """The registered type names, sorted."""
    _load_all()
    return sorted(_classes)


def layer_class(type_name, where=""):
    """The class for type_name; a NetError listing the known types if there is none."""
    _load_all()
    try:
        return _classes[type_name]
    except KeyError:
        prefix = f"{where}: " if where else ""
        known = layer_types()
        hint = did_you_mean(type_name, known)
        listed = (f" ({len(known)} known types: cyffe.layer_type_list())" if hint
                  else f"; known types: {', '.join(known)}")
        raise NetError(f"{prefix}unknown layer type {type_name!r}{hint}{listed}") from None
