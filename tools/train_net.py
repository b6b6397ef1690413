"""train_net: train a Caffe net, from a net prototxt and flags or from a solver prototxt.

    train_net --proto examples/digits/lenet_train_test.prototxt
    train_net --solver lenet_solver.prototxt --log run.jsonl

    train_net --solver lenet_solver.prototxt --snapshot lenet_iter_5000.solverstate

Logs Caffe's lines to stderr with glog's prefix (as `caffe train`, so Caffe's
tools/extra/parse_log.py and parse_log.sh read them; --no_log_prefix for the bare
lines) and, as Caffe, snapshots the weights and
solver state (<snapshot_prefix>_iter_<N>.caffemodel and .solverstate, or .h5
for snapshot_format: HDF5) every `snapshot` iterations and after training.
--snapshot resumes from a solver state, --weights fine-tunes. Ctrl-C (SIGINT)
stops after the current iteration and SIGHUP snapshots, unless --sigint_effect
and --sighup_effect say otherwise. --log also writes each display and test as
a structured event (JSON lines, or CSV for a name ending in .csv; see
cyffe.net.analysis.training_log), for plot_training_log. When stderr is a
terminal and tqdm is installed (pip install "cyffe[progress]"), a progress bar
with ETA, loss and throughput is drawn there; otherwise there is no bar.

Started by an MPI launcher (`mpiexec -n N train_net ...`: Open MPI's or MPICH's
environment says so), it trains data-parallel on N processes (needs mpi4py:
pip install "cyffe[mpi]"): each reads its own shard of the training data, the
gradients are averaged, and only rank 0 logs, tests and writes files. A signal to
any rank stops (or snapshots) the whole job at one iteration.
"""
import contextlib
import importlib.util
import os
import signal
import sys

import numpy as np

import cyffe
from cyffe.net.analysis.evaluation import batches_per_pass
from cyffe.net.analysis.training_log import TrainingLog
from cyffe.net.scaleout.communicator import Communicator, from_environment
from cyffe.net.scaleout.parallel import DataParallel
from cyffe.net.solver import LR_POLICIES
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.io import read_solver
from cyffe.tools import cli


def build_parser(prog="train_net"):
    p = cli.parser(prog, "Train a Caffe-format net with minibatch SGD. Give the net and solver "
                         "settings as flags (--proto), or a Caffe solver file (--solver); flags "
                         "given with --solver override the file.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--proto", metavar="NET", help="net prototxt (train and test phases)")
    source.add_argument("--solver", metavar="SOLVER",
                        help="Caffe solver prototxt; a relative net: path is taken from the working "
                             "directory, else from the solver file's folder")
    s = p.add_argument_group("solver settings (Caffe's names; with --solver, the file's values "
                             "unless given)")
    s.add_argument("--base_lr", type=float, default=0.01, help="base learning rate")
    s.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    s.add_argument("--weight_decay", type=float, default=5e-4, help="L2 weight decay")
    s.add_argument("--lr_policy", default="inv", choices=LR_POLICIES,
                   help="learning rate policy")
    s.add_argument("--gamma", type=float, default=1e-4, help="gamma of step/exp/inv/multistep/sigmoid")
    s.add_argument("--power", type=float, default=0.75, help="power of inv/poly")
    s.add_argument("--stepsize", type=int, default=1000, help="stepsize of step/sigmoid")
    s.add_argument("--stepvalue", type=int, action="append", metavar="N",
                   help="an iteration where multistep lowers the rate (repeatable)")
    s.add_argument("--max_iter", type=int, default=2000, metavar="N", help="iterations to train")
    s.add_argument("--test_interval", type=int, default=500, metavar="N",
                   help="test every N iterations (0: never)")
    s.add_argument("--test_iter", type=int, default=0, metavar="N",
                   help="batches per test (0: one pass over the test data when its size is "
                        "known, else 50)")
    s.add_argument("--display", type=int, default=100, metavar="N",
                   help="log every N iterations (0: never)")
    s.add_argument("--seed", type=int, default=-1, help="random seed (-1: not seeded)")
    r = p.add_mutually_exclusive_group()
    r.add_argument("--weights", metavar="W[,W]",
                   help="fine-tune: start from these weights (.caffemodel or .caffemodel.h5; "
                        "several, comma-separated, load in order)")
    r.add_argument("--snapshot", metavar="SOLVERSTATE",
                   help="resume training from this .solverstate (or .solverstate.h5)")
    p.add_argument("--out", metavar="PATH",
                   help="write the trained weights here instead of the final snapshot "
                        "<snapshot_prefix>_iter_<N>.caffemodel + .solverstate (without "
                        "a solver file, the prefix is the net name)")
    for signal_name, default in (("sigint", "stop"), ("sighup", "snapshot")):
        p.add_argument(f"--{signal_name}_effect", default=default,
                       choices=("snapshot", "stop", "none"),
                       help=f"what SIG{signal_name[3:].upper()} does during training, as "
                            "Caffe's: snapshot and go on, stop (with the final snapshot when "
                            "snapshot_after_train), or nothing")
    p.add_argument("--log", metavar="PATH",
                   help="also write every display and test as a structured event: JSON lines, "
                        "or CSV (iter,phase,net,name,value) when PATH ends in .csv")
    p.add_argument("--no_progress", action="store_true",
                   help="no progress bar even when stderr is a terminal")
    p.add_argument("--no_log_prefix", action="store_true",
                   help="write Caffe's log lines to stderr without glog's prefix "
                        "(I1204 22:18:40.123456 12345 solver.py:239])")
    p.add_argument("--diagnose", nargs="?", const="", metavar="PNG",
                   help="every display iterations, print per-layer activation, gradient and "
                        "update norms and warn of vanishing/exploding gradients and dead ReLUs; "
                        "at the end plot gradient norms to PNG (default: beside the weights, "
                        "<weights>_gradients.png; needs matplotlib)")
    p.add_argument("--level", type=int, help="the train net's state level (Caffe's -level)")
    p.add_argument("--stage", action="append", type=lambda s: s.split(","), default=[],
                   metavar="STAGE[,STAGE]",
                   help="a train net state stage (repeatable, or comma-separated)")
    cli.add_device(p)
    cli.add_common(p)
    return p


# Flags named for a solver field other than their own name.
FIELD_OF_FLAG = {"seed": "random_seed"}
SOLVER_FLAGS = ("base_lr", "momentum", "weight_decay", "lr_policy", "gamma", "power", "stepsize",
                "max_iter", "test_interval", "display", "seed")


def solver_from_flags(args, given):
    """A SolverParameter: from --solver (the flags in `given` override it) or from flags."""
    if args.solver:
        param, _ = read_solver(args.solver)
    else:
        param = pb.SolverParameter(net=args.proto)
    for flag in SOLVER_FLAGS:
        if not args.solver or flag in given:
            setattr(param, FIELD_OF_FLAG.get(flag, flag), getattr(args, flag))
    if args.stepvalue and (not args.solver or "stepvalue" in given):
        del param.stepvalue[:]
        param.stepvalue.extend(args.stepvalue)
    if args.level is not None:
        param.train_state.level = args.level
    param.train_state.stage.extend(s for s in cli.stages(args)
                                   if s not in param.train_state.stage)
    if not args.solver:
        param.solver_mode = pb.SolverParameter.CPU
    return param


def main(argv=None, prog="train_net"):
    parser = build_parser(prog)
    tokens = cli.caffe_spellings(parser, sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(tokens)
    given = {t[2:].split("=")[0] for t in tokens if t.startswith("--")}
    comm = Communicator()
    try:
        comm = from_environment()
        # Overflow shows up as a non-finite loss, which the solver reports with
        # the iteration and layer; NumPy's warnings would only repeat it.
        with np.errstate(all="ignore"):
            return train(args, given, comm, prog)
    except BrokenPipeError:
        code = cli.closed_stdout()
        comm.abort(code)
        return code
    except (cyffe.CyffeError, OSError) as e:
        if args.debug:
            raise
        print(f"{prog}: error: {comm.describe()}{e}", file=sys.stderr)
        comm.abort(1)         # the other ranks would wait for this one forever
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: {comm.describe()}interrupted; no weights written", file=sys.stderr)
        comm.abort(130)
        return 130


def progress_bar(total, stream=None):
    """A tqdm bar on `stream` (default stderr) when it is a terminal and tqdm is installed, else None."""
    stream = sys.stderr if stream is None else stream
    if not getattr(stream, "isatty", lambda: False)():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, file=stream, unit="iter", dynamic_ncols=True, leave=True)


def follow(solver, bar):
    """Drive `bar` from the solver: one tick per iteration, the loss and images/s as postfix."""
    images = (solver.net.batch_size or 0) * max(solver.param.iter_size, 1)

    def tick(s):
        bar.update(1)
        postfix = {"loss": f"{s.smoothed_loss:.4g}"}
        rate = bar.format_dict.get("rate")
        if images and rate:
            postfix["img/s"] = f"{rate * images:,.0f}"
        bar.set_postfix(postfix, refresh=False)
    solver.add_callback(tick)


class BarStream:
    """A stream for log lines that prints them above a tqdm bar (tqdm.write), on stderr."""

    def __init__(self, bar):
        self.bar = bar

    def write(self, text):
        if text.strip():
            self.bar.write(text.rstrip("\n"), file=sys.stderr)

    def flush(self):
        pass


class SignalActions:
    """Turn SIGINT/SIGHUP during training into the solver's snapshot/stop requests (Caffe's).

    The handlers only note the signal; the solver acts on it between
    iterations, so a file being written is always finished first.
    """

    def __init__(self, effects):
        self.effects = {sig: effect for sig, effect in effects.items() if sig is not None}
        self.pending, self.stopped_by, self._previous = [], None, {}

    def __enter__(self):
        for sig in self.effects:
            self._previous[sig] = signal.signal(sig, self._note)
        return self

    def _note(self, number, frame):
        self.pending.append(number)

    def __exit__(self, *exc):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)

    def __call__(self):
        """The solver's action: the effect of the first signal not yet acted on."""
        while self.pending:
            sig = self.pending.pop(0)
            effect = self.effects[sig]
            if effect == "stop":
                self.stopped_by = signal.Signals(sig).name
            if effect != "none":
                return effect
        return None


def agreed(actions, comm):
    """The solver's action in a data-parallel job: every rank's signal requests combined.

    mpiexec may hand a Ctrl-C to some ranks before others (or to some only); the ranks
    compare requests after every iteration, so all stop at the same one, and only rank 0
    writes the snapshot asked for.
    """
    flags = np.zeros(2)     # [snapshot asked, number of the signal that asked to stop]

    def action():
        request = actions()
        flags[0] = request == "snapshot"
        flags[1] = signal.Signals[actions.stopped_by].value if request == "stop" else 0
        comm.allreduce_max(flags)
        if flags[1]:
            actions.stopped_by = signal.Signals(int(flags[1])).name
            return "stop"
        return "snapshot" if flags[0] and comm.is_root else None
    return action


def requested_gpu(param):
    """The device a solver file's solver_mode: GPU asks for, else None (Caffe's tool reads it)."""
    if param.HasField("solver_mode") and param.solver_mode == pb.SolverParameter.GPU:
        return param.device_id
    return None


def train(args, given, comm=None, prog="train_net"):
    comm = comm or Communicator()
    if args.diagnose is not None and importlib.util.find_spec("matplotlib") is None:
        raise cyffe.CyffeError('--diagnose plots the gradient norms with matplotlib, which is not '
                               'installed: pip install "cyffe[plot]"')
    param = solver_from_flags(args, given)
    cli.choose_device(prog, args, requested_gpu(param), comm.rank, comm.size)
    if args.out:
        param.snapshot_after_train = False       # --out takes the final snapshot's place
    bar = None if args.no_progress or not comm.is_root else progress_bar(param.max_iter)
    if comm.is_root:
        # Every line Caffe logs, on stderr; with a bar, through tqdm.write so they do not tear it.
        cyffe.init_log(prefix=not args.no_log_prefix,
                       stream=BarStream(bar) if bar is not None else None)
    else:
        cyffe.init_log(level=1)                  # as Caffe's other ranks: warnings and errors only
    say = (lambda line: bar.write(line, file=sys.stdout)) if bar is not None else print
    try:
        if args.solver:
            if args.test_iter:
                param.test_iter[:] = [args.test_iter] * len(param.test_iter)
            solver = cyffe.get_solver(param, source=args.solver)
        else:
            if param.test_interval > 0:
                param.test_iter.append(args.test_iter or 1)
            solver = cyffe.SGDSolver(param)
            if not args.test_iter:
                solver.param.test_iter[:] = [batches_per_pass(n) for n in solver.test_nets]
        if solver.snapshot_prefix is None:
            solver.snapshot_prefix = solver.net.name or "net"
        if args.weights:
            for weights in args.weights.split(","):
                solver.log(f"Finetuning from {weights}")
                solver.net.copy_from(weights)
        # Shard and seed each rank before a restore, so its data layers skip through
        # their own shard (and draw their own stream), as the job that was not stopped.
        parallel = DataParallel(solver, comm) if comm.size > 1 else None
        if args.snapshot:
            solver.restore(args.snapshot)
            if parallel is not None:
                parallel.broadcast_state()       # rank 0's restored state goes to all
            if bar is not None:
                bar.update(solver.iter)
        actions = SignalActions({signal.SIGINT: args.sigint_effect,
                                 getattr(signal, "SIGHUP", None): args.sighup_effect})
        solver.action = actions if parallel is None else agreed(actions, comm)
        if not comm.is_root:
            with actions:
                solver.solve()
            return 0
        if args.diagnose is not None:
            solver.enable_diagnostics(log=say)
        if bar is not None:
            follow(solver, bar)
        with actions, contextlib.ExitStack() as stack:
            if args.log:
                solver.add_event_listener(stack.enter_context(TrainingLog(args.log)))
            solver.solve()
    finally:
        if bar is not None:
            bar.close()
    if args.out:
        out = args.out
        solver.net.save(out)
    elif solver.last_snapshot and solver.last_snapshot[0] == solver.snapshot_paths()[0]:
        out = solver.last_snapshot[0]
    else:
        out = None
        print("No final weights written (snapshot_after_train is false; give --out)")
    if out is not None:
        print(f"Wrote trained weights to {os.path.abspath(out)}")
    if actions.stopped_by:
        print(f"{prog}: {actions.stopped_by} at iteration {solver.iter}: training stopped",
              file=sys.stderr)
    if args.diagnose is not None:
        beside = out or default_output(solver)
        plot = args.diagnose or os.path.splitext(beside)[0] + "_gradients.png"
        solver.diagnostics.plot(plot)
        print(f"Wrote gradient norms per layer to {os.path.abspath(plot)}")
    return 0


def default_output(solver):
    """Where the final snapshot's weights go: <snapshot_prefix>_iter_<N>.caffemodel."""
    return solver.snapshot_paths()[0]


if __name__ == "__main__":
    sys.exit(main())
