"""check_grad: numerically check the gradients of every layer of a net.

    check_grad --proto examples/digits/lenet_train_test.prototxt

The net is built in float64, its Input blobs filled with random data (labels
with random class indices), and run forward once; then each layer with a
backward is checked alone at the values it saw: its analytic bottom and param
gradients against central differences. Exits 1 if a layer's worst relative
error is over the threshold.
"""
import sys

import numpy as np

import cyffe
from cyffe.net.analysis.gradcheck import check_net_gradients, random_inputs
from cyffe.tools import cli


def build_parser():
    p = cli.parser("check_grad", "Check every layer's analytic gradients against central "
                                 "differences, in float64, and print the worst relative error "
                                 "per layer.")
    p.add_argument("--proto", metavar="NET", required=True, help="net prototxt")
    p.add_argument("--eps", type=float, default=1e-3, help="finite-difference step (times the RMS of arrays whose RMS is below 1)")
    p.add_argument("--threshold", type=float, default=1e-3,
                   help="largest relative error that passes")
    p.add_argument("--max_checks", metavar="N", type=int, default=100,
                   help="random elements checked per bottom and param (0: all)")
    p.add_argument("--seed", type=int, default=1701,
                   help="seed of the random inputs, top weights and layer randomness")
    cli.add_net_state(p, "TRAIN")
    cli.add_common(p)
    return p


def main(argv=None):
    return cli.run("check_grad", check, cli.parse_args(build_parser(), argv))


def check(args):
    if args.eps <= 0 or args.max_checks < 0:
        raise cyffe.NetError("--eps must be positive and --max_checks at least 0")
    cyffe.set_random_seed(args.seed)
    net = cli.build_net(args, dtype=np.float64)
    random_inputs(net, args.seed)
    reports = check_net_gradients(net, args.eps, args.threshold, args.max_checks or None,
                                  args.seed)
    if not reports:
        raise cyffe.NetError(f"{args.proto}: no layer has a backward to check")
    width = max(len(r.name) for r in reports)
    failed = [r for r in reports if r.worst > args.threshold]
    for r in reports:
        verdict = "FAIL" if r in failed else "ok"
        kinks = f", {r.kinks} at kinks skipped" if r.kinks else ""
        print(f"{r.name:>{width}}  {r.type:<20} worst relative error {r.worst:.3e}  {verdict}  "
              f"({r.checked} elements{kinks})")
        if r in failed:
            print(f"{'':>{width}}  at {r.where}")
    if failed:
        print(f"check_grad: {len(failed)} of {len(reports)} layers over threshold "
              f"{args.threshold:g}: {', '.join(r.name for r in failed)}", file=sys.stderr)
        return 1
    print(f"All {len(reports)} layers within {args.threshold:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
