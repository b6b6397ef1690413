"""What every tool shares: one-line errors and a non-zero exit, tracebacks only with --debug."""
import sys

import numpy as np

import cyffe


def run(prog, body, args):
    """Return body(args)'s exit code; a cyffe or OS error becomes one line on stderr and 1."""
    try:
        with np.errstate(all="ignore"):
            return body(args)
    except (cyffe.CyffeError, OSError) as e:
        if args.debug:
            raise
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130



def add_common(parser, phase):
    """--phase (default `phase`) and --debug, as every tool takes them."""
    parser.add_argument("--phase", type=str.upper, choices=("TRAIN", "TEST"), default=phase,
                        help="the net state to build (Caffe's include/exclude phase rules)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
