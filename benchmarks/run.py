"""The benchmark suite: cyffe, PyTorch (eager NCHW and channels_last) and a NumPy reference.

`python -m benchmarks.run` measures training (forward + backward + SGD update; inputs fed
to Input layers, so no data loading) and inference images/second for LeNet (batch 64),
cifar10_quick (batch 100) and a small ResNet (batch 64), at 1 thread, 2 threads, and 2
threads while another process keeps one core busy. Every configuration runs in its own
process (so its peak RSS is its own); configurations alternate round by round and each
figure is the median over all rounds. It writes a Markdown table and a JSON file (date,
machine, load averages) to benchmarks/results/, and prints the table. `--quick` is a short
smoke run. The cyffe LeNet/cifar10_quick runs also carry a per-layer profile
(net/analysis/timing.time_layers) and the framework's own overhead, and each net trained at 2
threads its GEMM GFLOP/s against the SGEMM limit measured in the same run (NumPy's
OpenBLAS, and cyffe's own GEMM, on a 2048^3 float32 product).
"""
import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from . import nets

RESULTS = Path(__file__).resolve().parent / "results"
FRAMEWORKS = ("cyffe", "torch", "torch_cl", "numpy")
LABELS = {"cyffe": "cyffe", "torch": "PyTorch eager", "torch_cl": "PyTorch channels_last",
          "numpy": "NumPy im2col"}
SETTINGS = ("1", "2", "2+load")       # threads; "+load": a busy process on one core
NUMPY_NETS = ("lenet",)               # what the NumPy reference covers


def machine():
    """A short description of this machine: CPU model, cores, Python, NumPy, torch."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    # OPENBLAS_CORETYPE picks OpenBLAS's kernels (Haswell's AVX2 ones run at about half
    # the speed of the AVX-512 ones on an AVX-512 CPU): it changes our GEMMs, not PyTorch's.
    info = {"node": platform.node(), "cpu": model, "cores": os.cpu_count(),
            "python": platform.python_version(),
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "")}
    # Versions from the metadata: importing torch here would inflate the workers' RSS.
    for package in ("numpy", "torch"):
        try:
            info[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return info


# The SGEMM limit: NumPy's OpenBLAS on a 2048^3 float32 product, the median of 5.
SGEMM = """
import time
import numpy as np
a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
a @ a
times = []
for _ in range(5):
    start = time.perf_counter()
    a @ a
    times.append(time.perf_counter() - start)
print(2 * 2048 ** 3 / sorted(times)[2] / 1e9)
"""


# The same product through cyffe's own GEMM (layers/kernels/blas: the AVX-512 kernel where the
# CPU has it, one-thread BLAS blocks otherwise) on OpenMP threads.
CYFFE_SGEMM = """
import json, time
import numpy as np
from cyffe.layers.kernels.avx512 import available as avx512
from cyffe.layers.kernels.blas import gemm
a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
c = np.empty_like(a)
gemm(a, a, c)
times = []
for _ in range(5):
    start = time.perf_counter()
    gemm(a, a, c)
    times.append(time.perf_counter() - start)
print(json.dumps({"gflops": 2 * 2048 ** 3 / sorted(times)[2] / 1e9, "avx512": avx512()}))
"""


def sgemm_limit(threads="2"):
    """GFLOP/s of a large SGEMM on `threads` BLAS threads, in a fresh process."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads)
    done = subprocess.run([sys.executable, "-c", SGEMM], env=env, capture_output=True,
                          text=True, check=True)
    return float(done.stdout.strip())


def cyffe_sgemm(threads="2"):
    """cyffe's GEMM on the same product: {"gflops": ..., "avx512": its kernels on?}."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS=threads)
    done = subprocess.run([sys.executable, "-c", CYFFE_SGEMM], env=env, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout)


def busy_core():
    """Start a process that keeps one core busy (the competing load)."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def run_config(framework, net, mode, setting, iterations, warmup, profile=False):
    """Run one configuration in a fresh process; returns its JSON result (plus the load)."""
    threads = setting.split("+")[0]
    # The CPU engine is what is measured, whatever $CYFFE_BACKEND says outside.
    env = dict(os.environ, OMP_NUM_THREADS=threads, CYFFE_BENCH_THREADS=threads,
               OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads, CYFFE_BACKEND="cpu")
    command = [sys.executable, "-m", "benchmarks.worker", framework, net, mode,
               "--iterations", str(iterations), "--warmup", str(warmup)]
    if profile:
        command.append("--profile")
    load = busy_core() if setting.endswith("+load") else None
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent.parent)
    finally:
        if load is not None:
            load.kill()
            load.wait()
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{framework} {net} {mode} ({setting} threads) failed: {last}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["loadavg"] = os.getloadavg()
    return result


def configurations(net_names, frameworks, settings, modes):
    """Every (framework, net, mode, setting) to measure, in the order of one round."""
    return [(f, n, m, s) for n in net_names for m in modes for s in settings
            for f in frameworks if f != "numpy" or n in NUMPY_NETS]


def median(values):
    """The median of a non-empty list."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def measure(configs, rounds, iterations, warmup, log):
    """Run every configuration `rounds` times, alternating; returns the summary rows."""
    samples = {c: [] for c in configs}
    for r in range(rounds):
        # Rotate the order each round so no framework always runs first (or hot).
        order = configs[r % len(configs):] + configs[:r % len(configs)]
        for config in order:
            result = run_config(*config, iterations, warmup)
            samples[config].append(result)
            log(f"round {r + 1}/{rounds}: {' '.join(config)}: "
                f"{median(result['times']) * 1e3:.1f} ms/iter")
    rows = []
    for (framework, net, mode, setting), runs in samples.items():
        seconds = median([t for run in runs for t in run["times"]])
        rows.append({"framework": framework, "net": net, "mode": mode, "threads": setting,
                     "batch": nets.batch_size(net), "median_ms": seconds * 1e3,
                     "images_per_s": nets.batch_size(net) / seconds,
                     "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
                     "loadavg": [run["loadavg"] for run in runs]})
    return rows


def profiles(net_names, iterations, log):
    """Per-layer profile and framework overhead of cyffe training at 2 threads."""
    out = {}
    for net in net_names:
        result = run_config("cyffe", net, "train", "2", iterations, 1, profile=True)
        out[net] = {"layers": result["layers"], "overhead": result["overhead"]}
        log(f"profile {net}: framework overhead {result['overhead']['share']:.1%}")
    return out


def _cell(rows, **key):
    for row in rows:
        if all(row[k] == v for k, v in key.items()):
            return row
    return None


def markdown(report):
    """The results as Markdown: the throughput table, then the per-layer profiles."""
    rows, frameworks = report["results"], report["frameworks"]
    lines = [f"Benchmarks of {report['date']} on {report['machine']['cpu']} "
             f"({report['machine']['cores']} cores), medians of {report['rounds']} alternating "
             f"rounds x {report['iterations']} iterations; load average at start "
             f"{report['loadavg_start'][0]:.2f}; OPENBLAS_CORETYPE="
             f"{report['machine'].get('openblas_coretype') or '(unset)'}.", ""]
    head = ["net", "mode", "threads"] + [LABELS[f] + " img/s" for f in frameworks]
    peers = [f for f in ("torch", "torch_cl") if f in frameworks]
    head += [f"cyffe / {LABELS[p]}" for p in peers if "cyffe" in frameworks]
    head += ["peak RSS MB (" + ", ".join(frameworks) + ")"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    keys = []
    for row in rows:
        key = (row["net"], row["mode"], row["threads"])
        if key not in keys:
            keys.append(key)
    for net, mode, threads in keys:
        cells = {f: _cell(rows, framework=f, net=net, mode=mode, threads=threads)
                 for f in frameworks}
        line = [f"{net} ({nets.batch_size(net)})", mode, threads]
        line += [f"{cells[f]['images_per_s']:,.0f}" if cells[f] else "—" for f in frameworks]
        if "cyffe" in frameworks and cells["cyffe"]:
            line += [f"{cells['cyffe']['images_per_s'] / cells[p]['images_per_s']:.2f}x"
                     if cells[p] else "—" for p in peers]
        line.append(", ".join(f"{cells[f]['peak_rss_mb']:.0f}" if cells[f] else "—"
                              for f in frameworks))
        lines.append("| " + " | ".join(line) + " |")
    limit = report.get("sgemm_gflops")
    own = [run["gflops"] for run in report.get("cyffe_sgemm", [])]
    for row in rows:
        if limit and row["framework"] == "cyffe" and row["mode"] == "train" \
                and row["threads"] == "2":
            rate = nets.train_gflop(row["net"]) * row["images_per_s"] / row["batch"]
            line = (f"cyffe {row['net']} training at 2 threads: {rate:.0f} GFLOP/s in its "
                    f"GEMMs ({nets.train_gflop(row['net']):.2f} GFLOP per iteration), "
                    f"{rate / max(limit):.0%} of the SGEMM limit ({max(limit):.0f} GFLOP/s: "
                    "NumPy's OpenBLAS, 2 threads, 2048^3 float32, the better of the start and "
                    "end of this run)")
            if own:
                kernels = "AVX-512 kernels" if report["cyffe_sgemm"][0]["avx512"] else "BLAS"
                line += (f"; {rate / max(own):.0%} of cyffe's own GEMM on that product "
                         f"({max(own):.0f} GFLOP/s, {kernels})")
            lines += ["", line + "."]
    for net, prof in report.get("profiles", {}).items():
        o = prof["overhead"]
        lines += ["", f"cyffe {net} training, 2 threads, per layer (ms, medians); framework "
                  f"overhead (graph walk, reshape, dispatch) {o['share']:.1%} of "
                  f"{o['forward_backward_ms']:.2f} ms forward+backward:", "",
                  "| layer | type | forward | backward |", "|---|---|---|---|"]
        lines += [f"| {t['name']} | {t['type']} | {t['forward_ms']:.2f} | "
                  f"{t['backward_ms']:.2f} |" for t in prof["layers"]]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: one round, 2 iterations, LeNet, 1 and 2 threads")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--nets", nargs="+", choices=sorted(nets.NETS), default=list(nets.NETS))
    parser.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS, default=list(FRAMEWORKS))
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    parser.add_argument("--modes", nargs="+", choices=("train", "infer"),
                        default=["train", "infer"])
    parser.add_argument("--no-profile", action="store_true", help="skip the per-layer profile")
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.iterations, args.warmup = 1, 2, 1
        if args.nets == list(nets.NETS):
            args.nets = ["lenet"]
        if args.settings == list(SETTINGS):
            args.settings = ["1", "2"]
    frameworks = [f for f in args.frameworks
                  if not f.startswith("torch") or importlib.util.find_spec("torch")]

    def log(line):
        print(line, file=sys.stderr, flush=True)

    if len(frameworks) < len(args.frameworks):
        log("torch is not installed: PyTorch columns left out (pip install torch)")
    now = datetime.datetime.now(datetime.timezone.utc)
    report = {"date": now.strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
              "rounds": args.rounds, "iterations": args.iterations, "warmup": args.warmup,
              "frameworks": frameworks, "loadavg_start": os.getloadavg()}
    for net in args.nets:
        nets.source(net)
    started = time.perf_counter()
    configs = configurations(args.nets, frameworks, args.settings, args.modes)
    report["sgemm_gflops"] = [sgemm_limit()]
    report["cyffe_sgemm"] = [cyffe_sgemm()]
    report["results"] = measure(configs, args.rounds, args.iterations, args.warmup, log)
    report["sgemm_gflops"].append(sgemm_limit())
    report["cyffe_sgemm"].append(cyffe_sgemm())
    if not args.no_profile and "cyffe" in frameworks:
        report["profiles"] = profiles([n for n in args.nets if n != "resnet8"] or args.nets,
                                      args.iterations, log)
    report["loadavg_end"] = os.getloadavg()
    report["seconds"] = time.perf_counter() - started
    table = markdown(report)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{now.strftime('%Y%m%d-%H%M%S')}-{platform.node() or 'machine'}"
    (args.output_dir / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.output_dir / f"{stem}.md").write_text(table)
    print(table)
    return report


def cli(argv=None):
    """main() for the console: a failed configuration or missing net is one line, exit 1."""
    try:
        main(argv)
    except (RuntimeError, FileNotFoundError) as e:
        print(f"benchmarks.run: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    cli()
