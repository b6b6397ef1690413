"""What every tool shares: one parser style, Caffe's flag spellings, one-line errors and a
non-zero exit (tracebacks only with --debug), and the CPU/GPU choice."""
import argparse
import os
import sys

import numpy as np

import cyffe
from cyffe.layers import backend


def run(prog, body, args):
    """Return body(args)'s exit code; a cyffe or OS error becomes one line on stderr and 1."""
    try:
        with np.errstate(all="ignore"):
            return body(args)
    except BrokenPipeError:
        return closed_stdout()
    except (cyffe.CyffeError, OSError) as e:
        if args.debug:
            raise
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def closed_stdout():
    """The reader of stdout went away (`tool | head`): stop quietly, as a Unix tool does.

    Later writes (Python's own flush at exit) go to /dev/null; the exit code is
    the shell's for a death by SIGPIPE.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 128 + 13


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help, with an option's default shown where it has one worth saying."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("%(default)" in text or not action.option_strings or action.default is None
                or action.default is False or action.default == argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


def parser(prog, description):
    """An ArgumentParser in the tools' style: Caffe's flag names, defaults in the help.

    The parsed arguments carry the program's name as `prog`, for messages.
    """
    p = argparse.ArgumentParser(prog=prog, description=description, allow_abbrev=False,
                                formatter_class=HelpFormatter)
    p.set_defaults(prog=prog)
    return p


def add_common(parser):
    """--debug and --version, as every tool takes them."""
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    name = parser.prog if parser.prog == "cyffe" else f"{parser.prog} (cyffe)"
    parser.add_argument("--version", action="version", version=f"{name} {cyffe.__version__}")


def add_net_state(parser, phase, stages=True):
    """--phase (default `phase`), and --level and --stage: the NetState a net is built in."""
    parser.add_argument("--phase", type=str.upper, choices=("TRAIN", "TEST"), default=phase,
                        help="the net state to build (Caffe's include/exclude phase rules)")
    if stages:
        parser.add_argument("--level", type=int, default=0,
                            help="the net state's level (include/exclude min_level, max_level)")
        parser.add_argument("--stage", action="append", type=lambda s: s.split(","),
                            default=[], metavar="STAGE[,STAGE]",
                            help="a net state stage (repeatable, or comma-separated)")


def stages(args):
    """The --stage values, flattened."""
    return [s for group in args.stage for s in group if s]


def build_net(args, **kwargs):
    """The net of args.proto in the state add_net_state's flags chose; kwargs (weights,
    dtype) go to cyffe.Net."""
    return cyffe.Net(args.proto, getattr(cyffe, args.phase), level=args.level,
                     stages=stages(args), **kwargs)


def add_device(parser):
    """--gpu and --cpu: where the net runs (see choose_device)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--gpu", metavar="ID[,ID]|all",
                       help="run on this GPU through CuPy (Caffe's -gpu: ids, or all)")
    where.add_argument("--cpu", action="store_true",
                       help="run on the CPU, whatever the solver file or $CYFFE_BACKEND says")


def add_backend(parser, help="the database to write"):
    """--backend: the kind of database, as Caffe's data tools take it."""
    from cyffe.layers.pipeline.databases import BACKENDS
    parser.add_argument("--backend", type=str.lower, choices=tuple(BACKENDS), default="lmdb",
                        help=help)


def gpu_ids(text):
    """The device ids of a -gpu flag: "0", "0,1" or "all" (every usable GPU)."""
    if text.strip().lower() == "all":
        return list(range(backend.gpu_count()))
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise cyffe.CyffeError(f"--gpu {text}: give device ids (0 or 0,1) or all") from None
    if not ids or min(ids) < 0:
        raise cyffe.CyffeError(f"--gpu {text}: give device ids (0 or 0,1) or all")
    return ids


def choose_device(prog, args, requested=None, rank=0, ranks=1):
    """Set the backend mode from --cpu/--gpu, $CYFFE_BACKEND and a solver file's request.

    An explicit CPU choice (--cpu, or CYFFE_BACKEND=cpu) always wins. --gpu asks for
    a GPU and fails, as Caffe, when none is usable. `requested` is the device a
    solver file's solver_mode: GPU asks for: without a usable GPU, a warning line
    and the CPU. Without any of these the process keeps its mode ($CYFFE_BACKEND).
    With several ids, rank r of a data-parallel job takes the r-th.
    """
    flag = getattr(args, "gpu", None)
    if getattr(args, "cpu", False):
        cyffe.set_mode_cpu()
        return
    if backend.environment_mode() == "cpu":
        if flag is not None:
            print(f"{prog}: note: --gpu {flag} ignored: CYFFE_BACKEND=cpu", file=sys.stderr)
        cyffe.set_mode_cpu()
        return
    if flag is not None:
        ids = gpu_ids(flag)
        if not ids:
            print(f"{prog}: warning: --gpu {flag}: {backend.gpu_problem(0)}; running on the CPU",
                  file=sys.stderr)
            cyffe.set_mode_cpu()
            return
        if len(ids) > 1 and len(ids) != ranks:
            raise cyffe.CyffeError(
                f"--gpu {flag}: one process runs on one GPU; start one per GPU: "
                f"mpiexec -n {len(ids)} {prog} ... (rank r takes the r-th id)")
        device = ids[rank % len(ids)]
    elif requested is not None:
        problem = backend.gpu_problem(requested)
        if problem is not None:
            print(f"{prog}: warning: the solver asks for GPU {requested} (solver_mode: GPU) but "
                  f"{problem}; running on the CPU", file=sys.stderr)
            cyffe.set_mode_cpu()
            return
        device = requested
    else:
        return
    cyffe.set_device(device)
    cyffe.set_mode_gpu()


def parse_args(parser, argv=None):
    """parser.parse_args(argv), Caffe's spellings of its flags included (caffe_spellings)."""
    return parser.parse_args(caffe_spellings(parser, sys.argv[1:] if argv is None else argv))


def caffe_spellings(parser, argv):
    """argv with Caffe's (gflags') spellings of parser's flags turned into argparse's.

    gflags takes -flag and --flag, with the value after = or as the next
    argument, and booleans as --flag=true|false or --noflag; Caffe's names use
    underscores. Each of these, and a dash for an underscore, becomes the
    option as the parser spells it.
    """
    options = {}
    for action in parser._actions:
        for option in action.option_strings:
            if option.startswith("--"):
                options[_key(option)] = (option, action)
    out = []
    for i, token in enumerate(argv):
        if token == "--":
            out.extend(argv[i:])
            break
        out.extend(_spelled(str(token), options))
    return out


def _key(option):
    return option.lstrip("-").replace("-", "_")


def _spelled(token, options):
    """The argparse tokens for one command-line token (none for --flag=false)."""
    if not token.startswith("-") or len(token) < 3 or not token.lstrip("-")[:1].isalpha():
        return [token]
    name, eq, value = token.partition("=")
    key = _key(name)
    found = options.get(key)
    if found is None:
        _, action = options.get(key[2:], (None, None)) if key.startswith("no") else (None, None)
        return [] if isinstance(action, argparse._StoreTrueAction) and not eq else [token]
    option, action = found
    if isinstance(action, argparse._StoreTrueAction) and eq:
        if value.lower() in ("true", "1", "yes", "t", "y"):
            return [option]
        if value.lower() in ("false", "0", "no", "f", "n"):
            return []
    return [option + eq + value]
