"""ONNX export: a Net, in its phase and with its weights, as an .onnx file of the same outputs.

graph.py builds the graph (values named after blobs, weights as initializers); the
mappings, one module per family of layers, give each Caffe type its nodes: windows.py
(Convolution, Deconvolution, Im2col, Pooling, SPP, LRN), neurons.py (the elementwise
layers), tensors.py (InnerProduct, the normalizations, the joins, cuts, reshapes,
reductions and lookups) and recurrent.py (LSTM and RNN, unrolled). Needs the `onnx`
package (pip install "cyffe[onnx]"), imported only when exporting.
"""
from ...proto.atomic import write_bytes
from ...proto.errors import CyffeError

DEFAULT_OPSET = 17
MIN_OPSET = 13             # Softmax over one axis, Split's and ReduceSum's axes as inputs


class OnnxUnavailable(CyffeError, ImportError):
    """The onnx package is not installed."""


def _onnx():
    try:
        import onnx
    except ImportError as e:
        raise OnnxUnavailable("exporting to ONNX needs the onnx package: "
                              "pip install \"cyffe[onnx]\"") from e
    from . import neurons, recurrent, tensors, windows  # noqa: F401  (they register the mappings)
    return onnx


def export_onnx(net, path=None, opset=DEFAULT_OPSET, dynamic_batch=False, outputs=None):
    """Write net as an ONNX model to path (if given); returns the onnx.ModelProto.

    The graph's inputs are the net's Input blobs, its outputs the net's outputs (or the
    blobs named in `outputs`), each by its blob name; the weights are initializers named
    `layer.weight`, `layer.bias`, .... dynamic_batch makes the first axis of the inputs
    and outputs a free dimension "N". Loss and Accuracy layers are left out (the model's
    doc_string says which); a layer without a faithful mapping raises NetError naming it.
    """
    onnx = _onnx()
    from .graph import build
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise CyffeError(f"opset {opset} is not one cyffe exports: give {MIN_OPSET} to "
                         f"{newest}")
    model, _ = build(net, opset, dynamic_batch, outputs)
    if path is not None:
        write_bytes(path, model.SerializeToString())
    return model
