"""What every benchmark worker measures: iteration times and its own peak resident memory.

Plain standard library, so a worker that imports this and OpenCV alone carries nothing of
cyffe's or NumPy's into its peak RSS.
"""
import resource
import time


def timed(step, iterations, warmup, seconds=None):
    """Seconds of each of `iterations` calls of step() after `warmup` untimed ones.

    With `seconds`, timing stops early once that much has passed and at least three
    calls are in: a slow net then costs a few seconds a round, not minutes.
    """
    for _ in range(warmup):
        step()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
        if seconds is not None and len(times) >= 3 and sum(times) >= seconds:
            break
    return times


def peak_rss_mb():
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not the parent's)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
