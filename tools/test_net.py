"""test_net: score a trained net over N batches, as `caffe test`.

    test_net --proto examples/digits/lenet_train_test.prototxt \\
             --weights LeNet-digits_iter_2000.caffemodel --iterations 3

Prints every output of every batch, then each output averaged over the
batches (loss outputs with their weighted contribution to the loss).
"""
import argparse
import sys

import cyffe
from cyffe.net.analysis.evaluation import evaluate, loss_weights
from cyffe.tools.cli import add_common, run


def build_parser():
    p = argparse.ArgumentParser(
        prog="test_net",
        description="Run a trained net forward for N batches and print each output averaged "
                    "over them, as `caffe test`.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--proto", metavar="NET", required=True, help="net prototxt")
    p.add_argument("--weights", metavar="W", required=True, help="trained .caffemodel weights")
    p.add_argument("--iterations", metavar="N", type=int, default=50,
                   help="how many batches to run")
    p.add_argument("--output", metavar="NAME", action="append", default=None,
                   help="report only this output blob (repeatable; default: every output)")
    add_common(p, "TEST")
    return p


def main(argv=None):
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return run("test_net", test, args)


def _lines(name, value):
    """(label, number) per element: a one-element output by its name, others name[k]."""
    flat = value.ravel()
    return [(name if flat.size == 1 else f"{name}[{k}]", float(v)) for k, v in enumerate(flat)]


def test(args):
    net = cyffe.Net(args.proto, getattr(cyffe, args.phase), weights=args.weights)

    def show(k, values, loss):
        for name, value in values.items():
            for label, v in _lines(name, value):
                print(f"Batch {k}, {label} = {v:.6g}")

    means, loss = evaluate(net, args.iterations, args.output, show)
    weights = loss_weights(net)
    print(f"Loss: {loss:.6g}")
    for name, mean in means.items():
        for label, v in _lines(name, mean):
            weighted = f" (* {weights[name]:g} = {weights[name] * v:.6g} loss)" if weights[name] else ""
            print(f"{label} = {v:.6g}{weighted}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
