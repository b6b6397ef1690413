"""plot_training_log: loss, learning rate and test-output curves from a `train_net --log` log.

    train_net --proto examples/digits/lenet_train_test.prototxt --log run.jsonl
    plot_training_log run.jsonl run.png

Reads the JSON-lines or CSV log (a name ending in .csv) that train_net --log
writes; needs matplotlib (pip install "cyffe[plot]").
"""
import sys

from cyffe.net.analysis.training_log import plot_training_log
from cyffe.tools import cli


def build_parser():
    p = cli.parser("plot_training_log",
                   "Plot the training loss, the learning rate and every test output over "
                   "iterations from a train_net --log file (JSON lines, or CSV when its name "
                   "ends in .csv) to a PNG. Needs matplotlib: pip install \"cyffe[plot]\".")
    p.add_argument("log", metavar="LOG", help="the log train_net --log wrote")
    p.add_argument("out", metavar="OUT.png", help="the image to write (replaced atomically)")
    p.add_argument("--title", help="a title over the plots")
    cli.add_common(p)
    return p


def main(argv=None):
    return cli.run("plot_training_log", plot, cli.parse_args(build_parser(), argv))


def plot(args):
    try:
        plot_training_log(args.log, args.out, title=args.title)
    except ImportError as e:
        if args.debug:
            raise
        print(f"plot_training_log: error: {e}", file=sys.stderr)
        return 1
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
