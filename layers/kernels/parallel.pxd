# When a parallel loop is worth waking the other OpenMP threads. They sleep between loops
# (OMP_WAIT_POLICY=PASSIVE, cyffe's default), and waking one is a futex round trip: 50-60 us
# on this 2-core VM when the other core idles (the hypervisor wakes it too), more on a busy
# machine. A loop must save more than that: max pooling of MTCNN det3's 32x46x46 took 59 us
# on one thread and 94 on two. So every prange of the layers and kernels says
# `use_threads_if=<its work> >= PARALLEL_WORK`, and below that runs on the calling thread.
# Work is counted in simple operations on one element (an add, a compare, a multiply-add: a
# few tenths of a nanosecond); an exp, log, pow or tanh counts as TRANSCENDENTAL of them.

cdef enum:
    PARALLEL_WORK = 262144
    TRANSCENDENTAL = 32
