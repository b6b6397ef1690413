"""export_onnx: write a Caffe net and its weights as an ONNX model.

    export_onnx deploy.prototxt weights.caffemodel model.onnx [--opset 17]
                [--dynamic-batch] [--output prob --output fc7]

The net is built in phase TEST (--phase to change) and checked by onnx.checker; the
model's inputs and outputs are the net's blobs by name. Needs `pip install "cyffe[onnx]"`.
"""
import argparse
import sys

import cyffe
from cyffe.net.onnx_export import DEFAULT_OPSET, export_onnx
from cyffe.tools.cli import add_common, run


def build_parser():
    p = argparse.ArgumentParser(
        prog="export_onnx",
        description="Export a Caffe net with its weights to an ONNX model that gives its "
                    "outputs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("proto", metavar="NET.prototxt", help="the net (a deploy net: Input layers)")
    p.add_argument("weights", metavar="WEIGHTS",
                   help="its weights: .caffemodel or .caffemodel.h5")
    p.add_argument("out", metavar="OUT.onnx", help="where to write the ONNX model")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help="the ONNX opset version to target (13 or newer)")
    p.add_argument("--dynamic-batch", action="store_true",
                   help="make the first axis of every input and output a free dimension N")
    p.add_argument("--output", metavar="BLOB", action="append", default=None,
                   help="a blob to output (repeatable; default: the net's outputs)")
    add_common(p, "TEST")
    return p


def main(argv=None):
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return run("export_onnx", export, args)


def export(args):
    net = cyffe.Net(args.proto, getattr(cyffe, args.phase), weights=args.weights)
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
