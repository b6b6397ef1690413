"""Old Caffe nets made new, as Caffe's upgrade_proto does.

Caffe's net format changed three times; a net of any age becomes today's
NetParameter in the order Caffe applies the steps:

* V0 (`layers { layer { type: "conv" num_output: 96 } bottom top }`): every
  setting on the layer itself; "padding" layers fold into the conv or pool
  layer they feed. V0 becomes V1.
* old data transformation fields (`data_param { scale mean_file crop_size
  mirror }`) move into `transform_param`.
* V1 (`layers { type: CONVOLUTION blobs_lr weight_decay }`): enum types,
  per-blob lists. V1 becomes `layer { type: "Convolution" param { lr_mult
  decay_mult } }`, blobs (the weights of a V1 .caffemodel) included.
* net-level `input:` with `input_shape:` or `input_dim:` becomes an Input layer
  in front.
* BatchNorm layers with three param specs get lr_mult 0 and decay_mult 0.

What Caffe upgrades with a logged warning and goes on (a V0 setting that has no
meaning for its layer type, a net with both `layer` and `layers`), this module
upgrades with an UpgradeWarning naming the layer and the setting; what Caffe
refuses, it refuses with a ProtoError.
"""
import warnings

from . import cyffe_pb2 as pb
from .errors import ProtoError

V1 = pb.V1LayerParameter

# V0's type strings -> V1's enum (Caffe's UpgradeV0LayerType).
_V0_TYPES = {
    "accuracy": V1.ACCURACY, "bnll": V1.BNLL, "concat": V1.CONCAT, "conv": V1.CONVOLUTION,
    "data": V1.DATA, "dropout": V1.DROPOUT, "euclidean_loss": V1.EUCLIDEAN_LOSS,
    "flatten": V1.FLATTEN, "hdf5_data": V1.HDF5_DATA, "hdf5_output": V1.HDF5_OUTPUT,
    "im2col": V1.IM2COL, "images": V1.IMAGE_DATA, "infogain_loss": V1.INFOGAIN_LOSS,
    "innerproduct": V1.INNER_PRODUCT, "lrn": V1.LRN,
    "multinomial_logistic_loss": V1.MULTINOMIAL_LOGISTIC_LOSS, "pool": V1.POOLING,
    "relu": V1.RELU, "sigmoid": V1.SIGMOID, "softmax": V1.SOFTMAX,
    "softmax_loss": V1.SOFTMAX_LOSS, "split": V1.SPLIT, "tanh": V1.TANH,
    "window_data": V1.WINDOW_DATA,
}

# A V0 setting -> {V0 type: "param_message.field"} (Caffe's UpgradeV0LayerParameter);
# "*" means every type.
_DATA_SOURCES = {"data": "data_param", "hdf5_data": "hdf5_data_param",
                 "images": "image_data_param", "window_data": "window_data_param"}
_V0_FIELDS = {
    "num_output": {"conv": "convolution_param.num_output",
                   "innerproduct": "inner_product_param.num_output"},
    "biasterm": {"conv": "convolution_param.bias_term",
                 "innerproduct": "inner_product_param.bias_term"},
    "weight_filler": {"conv": "convolution_param.weight_filler",
                      "innerproduct": "inner_product_param.weight_filler"},
    "bias_filler": {"conv": "convolution_param.bias_filler",
                    "innerproduct": "inner_product_param.bias_filler"},
    "pad": {"conv": "convolution_param.pad", "pool": "pooling_param.pad"},
    "kernelsize": {"conv": "convolution_param.kernel_size", "pool": "pooling_param.kernel_size"},
    "group": {"conv": "convolution_param.group"},
    "stride": {"conv": "convolution_param.stride", "pool": "pooling_param.stride"},
    "pool": {"pool": "pooling_param.pool"},
    "dropout_ratio": {"dropout": "dropout_param.dropout_ratio"},
    "local_size": {"lrn": "lrn_param.local_size"},
    "alpha": {"lrn": "lrn_param.alpha"},
    "beta": {"lrn": "lrn_param.beta"},
    "k": {"lrn": "lrn_param.k"},
    "source": {**{t: f"{p}.source" for t, p in _DATA_SOURCES.items()},
               "infogain_loss": "infogain_loss_param.source"},
    "scale": {"*": "transform_param.scale"},
    "meanfile": {"*": "transform_param.mean_file"},
    "cropsize": {"*": "transform_param.crop_size"},
    "mirror": {"*": "transform_param.mirror"},
    "batchsize": {t: f"{p}.batch_size" for t, p in _DATA_SOURCES.items()},
    "rand_skip": {"data": "data_param.rand_skip", "images": "image_data_param.rand_skip"},
    "shuffle_images": {"images": "image_data_param.shuffle"},
    "new_height": {"images": "image_data_param.new_height"},
    "new_width": {"images": "image_data_param.new_width"},
    "concat_dim": {"concat": "concat_param.concat_dim"},
    "det_fg_threshold": {"window_data": "window_data_param.fg_threshold"},
    "det_bg_threshold": {"window_data": "window_data_param.bg_threshold"},
    "det_fg_fraction": {"window_data": "window_data_param.fg_fraction"},
    "det_context_pad": {"window_data": "window_data_param.context_pad"},
    "det_crop_mode": {"window_data": "window_data_param.crop_mode"},
    "hdf5_output_param": {"hdf5_output": "hdf5_output_param"},
}

# V1's enum -> today's type name (Caffe's UpgradeV1LayerType).
_V1_TYPES = {
    V1.NONE: "", V1.ABSVAL: "AbsVal", V1.ACCURACY: "Accuracy", V1.ARGMAX: "ArgMax",
    V1.BNLL: "BNLL", V1.CONCAT: "Concat", V1.CONTRASTIVE_LOSS: "ContrastiveLoss",
    V1.CONVOLUTION: "Convolution", V1.DECONVOLUTION: "Deconvolution", V1.DATA: "Data",
    V1.DROPOUT: "Dropout", V1.DUMMY_DATA: "DummyData", V1.EUCLIDEAN_LOSS: "EuclideanLoss",
    V1.ELTWISE: "Eltwise", V1.EXP: "Exp", V1.FLATTEN: "Flatten", V1.HDF5_DATA: "HDF5Data",
    V1.HDF5_OUTPUT: "HDF5Output", V1.HINGE_LOSS: "HingeLoss", V1.IM2COL: "Im2col",
    V1.IMAGE_DATA: "ImageData", V1.INFOGAIN_LOSS: "InfogainLoss",
    V1.INNER_PRODUCT: "InnerProduct", V1.LRN: "LRN", V1.MEMORY_DATA: "MemoryData",
    V1.MULTINOMIAL_LOGISTIC_LOSS: "MultinomialLogisticLoss", V1.MVN: "MVN",
    V1.POOLING: "Pooling", V1.POWER: "Power", V1.RELU: "ReLU", V1.SIGMOID: "Sigmoid",
    V1.SIGMOID_CROSS_ENTROPY_LOSS: "SigmoidCrossEntropyLoss", V1.SILENCE: "Silence",
    V1.SOFTMAX: "Softmax", V1.SOFTMAX_LOSS: "SoftmaxWithLoss", V1.SPLIT: "Split",
    V1.SLICE: "Slice", V1.TANH: "TanH", V1.WINDOW_DATA: "WindowData",
    V1.THRESHOLD: "Threshold",
}

# The data layers whose own parameters once held the transformation fields.
_OLD_TRANSFORM_HOLDERS = {V1.DATA: "data_param", V1.IMAGE_DATA: "image_data_param",
                          V1.WINDOW_DATA: "window_data_param"}
_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")


class UpgradeWarning(UserWarning):
    """A setting of an old net that the upgrade could not carry over (Caffe logs and goes on)."""


def net_needs_upgrade(param):
    """Whether upgrade_net would change param (any of the old forms is present)."""
    return bool(param.layers or param.input or _old_batch_norms(param))


def upgrade_net(param, where="<net>"):
    """A NetParameter in today's format made from param (of any age); param is left alone.

    where names the file in errors and warnings.
    """
    if not net_needs_upgrade(param):
        return param
    net = pb.NetParameter()
    net.CopyFrom(param)
    if any(l.HasField("layer") for l in net.layers):
        net = _v0_to_v1(net, where)
    _move_transform_fields(net)
    if net.layers:
        net = _v1_to_v2(net, where)
    _inputs_to_layer(net, where)
    for layer in _old_batch_norms(net):
        for spec in layer.param:
            spec.lr_mult = 0
            spec.decay_mult = 0
    return net


def _warn(where, text):
    warnings.warn(f"{where}: {text}", UpgradeWarning, stacklevel=3)


# -- V0 -> V1 ---------------------------------------------------------------------------

def _v0_to_v1(net, where):
    """V0 layers (settings on a nested `layer`) as V1 layers, padding layers folded in."""
    out = pb.NetParameter()
    for field in ("name", "force_backward"):
        if net.HasField(field):
            setattr(out, field, getattr(net, field))
    out.input.extend(net.input)
    out.input_dim.extend(net.input_dim)
    for v0 in _fold_padding_layers(net, where):
        _v0_layer_to_v1(v0, out.layers.add(), where)
    return out


def _fold_padding_layers(net, where):
    """The V0 layers without "padding" ones; a conv/pool fed by one takes its pad and bottom."""
    last_writer = {name: None for name in net.input}      # blob -> V0 layer that wrote it last
    kept = []
    for connection in net.layers:
        v0 = connection.layer
        layer = V1()
        layer.CopyFrom(connection)
        for j, blob in enumerate(connection.bottom):
            if blob not in last_writer:
                raise ProtoError(f"{where}: layer '{v0.name}': unknown bottom blob '{blob}'")
            source = last_writer[blob]
            if source is None or source.layer.type != "padding":
                continue
            if v0.type not in ("conv", "pool"):
                raise ProtoError(f"{where}: padding layer '{source.layer.name}' feeds layer "
                                 f"'{v0.name}' of type '{v0.type}'; only conv and pool "
                                 "layers can take padding")
            if len(connection.bottom) != 1 or len(source.bottom) != 1 or len(source.top) != 1:
                raise ProtoError(f"{where}: padding layer '{source.layer.name}' and layer "
                                 f"'{v0.name}' must each have one bottom (and the padding "
                                 "one top)")
            layer.layer.pad = source.layer.pad
            layer.bottom[j] = source.bottom[0]
        if v0.type != "padding":
            kept.append(layer)
        for blob in connection.top:
            last_writer[blob] = connection
    return kept


def _v0_layer_to_v1(connection, out, where):
    """One V0 layer as a V1 layer: each setting into the parameter message of its type."""
    out.bottom.extend(connection.bottom)
    out.top.extend(connection.top)
    v0 = connection.layer
    if v0.HasField("name"):
        out.name = v0.name
    if v0.HasField("type"):
        if v0.type not in _V0_TYPES:
            raise ProtoError(f"{where}: layer '{v0.name}': unknown V0 layer type '{v0.type}'")
        out.type = _V0_TYPES[v0.type]
    out.blobs.extend(v0.blobs)
    out.blobs_lr.extend(v0.blobs_lr)
    out.weight_decay.extend(v0.weight_decay)
    for field, value in v0.ListFields():
        name = field.name
        if name in ("name", "type", "blobs", "blobs_lr", "weight_decay"):
            continue
        targets = _V0_FIELDS.get(name, {})
        target = targets.get(v0.type) or targets.get("*")
        if target is None:
            _warn(where, f"layer '{v0.name}': V0 setting '{name}' has no meaning for layer "
                  f"type '{v0.type}'; dropped")
            continue
        message_name, _, field_name = target.partition(".")
        _assign(getattr(out, message_name), field_name, value)


def _assign(message, field_name, value):
    """message.field_name = value, for plain, repeated and message fields alike."""
    if not field_name:
        message.CopyFrom(value)
        return
    field = message.DESCRIPTOR.fields_by_name[field_name]
    if field.message_type is not None:
        getattr(message, field_name).CopyFrom(value)
    elif field.is_repeated:
        getattr(message, field_name).append(value)
    else:
        setattr(message, field_name, value)


# -- old transformation fields ----------------------------------------------------------

def _move_transform_fields(net):
    """scale, mean_file, crop_size, mirror of V1 data layers into their transform_param."""
    for layer in net.layers:
        holder_name = _OLD_TRANSFORM_HOLDERS.get(layer.type)
        if holder_name is None or not layer.HasField(holder_name):
            continue
        holder = getattr(layer, holder_name)
        for name in _TRANSFORM_FIELDS:
            if holder.HasField(name):
                setattr(layer.transform_param, name, getattr(holder, name))
                holder.ClearField(name)


# -- V1 -> today's format ---------------------------------------------------------------

def _v1_to_v2(net, where):
    """V1 `layers` as `layer`: type names, ParamSpecs from the per-blob lists."""
    out = pb.NetParameter()
    out.CopyFrom(net)
    del out.layers[:]
    if net.layer:
        _warn(where, "the net has both V1 'layers' and new 'layer' entries; as Caffe, the "
              f"{len(net.layer)} 'layer' entries are dropped")
        del out.layer[:]
    for v1 in net.layers:
        _v1_layer_to_v2(v1, out.layer.add(), where)
    return out


def _v1_layer_to_v2(v1, out, where):
    """One V1 layer in today's format."""
    out.bottom.extend(v1.bottom)
    out.top.extend(v1.top)
    if v1.HasField("name"):
        out.name = v1.name
    out.include.extend(v1.include)
    out.exclude.extend(v1.exclude)
    if v1.HasField("type"):
        out.type = _V1_TYPES[v1.type]
    out.blobs.extend(v1.blobs)
    per_blob = (("name", v1.param), ("share_mode", v1.blob_share_mode),
                ("lr_mult", v1.blobs_lr), ("decay_mult", v1.weight_decay))
    for field_name, values in per_blob:
        for i, value in enumerate(values):
            while len(out.param) <= i:
                out.param.add()
            setattr(out.param[i], field_name, value)
    out.loss_weight.extend(v1.loss_weight)
    for field, value in v1.ListFields():
        if field.name.endswith("_param"):
            getattr(out, field.name).CopyFrom(value)
    if v1.HasField("layer"):
        _warn(where, f"layer '{v1.name}' mixes a V0 'layer' into a V1 layer; the V0 part is "
              "dropped, as Caffe does")


# -- net-level inputs and BatchNorm -----------------------------------------------------

def _inputs_to_layer(net, where):
    """Net-level `input:` fields as an Input layer in front (dropped if they have no shapes)."""
    if not net.input:
        return
    names = list(net.input)
    if net.input_shape:
        shapes = list(net.input_shape)
    elif net.input_dim:
        dims = list(net.input_dim)
        if len(dims) != 4 * len(names):
            raise ProtoError(f"{where}: {len(names)} net inputs need {4 * len(names)} "
                             f"input_dim values, got {len(dims)}")
        shapes = [pb.BlobShape(dim=dims[4 * i:4 * i + 4]) for i in range(len(names))]
    else:
        shapes = None                # a legacy .caffemodel's inputs: nothing to build
    if shapes is not None:
        if len(shapes) != len(names):
            raise ProtoError(f"{where}: {len(names)} net inputs but {len(shapes)} input_shape "
                             "entries")
        layers = list(net.layer)
        del net.layer[:]
        layer = net.layer.add(name="input", type="Input", top=names)
        layer.input_param.shape.extend(shapes)
        net.layer.extend(layers)
    del net.input[:], net.input_shape[:], net.input_dim[:]


def _old_batch_norms(net):
    """BatchNorm layers that still declare three param specs (the old definition)."""
    return [l for l in net.layer if l.type == "BatchNorm" and len(l.param) == 3
            and any(s.lr_mult != 0 or s.decay_mult != 0 for s in l.param)]
