"""draw_net: draw a net's graph (layers, blobs and their shapes), as Caffe's draw_net.py.

    draw_net examples/digits/lenet_train_test.prototxt lenet.png

The format follows OUT's extension: .dot is always written; .png and .svg are
rendered by Graphviz's `dot` program.
"""
import argparse
import sys

import cyffe
from cyffe.net.analysis.drawing import blob_shapes, draw_net_to_file
from cyffe.proto.io import read_net
from cyffe.tools.cli import add_common, run


def build_parser():
    p = argparse.ArgumentParser(
        prog="draw_net",
        description="Draw a net as a graph: layers as boxes (type and key parameters), blobs "
                    "as ellipses (with shapes when the net builds). OUT's extension picks the "
                    "format: .dot (always), .png or .svg (need Graphviz's dot program).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("net", metavar="NET", help="net prototxt")
    p.add_argument("out", metavar="OUT", help="output file: .dot, .png or .svg")
    p.add_argument("--rankdir", type=str.upper, choices=("LR", "RL", "TB", "BT"), default="LR",
                   help="direction of the graph (left-right, top-bottom, ...)")
    add_common(p, "TRAIN")
    return p


def main(argv=None):
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return run("draw_net", draw, args)


def draw(args):
    phase = getattr(cyffe, args.phase)
    read_net(args.net)                    # a missing or malformed file fails here, once
    try:
        shapes = blob_shapes(args.net, phase)
    except (cyffe.NetError, cyffe.ShapeError, cyffe.DataError) as e:
        if args.debug:
            raise
        shapes = None
        print(f"draw_net: note: drawing without blob shapes, the net does not build: {e}",
              file=sys.stderr)
    draw_net_to_file(args.net, args.out, args.rankdir, phase, shapes=shapes)
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
