"""The inference suite: cyffe against OpenCV DNN (and PyTorch twins) on the Caffe zoo nets.

`python -m benchmarks.inference` times the forward pass (TEST phase, inputs set before the
clock starts) of LeNet, cifar10_quick and MTCNN det1-4 with their trained weights, and of
SqueezeNet 1.0/1.1, GoogLeNet, ResNet-50, AlexNet, CaffeNet and VGG-16 with seeded random
weights that cyffe writes once per run into a temporary folder (benchmarks/zoo.py), at
batch 1 and 16 (8 for VGG-16 and ResNet-50), on 2 threads. OpenCV reads the same prototxt
and .caffemodel (`pip install "opencv-python-headless<5"`: OpenCV 5 dropped the Caffe
importer); PyTorch runs the twins of LeNet and cifar10_quick (benchmarks/torch_nets).
Either is left out when it is not installed. Every configuration runs in its own process,
so its peak RSS is its own; configurations alternate round by round and each time is the
median over all rounds. The first round's outputs are compared with OpenCV's: the largest
absolute difference over the largest absolute value of OpenCV's output, worst output of the
net; above the tolerance the row says DISAGREES. A failed worker is a row that says FAILED,
not the end of the run. It writes a Markdown table and a JSON file (date, machine, load
averages) to benchmarks/results/ and prints the table. `--quick` is a short smoke run.
"""
import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cyffe import CyffeError

from . import zoo
from .inference_worker import FRAMEWORKS
from .run import RESULTS, machine, median

LABELS = {"cyffe": "cyffe", "opencv": "OpenCV", "torch": "PyTorch"}
MODULES = {"cyffe": "cyffe", "opencv": "cv2", "torch": "torch"}
ROOT = Path(__file__).resolve().parent.parent


def available(frameworks, log):
    """The frameworks asked for that are installed; a line for each that is not."""
    found = []
    for f in frameworks:
        if importlib.util.find_spec(MODULES[f]):
            found.append(f)
        else:
            hint = ('"opencv-python-headless<5"' if f == "opencv" else "torch==2.13.0")
            log(f"{MODULES[f]} is not installed: {LABELS[f]} left out (pip install {hint})")
    return found


def prepare(names, batches, folder, seed, log):
    """Weights, inputs and output names of each net that can run; {net: why not} for the rest."""
    nets, skipped = {}, {}
    for name in names:
        reason = zoo.missing(name)
        if reason:
            skipped[name] = reason
            log(f"{name}: skipped, {reason}")
            continue
        started = time.perf_counter()
        try:
            weights, outputs = zoo.prepare(name, folder, seed)
        except (CyffeError, ValueError) as e:
            skipped[name] = f"cyffe could not build it or write its weights: {e}"
            log(f"{name}: skipped, {skipped[name]}")
            continue
        param = zoo.param_at_batch(zoo.NETS[name].prototxt, 1)
        shape = zoo.image_shape(param)
        inputs = {}
        for batch in batches or zoo.NETS[name].batches:
            inputs[batch] = Path(folder) / f"{name}-b{batch}.npy"
            np.save(inputs[batch], zoo.inputs(name, batch, shape, seed))
        nets[name] = {"weights": str(weights), "outputs": outputs,
                      "layers": zoo.output_layers(param, outputs), "inputs": inputs}
        if zoo.NETS[name].weights is None:
            log(f"{name}: seeded random weights written in "
                f"{time.perf_counter() - started:.1f} s")
    return nets, skipped


def configurations(nets, frameworks, threads):
    """Every (framework, net, batch, threads) to measure, in the order of one round."""
    return [(f, name, batch, t) for name, net in nets.items() for batch in net["inputs"]
            for t in threads for f in frameworks
            if f != "torch" or zoo.NETS[name].torch_twin]


def run_config(config, net, timing, folder, save):
    """One configuration in a fresh process: its JSON result, or {"error": its last line}."""
    framework, name, batch, threads = config
    env = dict(os.environ, OMP_NUM_THREADS=threads, CYFFE_BENCH_THREADS=threads,
               OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads, CYFFE_BACKEND="cpu")
    outputs = net["layers"] if framework == "opencv" else net["outputs"]
    command = [sys.executable, "-m", "benchmarks.inference_worker", framework,
               str(zoo.NETS[name].prototxt), net["weights"], str(net["inputs"][batch]),
               "--outputs", *outputs, "--iterations", str(timing["iterations"]),
               "--warmup", str(timing["warmup"]), "--seconds", str(timing["seconds"])]
    if framework == "torch":
        command += ["--blobs", str(zoo.twin_blobs(folder, name))]
    if save:
        command += ["--save", str(saved(folder, config))]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["loadavg"] = os.getloadavg()
    return result


def saved(folder, config):
    """Where a configuration's worker writes its outputs."""
    framework, name, batch, threads = config
    return Path(folder) / f"{framework}-{name}-b{batch}-t{threads}.npz"


def measure(configs, nets, rounds, timing, folder, log):
    """Run every configuration `rounds` times, alternating; {config: [results]}.

    A configuration that failed is not run again: its error stands for every round.
    """
    samples = {c: [] for c in configs}
    for r in range(rounds if configs else 0):
        # Rotate the order each round so no framework always runs first (or hot).
        order = configs[r % len(configs):] + configs[:r % len(configs)]
        for config in order:
            if samples[config] and "error" in samples[config][0]:
                continue
            result = run_config(config, nets[config[1]], timing, folder, save=not samples[config])
            samples[config].append(result)
            what = (f"FAILED: {result['error']}" if "error" in result
                    else f"{median(result['times']) * 1e3:.2f} ms")
            log(f"round {r + 1}/{rounds}: {config[0]} {config[1]} batch {config[2]} "
                f"({config[3]} threads): {what}")
    return samples


def difference(mine, reference):
    """Largest |mine - reference| over the largest |reference|, worst output; or why not."""
    if len(mine) != len(reference):
        return f"{len(mine)} outputs, OpenCV {len(reference)}"
    worst = 0.0
    for a, b in zip(mine, reference):
        if a.size != b.size:
            return f"shape {a.shape}, OpenCV {b.shape}"
        a = a.reshape(b.shape).astype(np.float64)
        scale = float(np.abs(b).max()) or 1.0
        diff = float(np.abs(a - b).max()) / scale
        worst = max(worst, diff if math.isfinite(diff) else math.inf)
    return worst


def agreement(config, folder):
    """How a configuration's saved outputs differ from OpenCV's (None: nothing to compare)."""
    reference = saved(folder, ("opencv",) + config[1:])
    mine = saved(folder, config)
    if not (reference.exists() and mine.exists()):
        return None
    with np.load(mine) as a, np.load(reference) as b:
        return difference([a[k] for k in sorted(a.files, key=_order)],
                          [b[k] for k in sorted(b.files, key=_order)])


def _order(key):
    return int(key.split("_")[1])


def summarize(samples, frameworks, folder):
    """One row per (net, batch, threads): each framework's median, peak RSS and agreement."""
    rows = {}
    for config, runs in samples.items():
        framework, name, batch, threads = config
        row = rows.setdefault((name, batch, threads), {"net": name, "batch": batch,
                                                        "threads": threads})
        if "error" in runs[0]:
            row[framework] = {"error": runs[0]["error"]}
            continue
        seconds = median([t for run in runs for t in run["times"]])
        row[framework] = {"median_ms": seconds * 1e3, "images_per_s": batch / seconds,
                          "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
                          "iterations": sum(len(run["times"]) for run in runs),
                          "loadavg": [run["loadavg"] for run in runs]}
        if framework != "opencv":
            row[framework]["vs_opencv"] = agreement(config, folder)
    for row in rows.values():
        for f in frameworks:
            if f != "opencv" and "median_ms" in row.get(f, {}) \
                    and "median_ms" in row.get("opencv", {}):
                row[f"{f}_over_opencv"] = row[f]["median_ms"] / row["opencv"]["median_ms"]
        if "median_ms" in row.get("cyffe", {}) and "median_ms" in row.get("torch", {}):
            row["cyffe_over_torch"] = row["cyffe"]["median_ms"] / row["torch"]["median_ms"]
    return list(rows.values())


def _agrees(value, tolerance):
    if value is None:
        return "—"
    if isinstance(value, str):
        return f"**{value}: DISAGREES**"
    return f"{value:.1e}" if value <= tolerance else f"**{value:.1e} DISAGREES**"


def markdown(report):
    """The results as Markdown: one row per net, batch and thread count."""
    frameworks, tolerance = report["frameworks"], report["tolerance"]
    others = [f for f in frameworks if f != "opencv"]
    lines = [f"Inference benchmarks of {report['date']} on {report['machine']['cpu']} "
             f"({report['machine']['cores']} cores), OpenCV "
             f"{report['machine'].get('opencv', '(absent)')}, medians of {report['rounds']} "
             f"alternating rounds x up to {report['iterations']} forwards (at most "
             f"{report['seconds']:g} s of them a round) after {report['warmup']} untimed; load "
             f"average {report['loadavg_start'][0]:.2f} at the start, "
             f"{report['loadavg_end'][0]:.2f} at the end, {report['loadavg_peak']:.2f} at "
             "its peak; OPENBLAS_CORETYPE="
             f"{report['machine'].get('openblas_coretype') or '(unset)'}. "
             "Times are ms per forward of the whole batch; a ratio below 1 means "
             "cyffe is faster. The difference is the largest |output - OpenCV's| over the "
             f"largest |OpenCV's output|, worst output of the net (tolerance {tolerance:g}).",
             ""]
    head = ["net", "batch", "threads"] + [f"{LABELS[f]} ms" for f in frameworks]
    if "cyffe" in frameworks:
        head += [f"cyffe / {LABELS[f]}" for f in frameworks if f != "cyffe"]
    head += ["peak RSS MB (" + ", ".join(LABELS[f] for f in frameworks) + ")"]
    if "opencv" in frameworks:
        head += [f"{LABELS[f]} vs OpenCV" for f in others]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report["results"]:
        cells = [row["net"], str(row["batch"]), row["threads"]]
        for f in frameworks:
            r = row.get(f)
            cells.append("—" if r is None else
                         "**FAILED**" if "error" in r else f"{r['median_ms']:,.2f}")
        if "cyffe" in frameworks:
            for f in frameworks:
                if f == "cyffe":
                    continue
                key = "cyffe_over_opencv" if f == "opencv" else "cyffe_over_torch"
                cells.append(f"{row[key]:.2f}" if key in row else "—")
        cells.append(", ".join(f"{row[f]['peak_rss_mb']:.0f}" if "peak_rss_mb" in row.get(f, {})
                               else "—" for f in frameworks))
        if "opencv" in frameworks:
            cells += [_agrees(row.get(f, {}).get("vs_opencv"), tolerance) for f in others]
        lines.append("| " + " | ".join(cells) + " |")
    ratios = [row["cyffe_over_opencv"] for row in report["results"] if "cyffe_over_opencv" in row]
    if ratios:
        faster = sum(r < 1 for r in ratios)
        mean = math.exp(sum(map(math.log, ratios)) / len(ratios))
        lines += ["", f"cyffe is faster than OpenCV in {faster} of {len(ratios)} rows; the "
                  f"geometric mean of cyffe / OpenCV is {mean:.2f}."]
    failures = [(row, f, row[f]["error"]) for row in report["results"] for f in frameworks
                if "error" in row.get(f, {})]
    for row, f, error in failures:
        lines += ["", f"FAILED: {LABELS[f]} on {row['net']} at batch {row['batch']} "
                  f"({row['threads']} threads): {error}"]
    for name, reason in report["skipped"].items():
        lines += ["", f"Skipped {name}: {reason}"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: one round of 2 forwards, LeNet")
    parser.add_argument("--nets", nargs="+", choices=list(zoo.NETS), default=list(zoo.NETS))
    parser.add_argument("--batch", nargs="+", type=int,
                        help="batches to run every net at (default: 1 and 16, 8 for "
                             "VGG-16 and ResNet-50)")
    parser.add_argument("--threads", nargs="+", choices=("1", "2"), default=["2"])
    parser.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS, default=list(FRAMEWORKS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=20,
                        help="timed forwards per process, at most")
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="stop timing a process after this long (at least 3 forwards)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest relative difference from OpenCV that agrees")
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.iterations, args.warmup = 1, 2, 1
        if args.nets == list(zoo.NETS):
            args.nets = ["lenet"]

    def log(line):
        print(line, file=sys.stderr, flush=True)

    frameworks = available(args.frameworks, log)
    info = machine()
    if "opencv" in frameworks:
        info["opencv"] = importlib.metadata.version("opencv-python-headless")
    now = datetime.datetime.now(datetime.timezone.utc)
    report = {"date": now.strftime("%Y-%m-%d %H:%M UTC"), "machine": info,
              "rounds": args.rounds, "iterations": args.iterations, "seconds": args.seconds,
              "warmup": args.warmup, "seed": args.seed, "tolerance": args.tolerance,
              "frameworks": frameworks, "loadavg_start": os.getloadavg()}
    started = time.perf_counter()
    timing = {"iterations": args.iterations, "warmup": args.warmup, "seconds": args.seconds}
    with tempfile.TemporaryDirectory(prefix="cyffe-inference-") as folder:
        nets, report["skipped"] = prepare(args.nets, args.batch, folder, args.seed, log)
        configs = configurations(nets, frameworks, args.threads)
        samples = measure(configs, nets, args.rounds, timing, folder, log)
        report["results"] = summarize(samples, frameworks, folder)
    report["loadavg_end"] = os.getloadavg()
    report["loadavg_peak"] = max([report["loadavg_start"][0], report["loadavg_end"][0]] +
                                 [load[0] for row in report["results"] for f in frameworks
                                  for load in row.get(f, {}).get("loadavg", [])])
    report["elapsed_s"] = time.perf_counter() - started
    table = markdown(report)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{now.strftime('%Y%m%d-%H%M%S')}-{platform.node() or 'machine'}-inference"
    (args.output_dir / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.output_dir / f"{stem}.md").write_text(table)
    print(table)
    return report


if __name__ == "__main__":
    main()
