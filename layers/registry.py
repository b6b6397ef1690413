"""The registry: Caffe type name -> Layer class.

Layer classes register themselves by defining `type` (see base.Layer). A lookup
imports the module named for the type (ReLU: relu, InnerProduct: inner_product;
the few older names are in NAMED_OTHERWISE), so a net loads only the layer
modules it uses (each costs about 0.4 MB of memory); an unknown name, or
layer_types(), imports every module in layers/. Adding a layer is adding a file.
"""
import importlib
import importlib.util
import pkgutil
import re

from ..proto.errors import NetError, did_you_mean

_classes = {}
_loaded = False
# Modules not named for their type by module_names' rule.
NAMED_OTHERWISE = {"Convolution": "conv", "Deconvolution": "deconv", "Im2col": "im2col_layer",
                   "Python": "python_layer", "SigmoidCrossEntropyLoss": "sigmoid_ce_loss",
                   "SoftmaxWithLoss": "softmax_loss"}


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


def module_names(type_name):
    """The modules that may define type_name: snake_case (BatchNorm: batch_norm) and
    lowercase (ReLU: relu), or its entry in NAMED_OTHERWISE."""
    if type_name in NAMED_OTHERWISE:
        return [NAMED_OTHERWISE[type_name]]
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", type_name).lower()
    return list(dict.fromkeys([snake, type_name.lower()]))


def _load_for(type_name):
    """Import the module named for type_name, if there is one."""
    for name in module_names(type_name):
        if re.fullmatch(r"[a-z0-9_]+", name) and importlib.util.find_spec(
                f"{__package__}.{name}") is not None:
            importlib.import_module(f"{__package__}.{name}")
            if type_name in _classes:
                return


def layer_types():
    """The registered type names, sorted."""
    _load_all()
    return sorted(_classes)


def layer_class(type_name, where=""):
    """The class for type_name; a NetError listing the known types if there is none."""
    if type_name not in _classes:
        _load_for(type_name)
    if type_name not in _classes:
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
