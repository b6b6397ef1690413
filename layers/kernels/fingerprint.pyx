"""A fingerprint of an array's bytes: 64 bits that change when any byte does.

Kernels that keep something derived from a layer's params (Winograd's transformed
weights, BatchNorm folded into a convolution) compare fingerprints to know whether the
params changed since, whoever changed them (a solver step, net surgery in Python): it
reads the bytes once, far less than recomputing what they derive.
"""
from libc.stdint cimport uint64_t

cdef enum:
    LANES = 8

# Odd 64-bit constants (from splitmix64): multiplying by them mixes every input bit upward.
cdef uint64_t MIX1 = 0xbf58476d1ce4e5b9ULL
cdef uint64_t MIX2 = 0x94d049bb133111ebULL


cdef inline uint64_t mix(uint64_t h) noexcept nogil:
    h = (h ^ (h >> 30)) * MIX1
    h = (h ^ (h >> 27)) * MIX2
    return h ^ (h >> 31)


def fingerprint(array):
    """The 64-bit fingerprint of a contiguous array's bytes (and its size)."""
    cdef const unsigned char[::1] raw = memoryview(array).cast("B")
    cdef Py_ssize_t size = raw.shape[0], words = size // 8, i, l, blocks = words // LANES
    cdef const uint64_t* word = <const uint64_t*>&raw[0] if size else NULL
    cdef uint64_t lane[LANES]
    cdef uint64_t h = mix(<uint64_t>size), tail = 0
    for l in range(LANES):
        lane[l] = mix(<uint64_t>(l + 1))
    with nogil:
        for i in range(blocks):
            for l in range(LANES):
                lane[l] = (lane[l] ^ word[i * LANES + l]) * MIX1
        for i in range(blocks * LANES, words):
            h = mix(h ^ word[i])
        for i in range(words * 8, size):
            tail = (tail << 8) | raw[i]
        for l in range(LANES):
            h = mix(h ^ mix(lane[l]))
        h = mix(h ^ tail)
    return int(h)
