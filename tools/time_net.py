"""time_net: per-layer forward and backward times of a net, as `caffe time`.

    time_net --proto examples/digits/lenet_train_test.prototxt --iterations 20

The net is built in TRAIN (or --phase) and run forward and backward; each
layer's time is the median over the iterations; the totals are their sums;
images/second counts the batch size of the net's first data blob.
"""
import sys

import cyffe
from cyffe.net.analysis.timing import time_layers
from cyffe.tools import cli


def build_parser(prog="time_net"):
    p = cli.parser(prog, "Time each layer's forward and backward pass (median milliseconds over "
                         "the iterations), as `caffe time`, plus images per second.")
    p.add_argument("--proto", metavar="NET", required=True, help="net prototxt")
    p.add_argument("--iterations", metavar="N", type=int, default=50,
                   help="forward-backward passes to time")
    cli.add_net_state(p, "TRAIN")
    cli.add_device(p)
    cli.add_common(p)
    return p


def main(argv=None, prog="time_net"):
    return cli.run(prog, time_net, cli.parse_args(build_parser(prog), argv))


def time_net(args):
    if args.iterations < 1:
        raise cyffe.NetError(f"--iterations must be at least 1, got {args.iterations}")
    cli.choose_device(args.prog, args)
    net = cli.build_net(args)
    print(f"Timing {net.name or args.proto} ({args.phase}): median milliseconds over "
          f"{args.iterations} iterations")
    timings = time_layers(net, args.iterations)
    width = max([len(t.name) for t in timings] + [5])
    print(f"{'layer':>{width}}  {'type':<16}{'forward ms':>12}{'backward ms':>13}")
    for t in timings:
        print(f"{t.name:>{width}}  {t.type:<16}{t.forward_ms:>12.4f}{t.backward_ms:>13.4f}")
    forward = sum(t.forward_ms for t in timings)
    backward = sum(t.backward_ms for t in timings)
    print(f"Forward pass: {forward:.4f} ms")
    print(f"Backward pass: {backward:.4f} ms")
    print(f"Forward-backward: {forward + backward:.4f} ms")
    batch = net.batch_size
    if batch and forward + backward > 0:
        print(f"Images per second: {batch * 1000 / (forward + backward):.1f} "
              f"(batch size {batch}, forward-backward)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
