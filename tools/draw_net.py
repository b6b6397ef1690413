"""draw_net: draw a net's graph (layers, blobs and their shapes), as Caffe's draw_net.py.

    draw_net examples/digits/lenet_train_test.prototxt lenet.png

The format follows OUT's extension: .dot is always written; .png and .svg are
rendered by Graphviz's `dot` program.
"""
import sys

import cyffe
from cyffe.net.analysis.drawing import blob_shapes, draw_net_to_file
from cyffe.proto.io import read_net
from cyffe.tools import cli


def build_parser():
    p = cli.parser("draw_net", "Draw a net as a graph: layers as boxes (type and key "
                               "parameters), blobs as ellipses (with shapes when the net builds). "
                               "OUT's extension picks the format: .dot (always), .png or .svg "
                               "(need Graphviz's dot program).")
    p.add_argument("--proto", metavar="NET", help="net prototxt (or give it first, as NET)")
    p.add_argument("files", nargs="+", metavar="[NET] OUT", help="output file: .dot, .png or .svg")
    p.add_argument("--rankdir", type=str.upper, choices=("LR", "RL", "TB", "BT"), default="LR",
                   help="direction of the graph (left-right, top-bottom, ...)")
    cli.add_net_state(p, "TRAIN", stages=False)
    cli.add_common(p)
    return p


def main(argv=None):
    parser = build_parser()
    args = cli.parse_args(parser, argv)
    given = ([args.proto] if args.proto else []) + args.files
    if len(given) != 2:
        parser.error("give the net and the output file: draw_net NET OUT (or --proto NET OUT)")
    args.net, args.out = given
    return cli.run("draw_net", draw, args)


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
