"""The ONNX graph of a Net: its values named after the blobs, its weights as initializers.

Every blob a layer writes becomes one ONNX value. ONNX values are written once, so a blob
that in-place layers rewrite (conv1, then ReLU on conv1) is several values: the last
writer's keeps the blob's name (what net.blobs holds after a forward), the earlier ones
are called `blob@layer`. A Split fans a value out without a node. Weights are
initializers named `layer.weight`, `layer.bias`, ..., and a layer's other nodes and values
`layer/...`, so each is found by its layer's name.
"""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ...proto.errors import NetError

# Caffe type -> mapping(graph, layer, bottoms, tops): writes the layer's nodes, reading the
# ONNX values `bottoms` and writing the ONNX values `tops` (one name per top).
MAPPINGS = {}

# Layers that only training or scoring needs: left out of the graph, with a note.
LEFT_OUT = {"Accuracy", "Silence"}

DATA_LAYERS = {"Data", "ImageData", "HDF5Data", "MemoryData", "DummyData", "WindowData",
               "Python"}


def maps(*types):
    """Register the decorated function as the mapping of these Caffe layer types."""
    def register(function):
        for t in types:
            MAPPINGS[t] = function
        return function
    return register


class Graph:
    """The nodes, initializers and value names of the ONNX graph being built from a net."""

    def __init__(self, net, opset, dynamic_batch):
        self.net = net
        self.opset = opset
        self.dynamic_batch = dynamic_batch
        self.nodes, self.initializers = [], []
        self._taken = set()
        self.layer = None                  # the layer whose nodes are being written
        self.bottom_shapes = self.top_shapes = ()      # ... and its blobs' shapes

    # -- names -------------------------------------------------------------------------

    def reserve(self, names):
        """Keep these names (the blobs') from temporaries."""
        self._taken.update(names)

    def unique(self, name):
        """name, or name with a number after it when a value already has that name."""
        candidate, k = name, 1
        while candidate in self._taken:
            candidate, k = f"{name}_{k}", k + 1
        self._taken.add(candidate)
        return candidate

    def temp(self, what):
        """A fresh name for an intermediate value of the current layer."""
        return self.unique(f"{self.layer.name}/{what}")

    # -- writing -----------------------------------------------------------------------

    def node(self, op, inputs, output=None, what=None, **attrs):
        """Append one node; returns its output's name (a fresh one unless output is given)."""
        if output is None:
            output = self.temp(what or op.lower())
        name = self.unique(f"{self.layer.name}/{what or op}")
        self.nodes.append(helper.make_node(op, inputs, [output], name=name, **attrs))
        return output

    def node_multi(self, op, inputs, outputs, **attrs):
        """Append one node with several outputs (given names)."""
        self.nodes.append(helper.make_node(op, inputs, outputs,
                                           name=self.unique(f"{self.layer.name}/{op}"), **attrs))

    def weight(self, what, array, dtype=np.float32):
        """An initializer named `layer.what` holding array (float32 unless told)."""
        name = self.unique(f"{self.layer.name}.{what}")
        self.initializers.append(numpy_helper.from_array(np.asarray(array, dtype), name))
        return name

    def ints(self, what, values):
        """An int64 initializer (shapes, axes, slice bounds)."""
        return self.weight(what, np.asarray(values, np.int64).reshape(-1), np.int64)

    def scalar(self, what, value):
        """A float32 scalar initializer."""
        return self.weight(what, np.float32(value))

    # -- idioms ------------------------------------------------------------------------

    def reshape(self, x, in_shape, out_shape, output=None, what="reshape"):
        """Reshape x from in_shape to the static out_shape, the first axis left free when it
        is the batch (so a dynamic batch still works)."""
        target = list(out_shape)
        if target and in_shape and self.dynamic_batch:
            target[0] = 0 if target[0] == in_shape[0] else -1
        return self.node("Reshape", [x, self.ints(what + "_shape", target)], output, what)

    def reduce(self, op, x, axes, keepdims, output=None, what=None):
        """A Reduce* node over axes: an attribute before ReduceSum's opset 13 / the others'
        opset 18, an input from then on."""
        since = 13 if op == "ReduceSum" else 18
        if self.opset >= since:
            return self.node(op, [x, self.ints((what or op.lower()) + "_axes", axes)],
                             output, what, keepdims=keepdims)
        return self.node(op, [x], output, what, axes=list(axes), keepdims=keepdims)

    def unsupported(self, why):
        """The NetError for a layer without a faithful mapping, naming it."""
        return NetError(f"{self.net.where}: layer '{self.layer.name}' ({self.layer.type}) "
                        f"cannot be exported to ONNX: {why}")


def value_info(name, shape, dynamic_batch):
    """A graph input or output of a static shape (the first axis 'N' with a dynamic batch)."""
    dims = list(shape)
    if dynamic_batch and dims:
        dims[0] = "N"
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def build(net, opset, dynamic_batch, outputs):
    """The onnx.ModelProto of net and the notes on the layers left out."""
    graph = Graph(net, opset, dynamic_batch)
    last_writer = {}
    for li, layer in enumerate(net.layers):
        for top in layer.param.top:
            last_writer[top] = li
    input_names = set(net.inputs)
    graph.reserve(last_writer)
    names = {}                           # id(blob) -> the ONNX value holding it now
    final = {}                           # blob name -> its last ONNX value
    inputs, notes, consumed = [], [], set()
    for li, layer in enumerate(net.layers):
        graph.layer = layer
        bottoms, tops = net._bottom[li], net._top[li]
        graph.bottom_shapes = [b.shape for b in bottoms]
        graph.top_shapes = [t.shape for t in tops]
        if layer.type == "Input":
            for name, blob in zip(layer.param.top, tops):
                names[id(blob)] = final[name] = name
                inputs.append(value_info(name, blob.shape, dynamic_batch))
            continue
        if layer.type in DATA_LAYERS:
            raise graph.unsupported("it reads its data itself; export the deploy net, whose "
                                    "inputs are Input layers")
        if layer.is_loss or layer.type in LEFT_OUT:
            notes.append(f"layer '{layer.name}' ({layer.type}) left out: it only scores or "
                         "trains the net")
            continue
        mapping = MAPPINGS.get(layer.type)
        if mapping is None and layer.type != "Split":
            raise graph.unsupported(f"no ONNX mapping for type {layer.type}; the types that "
                                    f"map are {', '.join(sorted(MAPPINGS))}")
        missing = [b for b, blob in zip(layer.param.bottom, bottoms) if id(blob) not in names]
        if missing:
            raise graph.unsupported(f"its bottom '{missing[0]}' comes from a layer left out")
        bottom_values = [names[id(b)] for b in bottoms]
        if layer.type == "Split":           # a fan-out: the same value, no node
            for name, blob in zip(layer.param.top, tops):
                names[id(blob)] = final[name] = bottom_values[0]
            continue
        consumed.update(bottom_values)
        top_values = [name if last_writer[name] == li and name not in input_names
                      else graph.unique(f"{name}@{layer.name}") for name in layer.param.top]
        mapping(graph, layer, bottom_values, top_values)
        for name, blob, value in zip(layer.param.top, tops, top_values):
            names[id(blob)] = final[name] = value

    if outputs is None:
        outputs = [name for name, value in final.items() if value not in consumed and
                   "_split_" not in name and value not in input_names]
    graph_outputs = []
    for name in outputs:
        if name not in final:
            raise NetError(f"{net.where}: no blob named '{name}' to output; blobs: "
                           f"{', '.join(n for n in final if '_split_' not in n)}")
        value = final[name]
        if value != name or name in input_names:
            # A Split's top is its bottom's value; an input is named for the input: copy
            # the value out under the blob's name (or name_output for an input).
            graph.layer = net.layers[last_writer[name]]
            value = graph.node("Identity", [value], graph.unique(f"{name}_output")
                               if name in input_names else name, "output")
        graph_outputs.append(value_info(value, net.blobs[name].shape, dynamic_batch))

    onnx_graph = helper.make_graph(graph.nodes, net.name or "cyffe", inputs, graph_outputs,
                                   graph.initializers)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(onnx_graph, opset_imports=opsets, producer_name="cyffe",
                              ir_version=helper.find_min_ir_version_for(opsets))
    model.doc_string = "\n".join(notes)
    onnx.checker.check_model(model, full_check=True)
    return model, notes
