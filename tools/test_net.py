"""test_net: score a trained net over its test data, as `caffe test`.

    test_net --proto examples/digits/lenet_train_test.prototxt \\
             --weights LeNet-digits_iter_2000.caffemodel

Prints every output of every batch, then each output averaged over the
batches (loss outputs with their weighted contribution to the loss). By
default it runs one pass over the data when the data layer knows its size
(HDF5Data, Data, ImageData), else 50 batches, as `caffe test`.
"""
import sys

import cyffe
from cyffe.net.analysis.evaluation import batches_per_pass, evaluate, loss_weights
from cyffe.tools import cli


def build_parser(prog="test_net"):
    p = cli.parser(prog, "Run a trained net forward over its test data and print each output "
                         "averaged over the batches, as `caffe test`.")
    p.add_argument("--proto", metavar="NET", required=True, help="net prototxt")
    p.add_argument("--weights", metavar="W[,W]", required=True,
                   help="trained weights (.caffemodel or .caffemodel.h5; several, "
                        "comma-separated, load in order)")
    p.add_argument("--iterations", metavar="N", type=int,
                   help="how many batches to run (default: one pass over the data when the data "
                        "layer knows its size, else 50)")
    p.add_argument("--output", metavar="NAME", action="append",
                   help="report only this output blob (repeatable; default: every output)")
    cli.add_net_state(p, "TEST")
    cli.add_device(p)
    cli.add_common(p)
    return p


def main(argv=None, prog="test_net"):
    parser = build_parser(prog)
    return cli.run(prog, test, cli.parse_args(parser, argv))


def _lines(name, value):
    """(label, number) per element: a one-element output by its name, others name[k]."""
    flat = value.ravel()
    return [(name if flat.size == 1 else f"{name}[{k}]", float(v)) for k, v in enumerate(flat)]


def test(args):
    cli.choose_device(args.prog, args)
    net = cli.build_net(args)
    for weights in args.weights.split(","):
        net.copy_from(weights)

    def show(k, values, loss):
        for name, value in values.items():
            for label, v in _lines(name, value):
                print(f"Batch {k}, {label} = {v:.6g}")

    iterations = args.iterations if args.iterations is not None else batches_per_pass(net)
    means, loss = evaluate(net, iterations, args.output, show)
    weights = loss_weights(net)
    print(f"Loss: {loss:.6g}")
    for name, mean in means.items():
        for label, v in _lines(name, mean):
            weighted = f" (* {weights[name]:g} = {weights[name] * v:.6g} loss)" if weights[name] else ""
            print(f"{label} = {v:.6g}{weighted}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
