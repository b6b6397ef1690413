"""A fingerprint of an array's bytes: 64 bits that change when any byte does.

Kernels that keep something derived from a layer's params (Winograd's transformed
weights, BatchNorm folded into a convolution) compare fingerprints to know whether the
params changed since, whoever changed them (a solver step, net surgery in Python): it
reads the bytes once, far less than recomputing what they derive.
"""
cimport cython
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

cdef enum:
    LANES = 8

# Odd 64-bit constants (from splitmix64): multiplying by them mixes every input bit upward.
cdef uint64_t MIX1 = 0xbf58476d1ce4e5b9ULL
cdef uint64_t MIX2 = 0x94d049bb133111ebULL


cdef inline uint64_t mix(uint64_t h) noexcept nogil:
    h = (h ^ (h >> 30)) * MIX1
    h = (h ^ (h >> 27)) * MIX2
    return h ^ (h >> 31)


cdef extern from "fingerprint.h":
    Py_ssize_t STEP "CYFFE_FINGERPRINT_STEP"
    uint64_t fingerprint_bulk "cyffe_fingerprint_bulk" (const unsigned char* raw,
                                                        Py_ssize_t steps) noexcept nogil

# From this many bytes on, the bulk goes through fingerprint.h's wider lanes (whose final
# folding costs more than small arrays take whole).
cdef enum:
    BULK = 16384


cdef uint64_t fingerprint_bytes(const unsigned char* raw, Py_ssize_t size) noexcept nogil:
    """The fingerprint of size bytes at raw."""
    cdef uint64_t h = mix(<uint64_t>size)
    cdef Py_ssize_t steps = size // STEP if size >= BULK else 0
    if steps:
        h = mix(h ^ fingerprint_bulk(raw, steps))
    return fingerprint_rest(raw + steps * STEP, size - steps * STEP, h)


cdef uint64_t fingerprint_rest(const unsigned char* raw, Py_ssize_t size,
                               uint64_t h) noexcept nogil:
    """Eight 64-bit lanes over size bytes at raw, folded into h."""
    cdef Py_ssize_t words = size // 8, i, l, blocks = words // LANES
    cdef const uint64_t* word = <const uint64_t*>raw
    cdef uint64_t lane[LANES]
    cdef uint64_t tail = 0, value
    for l in range(LANES):
        lane[l] = mix(<uint64_t>(l + 1))
    for i in range(blocks):
        for l in range(LANES):
            memcpy(&value, &word[i * LANES + l], 8)     # any alignment
            lane[l] = (lane[l] ^ value) * MIX1
    for i in range(blocks * LANES, words):
        memcpy(&value, &word[i], 8)
        h = mix(h ^ value)
    for i in range(words * 8, size):
        tail = (tail << 8) | raw[i]
    for l in range(LANES):
        h = mix(h ^ mix(lane[l]))
    return mix(h ^ tail)


def fingerprint(array):
    """The 64-bit fingerprint of a contiguous array's bytes (and its size)."""
    cdef const unsigned char[::1] raw = memoryview(array).cast("B")
    cdef uint64_t h
    with nogil:
        h = fingerprint_bytes(&raw[0] if raw.shape[0] else NULL, raw.shape[0])
    return int(h)
