"""cyffe: Caffe's `caffe` command (tools/caffe.cpp), its commands and flags as Caffe spells them.

    cyffe train --solver=examples/mnist/lenet_solver.prototxt
    cyffe train -solver lenet_solver.prototxt -snapshot lenet_iter_5000.solverstate
    cyffe train -solver finetune_solver.prototxt -weights a.caffemodel,b.caffemodel
    cyffe test -model lenet_train_test.prototxt -weights lenet_iter_10000.caffemodel -iterations 100
    cyffe time -model lenet_train_test.prototxt -iterations 10
    cyffe device_query -gpu 0

Flags go before or after the command, as -flag or --flag, with the value after
= or a space (gflags' ways). Each command is train_net, test_net or time_net
with Caffe's defaults: `test` builds the TEST net and runs 50 batches unless
-iterations says otherwise; `time` builds the TRAIN net (or -phase) and times
every layer's forward and backward. -gpu takes ids (0, or 0,1 under mpiexec,
one per rank) or all; without it a solver file's solver_mode: GPU is used
when a GPU is usable, else the CPU after one warning line.
"""
import sys

import cyffe
from cyffe.layers.backend import device_properties
from cyffe.tools import cli, test_net, time_net, train_net

COMMANDS = {
    "train": "train or finetune a model",
    "test": "score a model",
    "device_query": "show GPU diagnostic information",
    "time": "benchmark model execution time",
}


def build_parser():
    p = cli.parser("cyffe", "Caffe's command line brew: "
                            + "; ".join(f"{name}: {what}" for name, what in COMMANDS.items())
                            + ". Flags as Caffe's (-flag value, --flag=value).")
    p.usage = "cyffe <command> <args>"
    p.add_argument("command", choices=COMMANDS, metavar="COMMAND",
                   help="train, test, time or device_query")
    p.add_argument("--solver", help="the solver definition protocol buffer text file (train)")
    p.add_argument("--model", help="the model definition protocol buffer text file (test, time)")
    p.add_argument("--weights", metavar="W[,W]",
                   help="the pretrained weights to initialize finetuning (train; several, "
                        "comma-separated), or to score (test); not with --snapshot")
    p.add_argument("--snapshot", metavar="SOLVERSTATE",
                   help="the snapshot solver state to resume training from")
    p.add_argument("--iterations", type=int, default=50, metavar="N",
                   help="the number of iterations to run (test, time)")
    p.add_argument("--gpu", metavar="ID[,ID]|all",
                   help="run in GPU mode on these device ids, or all; without it, train follows "
                        "the solver file's solver_mode")
    p.add_argument("--phase", type=str.upper, choices=("TRAIN", "TEST"),
                   help="the net phase to time (default TRAIN); test always builds TEST")
    p.add_argument("--level", type=int, default=0, help="the net state's level")
    p.add_argument("--stage", action="append", type=lambda s: s.split(","), default=[],
                   metavar="STAGE[,STAGE]", help="net state stages, comma-separated")
    for signal_name, default in (("sigint", "stop"), ("sighup", "snapshot")):
        p.add_argument(f"--{signal_name}_effect", default=default,
                       choices=("snapshot", "stop", "none"),
                       help=f"what SIG{signal_name[3:].upper()} does during training")
    cli.add_common(p)
    return p


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv:
        parser.print_help()
        return 1
    args = cli.parse_args(parser, argv)
    need = {"train": ("solver", "Need a solver definition to train"),
            "test": ("model", "Need a model definition to score"),
            "time": ("model", "Need a model definition to time"),
            "device_query": ("gpu", "Need a device ID to query (-gpu 0, or -gpu all)")}
    flag, message = need[args.command]
    if getattr(args, flag) is None:
        parser.error(f"{message}: give --{flag}")
    if args.command == "test" and args.weights is None:
        parser.error("Need model weights to score: give --weights")
    if args.command == "train" and args.weights and args.snapshot:
        parser.error("Give a snapshot to resume training or weights to finetune but not both")
    if args.command == "device_query":
        return cli.run("cyffe", device_query, args)
    return {"train": train, "test": test, "time": time}[args.command](args)


def _common(args):
    """The flags every command passes on: net state, device, --debug."""
    argv = [f"--stage={','.join(cli.stages(args))}"] if cli.stages(args) else []
    argv += ["--gpu", args.gpu] if args.gpu is not None else []
    return argv + (["--debug"] if args.debug else [])


def train(args):
    """train_net --solver, with -weights or -snapshot, -level/-stage and the signal effects."""
    argv = ["--solver", args.solver, "--sigint_effect", args.sigint_effect,
            "--sighup_effect", args.sighup_effect, "--level", str(args.level)]
    argv += ["--weights", args.weights] if args.weights else []
    argv += ["--snapshot", args.snapshot] if args.snapshot else []
    return train_net.main(argv + _common(args), prog="cyffe")


def test(args):
    """test_net in TEST over -iterations batches (Caffe's default 50)."""
    argv = ["--proto", args.model, "--weights", args.weights, "--phase", "TEST",
            "--iterations", str(args.iterations), "--level", str(args.level)]
    return test_net.main(argv + _common(args), prog="cyffe")


def time(args):
    """time_net: each layer's forward and backward, in TRAIN unless -phase says TEST."""
    argv = ["--proto", args.model, "--phase", args.phase or "TRAIN",
            "--iterations", str(args.iterations), "--level", str(args.level)]
    return time_net.main(argv + _common(args), prog="cyffe")


def device_query(args):
    """Caffe's DeviceQuery lines for each device of -gpu."""
    print(f"Querying GPUs {args.gpu}")
    ids = cli.gpu_ids(args.gpu)
    if not ids:
        raise cyffe.CyffeError(f"--gpu {args.gpu}: no GPU is usable here")
    for device in ids:
        for label, value in device_properties(device):
            print(f"{label + ':':<31}{value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
