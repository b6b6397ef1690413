# When a parallel loop is worth waking the other OpenMP threads. They sleep between loops
# (OMP_WAIT_POLICY=PASSIVE, cyffe's default), and waking them is a futex round trip of tens
# of microseconds, more on a busy machine: on two shared cores a ReLU over 500 values took
# 20 us on two threads and 1 us on one. So every prange of the layers and kernels says
# `use_threads_if=<its work> >= PARALLEL_WORK`, and below that runs on the calling thread.
# Work is counted in simple operations on one element (an add, a compare, a multiply-add: a
# few tenths of a nanosecond); an exp, log, pow or tanh counts as TRANSCENDENTAL of them.

cdef enum:
    PARALLEL_WORK = 32768
    TRANSCENDENTAL = 32
