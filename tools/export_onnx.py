"""export_onnx: write a Caffe net and its weights as an ONNX model.

    export_onnx deploy.prototxt weights.caffemodel model.onnx [--opset 17]
                [--dynamic_batch] [--output prob --output fc7]

The net is built in phase TEST (--phase to change) and checked by onnx.checker; the
model's inputs and outputs are the net's blobs by name. Needs `pip install "cyffe[onnx]"`.
"""
import sys

import cyffe
from cyffe.net.onnx_export import DEFAULT_OPSET, export_onnx
from cyffe.tools import cli


def build_parser():
    p = cli.parser("export_onnx", "Export a Caffe net with its weights to an ONNX model that "
                                  "gives its outputs.")
    p.add_argument("proto", metavar="NET.prototxt", help="the net (a deploy net: Input layers)")
    p.add_argument("weights", metavar="WEIGHTS",
                   help="its weights: .caffemodel or .caffemodel.h5")
    p.add_argument("out", metavar="OUT.onnx", help="where to write the ONNX model")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help="the ONNX opset version to target (13 or newer)")
    p.add_argument("--dynamic_batch", action="store_true",
                   help="make the first axis of every input and output a free dimension N")
    p.add_argument("--output", metavar="BLOB", action="append", default=None,
                   help="a blob to output (repeatable; default: the net's outputs)")
    cli.add_net_state(p, "TEST")
    cli.add_common(p)
    return p


def main(argv=None):
    return cli.run("export_onnx", export, cli.parse_args(build_parser(), argv))


def export(args):
    net = cli.build_net(args, weights=args.weights)
    model = export_onnx(net, args.out, opset=args.opset, dynamic_batch=args.dynamic_batch,
                        outputs=args.output)
    for note in filter(None, model.doc_string.splitlines()):
        print(f"export_onnx: {note}", file=sys.stderr)
    graph = model.graph
    print(f"wrote {args.out}: opset {args.opset}, {len(graph.node)} nodes, inputs "
          f"{', '.join(i.name for i in graph.input)}, outputs "
          f"{', '.join(o.name for o in graph.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
