"""NetSpec: build a NetParameter in Python, as pycaffe's caffe.net_spec.

    from cyffe import layers as L, params as P
    n = cyffe.NetSpec()
    n.data, n.label = L.Input(shape=[dict(dim=[64, 1, 28, 28]), dict(dim=[64])], ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20, weight_filler=dict(type="xavier"))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.loss = L.SoftmaxWithLoss(n.pool1, n.label)
    n.to_proto()                                  # the NetParameter

`L.<Type>(*bottoms, **kwargs)` makes a layer of that Caffe type. Its tops and
its name are the attribute names they are assigned to (unassigned ones get
`<Type><k>` names, as pycaffe). A keyword goes to the layer's own parameter
message when that has the field (Convolution -> convolution_param), else to
the LayerParameter (name, loss_weight, param, include, propagate_down, ...);
keywords ending in `_param` name a parameter message of the layer directly.
`ntop=` sets the number of tops (0 returns the layer itself, for Silence),
`in_place=True` writes the top over the first bottom.
"""
import types
from collections import Counter, OrderedDict

from ..proto import cyffe_pb2 as pb
from ..proto.errors import NetError, NotATopError

# Types whose parameter message is not named after them, and the messages a
# type reads besides its own (losses read loss_param: ignore_label, normalization).
_EXTRA_PARAMS = {
    "Deconvolution": ["convolution_param"],
    "Im2col": ["convolution_param"],
    "SoftmaxWithLoss": ["softmax_param"],
    "RNN": ["recurrent_param"],
    "LSTM": ["recurrent_param"],
}


def _params_by_type():
    """Caffe type name -> its parameter field, from the `<Type>Parameter` message names."""
    table = {}
    for field in pb.LayerParameter.DESCRIPTOR.fields:
        if field.name.endswith("_param") and field.message_type is not None:
            table[field.message_type.name[:-len("Parameter")]] = field.name
    return table


_PARAM_OF_TYPE = _params_by_type()


def param_fields(type_name):
    """The LayerParameter fields that hold type_name's parameters, most specific first."""
    fields = [_PARAM_OF_TYPE[type_name]] if type_name in _PARAM_OF_TYPE else []
    fields += _EXTRA_PARAMS.get(type_name, [])
    if type_name.endswith("Loss"):
        fields.append("loss_param")
    return fields


def param_message(type_name):
    """The `<Type>Parameter` message class of a layer type (Deconvolution: ConvolutionParameter)."""
    fields = param_fields(type_name)
    if not fields:
        raise AttributeError(f"layer type {type_name!r} has no parameter message")
    return getattr(pb, pb.LayerParameter.DESCRIPTOR.fields_by_name[fields[0]].message_type.name)


def assign(message, name, value, where):
    """Set message.name from a Python value: lists for repeated fields, dicts for messages."""
    field = message.DESCRIPTOR.fields_by_name.get(name)
    if field is None:
        raise NetError(f"{where}: {message.DESCRIPTOR.name} has no field {name!r}")
    repeated = field.is_repeated
    if repeated and not isinstance(value, (list, tuple)):
        value = [value]
    try:
        if field.message_type is not None:
            items = value if repeated else [value]
            for item in items:
                target = getattr(message, name).add() if repeated else getattr(message, name)
                if isinstance(item, dict):
                    for key, sub in item.items():
                        assign(target, key, sub, where)
                elif isinstance(item, type(target)):
                    target.CopyFrom(item)
                else:
                    raise NetError(f"{where}: field {name!r} takes a dict (a "
                                   f"{field.message_type.name}), not {item!r}")
        else:
            if field.enum_type is not None:
                value = [_enum_value(field, v, where) for v in value] if repeated else \
                    _enum_value(field, value, where)
            if repeated:
                getattr(message, name).extend(value)
            else:
                setattr(message, name, value)
    except (TypeError, ValueError) as err:
        if isinstance(err, NetError):
            raise
        raise NetError(f"{where}: bad value {value!r} for field {name!r}: {err}") from None


def _enum_value(field, value, where):
    if isinstance(value, str):
        known = field.enum_type.values_by_name
        if value not in known:
            raise NetError(f"{where}: {value!r} is not a value of {field.enum_type.name} "
                           f"for field {field.name!r}; known: {', '.join(known)}")
        return known[value].number
    return value


class Top:
    """One output blob of a layer made with L.<Type>; assign it to a NetSpec attribute."""

    def __init__(self, fn, n):
        self.fn = fn
        self.n = n

    def to_proto(self):
        """A NetParameter with the layers this top needs."""
        return to_proto(self)


class Function:
    """A layer in the making: its type, its bottoms (Tops) and its keyword parameters."""

    def __init__(self, type_name, inputs, params):
        self.type_name = type_name
        self.params = dict(params)
        self.ntop = self.params.pop("ntop", 1)
        self.in_place = self.params.pop("in_place", False)
        if isinstance(self.ntop, bool) or not isinstance(self.ntop, int) or self.ntop < 0:
            raise NetError(f"{type_name}: ntop must be a non-negative integer, not {self.ntop!r}")
        for i, inp in enumerate(inputs):
            if not isinstance(inp, Top):
                # pycaffe's wording, which its tests match exactly.
                raise NotATopError(f"{type_name} input {i} is not a Top (type is {type(inp)})")
        if self.in_place and not inputs:
            raise NetError(f"{type_name}: in_place=True needs a bottom")
        self.inputs = tuple(inputs)
        self.tops = tuple(Top(self, k) for k in range(self.ntop))

    def _top_name(self, top, names, autonames):
        if top not in names:
            autonames[self.type_name] += 1
            names[top] = f"{self.type_name}{autonames[self.type_name]}"
        return names[top]

    def _name(self, names, autonames):
        if self not in names:
            if self.tops:
                names[self] = self._top_name(self.tops[0], names, autonames)
            else:
                autonames[self.type_name] += 1
                names[self] = f"{self.type_name}{autonames[self.type_name]}"
        return names[self]

    def _to_proto(self, layers, names, autonames):
        if self in layers:
            return
        bottoms = []
        for inp in self.inputs:
            inp.fn._to_proto(layers, names, autonames)
            bottoms.append(layers[inp.fn].top[inp.n])
        layer = pb.LayerParameter(type=self.type_name, bottom=bottoms)
        if self.in_place:
            layer.top.extend(bottoms[:self.ntop])
        else:
            layer.top.extend(self._top_name(t, names, autonames) for t in self.tops)
        layer.name = self._name(names, autonames)
        where = f"layer '{layer.name}' ({self.type_name})"
        fields = param_fields(self.type_name)
        for key, value in self.params.items():
            if key.endswith("_param"):
                assign(layer, key, value, where)
                continue
            target = next((f for f in fields
                           if key in getattr(layer, f).DESCRIPTOR.fields_by_name), None)
            if target is not None:
                assign(getattr(layer, target), key, value, where)
            elif key in layer.DESCRIPTOR.fields_by_name:
                assign(layer, key, value, where)
            else:
                own = " or ".join(getattr(layer, f).DESCRIPTOR.name for f in fields)
                raise NetError(f"{where}: unknown parameter {key!r}: not a field of "
                               f"{own + ' or ' if own else ''}LayerParameter")
        layers[self] = layer


def to_proto(*tops):
    """A NetParameter with every layer the given tops depend on (pycaffe's to_proto)."""
    layers = OrderedDict()
    autonames = Counter()
    for top in tops:
        top.fn._to_proto(layers, {}, autonames)
    return pb.NetParameter(layer=list(layers.values()))


def layer_factory(type_name):
    """The callable L.<type_name>: (*bottoms, **params) -> a Top, a tuple of Tops, or the layer."""
    def make(*bottoms, **params):
        fn = Function(type_name, bottoms, params)
        if fn.ntop == 0:
            return fn
        return fn.tops[0] if fn.ntop == 1 else fn.tops
    make.__name__ = make.__qualname__ = type_name
    make.__doc__ = f"A {type_name} layer over the given bottoms (see cyffe.NetSpec)."
    return make


class NetSpec:
    """A net assembled in Python: assign tops to attributes, then call to_proto().

    Attribute (or item) names become the names of the tops and of the layers
    that make them, in assignment order.
    """

    def __init__(self):
        super().__setattr__("tops", OrderedDict())

    def __setattr__(self, name, value):
        self.tops[name] = value

    def __getattr__(self, name):
        try:
            return self.tops[name]
        except KeyError:
            raise AttributeError(f"NetSpec has no top {name!r}") from None

    def __setitem__(self, name, value):
        self.tops[name] = value

    def __getitem__(self, name):
        return self.tops[name]

    def __delitem__(self, name):
        del self.tops[name]

    def keys(self):
        """The assigned names, in order."""
        return list(self.tops)

    def vals(self):
        """The assigned tops, in order."""
        return list(self.tops.values())

    def to_proto(self):
        """The NetParameter: every assigned top's layer and what it depends on."""
        names = {}
        for name, top in self.tops.items():
            if not isinstance(top, (Top, Function)):
                raise NetError(f"NetSpec attribute {name!r} is {top!r}, not a top made with "
                               "cyffe.layers")
            names[top] = name
        layers = OrderedDict()
        autonames = Counter()
        for top in self.tops.values():
            (top if isinstance(top, Function) else top.fn)._to_proto(layers, names, autonames)
        return pb.NetParameter(layer=list(layers.values()))


class _Params(types.ModuleType):
    """cyffe.params (P): P.<Type> is the <Type>Parameter message, so P.Pooling.MAX is its enum."""

    def __getattr__(self, type_name):
        if type_name.startswith("_"):
            raise AttributeError(type_name)
        message = getattr(pb, type_name + "Parameter", None)
        if message is None:
            try:
                message = param_message(type_name)
            except AttributeError:
                raise AttributeError(f"cyffe.params: no {type_name}Parameter message") from None
        return message


params = _Params("cyffe.params", _Params.__doc__)
