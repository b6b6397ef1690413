"""A Net's learned weights in and out of files: .caffemodel, .caffemodel.h5 and NetParameter.

Loading is Caffe's Net::CopyTrainedLayersFrom (and ...FromHDF5): blobs are copied
by layer name; layers of the file that the net lacks are skipped and layers the
file lacks keep their fillers (fine-tuning); a layer in both must match in blob
count and shapes. Every check runs before anything is copied, so a bad file never
half-loads. Saving is Caffe's ToProto / ToHDF5, written atomically.
"""
import os

from ..proto import cyffe_pb2 as pb
from ..proto import caffemodel, hdf5_format
from ..proto.errors import DataError, ShapeError
from ..proto.io import (array_to_blobproto, blob_shape_matches, blobproto_shape, blobproto_to_array,
                        read_net_weights, write_binary)
from ..proto.upgrade import upgrade_net
from .glog import net_logger


def load_weights(net, weights, hdf5=None):
    """Net.copy_from: weights from a .caffemodel, .caffemodel.h5 or NetParameter (upgraded).

    hdf5: True or False to say the file's format, None to go by a `.h5` suffix.
    """
    if isinstance(weights, pb.NetParameter):
        _copy_from_net_param(net, upgrade_net(weights, "weights"), "weights")
    elif hdf5 or hdf5 is None and os.fspath(weights).endswith(".h5"):
        _copy_from_hdf5(net, weights)
    else:
        _copy_from_caffemodel(net, os.fspath(weights))


def _copy_from_caffemodel(net, path):
    """A .caffemodel's weights, read layer by layer (proto/caffemodel.py: the values go from
    the file into the blobs), or whole where the file's format asks for it."""
    records = caffemodel.layer_records(path)
    if records is None:
        _copy_from_net_param(net, read_net_weights(path), path)
        return
    copies = _checked_copies(net, records, path)
    try:
        with open(path, "rb") as f:
            for blob, (offset, count) in copies:
                caffemodel.read_values(f, offset, count, blob.data)
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read weights: {e}") from None


def _copy_from_net_param(net, source, where):
    """Caffe's CopyTrainedLayersFrom: every check first, then the copy (never half a load)."""
    copies = _checked_copies(net, [(lp, lp.blobs) for lp in source.layer], where)
    for blob, bp in copies:             # checked: each converts (one array at a time)
        blob.data[...] = blobproto_to_array(bp).reshape(blob.shape)


def _checked_copies(net, layers, where):
    """[(the net's blob, its values in the file)] of (LayerParameter, values per blob)
    pairs: BlobProtos, or (offset, count) of values left in the file. Every check runs here,
    before anything is copied."""
    mine = net.layer_dict
    _check_for_this_net(net, [lp.name for lp, values in layers if lp.blobs], where)
    copies = []
    for lp, values in layers:
        layer = mine.get(lp.name)
        if layer is None:
            net_logger.info(f"Ignoring source layer {lp.name}")
            continue
        if len(lp.blobs) != len(layer.blobs):
            raise ShapeError(f"{where}: layer '{lp.name}' has {len(lp.blobs)} blobs in the "
                             f"file but {len(layer.blobs)} in the net")
        for i, (bp, blob, value) in enumerate(zip(lp.blobs, layer.blobs, values)):
            if not blob_shape_matches(bp, blob.shape):
                raise ShapeError(f"{where}: layer '{lp.name}' param {i}: shape "
                                 f"{blobproto_shape(bp)} in the file but {blob.shape} in "
                                 "the net")
            count = value[1] if isinstance(value, tuple) else (len(value.double_data) or
                                                                len(value.data))
            if count != blob.count:
                raise DataError(f"{where}: layer '{lp.name}' param {i}: blob of shape "
                                f"{blobproto_shape(bp)} holds {count} values")
            copies.append((blob, value))
    return copies


def _check_for_this_net(net, theirs, where):
    """A DataError when a net with params would take nothing from a file whose layers with
    blobs are `theirs`: it has none, or none of them is a layer of this net."""
    if net.params and not theirs:
        raise DataError(f"{where}: holds no learned weights (no layer has blobs)")
    mine = net.layer_dict
    if net.params and not any(name in mine for name in theirs):
        raise DataError(f"{where}: weights for another net: none of its layers "
                        f"({_names(theirs)}) is in this net ({_names(net.params)})")


def _copy_from_hdf5(net, path):
    """Caffe's CopyTrainedLayersFromHDF5: by layer name; a shared blob may be absent."""
    mine = net.layer_dict
    owned = {name: {i for i, _, own in blobs if own} for name, blobs in _param_blobs(net)}
    layers = hdf5_format.read_weights(path)
    _check_for_this_net(net, [name for name, blobs in layers.items() if blobs], path)
    copies = []                      # every check first, then the copy
    for name, blobs in layers.items():
        layer = mine.get(name)
        if layer is None:
            net_logger.info(f"Ignoring source layer {name}")
            continue
        if len(blobs) > len(layer.blobs) or any(i >= len(layer.blobs) for i in blobs):
            raise ShapeError(f"{path}: layer '{name}' has {len(blobs)} blobs there but "
                             f"{len(layer.blobs)} in the net")
        for i, target in enumerate(layer.blobs):
            if i not in blobs:
                if i in owned[name]:
                    raise ShapeError(f"{path}: layer '{name}' has no blob {i} there but the "
                                     f"net has {len(layer.blobs)}")
                continue
            if blobs[i].shape != target.shape:
                raise ShapeError(f"{path}: layer '{name}' blob {i} has shape "
                                 f"{blobs[i].shape} there but {target.shape} in the net")
            copies.append((target, blobs[i]))
    for target, values in copies:
        target.data[...] = values


def weights_to_proto(net, write_diff=False):
    """Net.to_proto: a NetParameter of the net's layers with their blobs (diffs: write_diff)."""
    out = pb.NetParameter(name=net.name)
    for layer in net.layers:
        if layer.type == "Split" and layer.name not in {l.name for l in net.param.layer}:
            continue
        lp = out.layer.add()
        lp.CopyFrom(layer.param)
        del lp.blobs[:]
        lp.blobs.extend(array_to_blobproto(b.host_data(), b.host_diff() if write_diff else None)
                        for b in layer.blobs)
    return out


def save_weights(net, path, write_diff=False, hdf5=None):
    """Net.save: write the weights atomically, as HDF5 for a `.h5` name, else as a .caffemodel.

    hdf5: True or False to choose the format whatever the name.
    """
    if hdf5 or hdf5 is None and os.fspath(path).endswith(".h5"):
        hdf5_format.write_weights(path, _param_blobs(net), diffs=write_diff)
    else:
        write_binary(weights_to_proto(net, write_diff), path)


def _param_blobs(net):
    """[(layer name, [(index, blob, owned)])] for every layer, as Caffe's ToHDF5 walks them.

    A blob is not owned when its ParamSpec name was taken by an earlier layer
    (a shared weight): Caffe stores it once, under its owner.
    """
    names, out = set(), []
    for name, layer in zip(net._layer_names, net.layers):
        specs, blobs = layer.param.param, []
        for i, blob in enumerate(layer.blobs):
            shared_name = specs[i].name if i < len(specs) else ""
            blobs.append((i, blob, not shared_name or shared_name not in names))
            if shared_name:
                names.add(shared_name)
        out.append((name, blobs))
    return out


def _names(names, shown=3):
    """The first few names (of layer params or a dict's keys), for a message."""
    names = [n if isinstance(n, str) else n.name for n in names]
    return ", ".join(f"'{n}'" for n in names[:shown]) + (", ..." if len(names) > shown else "")
