"""The compute: one module per layer type, plus the Blob, the Layer contract, the registry.

As pycaffe's `caffe.layers` (imported `as L`), attribute access with a Caffe
type name gives a NetSpec layer factory: `L.Convolution(n.data, num_output=20)`.
Submodules are lowercase, type names capitalized, so the two never meet.
"""


def __getattr__(name):
    if not name[:1].isupper():
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from ..proto.netspec import layer_factory
    return layer_factory(name)
