"""kernels/arena: scratch for the length of a call, one growable block per thread."""
import threading

import numpy as np
import pytest

from cyffe.layers.kernels import arena


def test_arrays_of_a_frame_are_disjoint_aligned_and_of_the_asked_type():
    with arena.scratch() as take:
        a = take((3, 5), np.float32)
        b = take(7, np.float64)
        c = take((2, 2), np.intp)
        for x, shape, dtype in ((a, (3, 5), np.float32), (b, (7,), np.float64),
                                (c, (2, 2), np.intp)):
            assert x.shape == shape and x.dtype == dtype and x.flags.c_contiguous
            assert x.ctypes.data % arena.ALIGN == 0
        a[...], b[...], c[...] = 1, 2, 3
        assert (a == 1).all() and (b == 2).all() and (c == 3).all()


def test_a_nested_frame_takes_past_its_caller_and_gives_back_only_its_own():
    with arena.scratch() as take:
        outer = take(100, np.float32)
        outer[...] = 5
        with arena.scratch() as inner_take:
            inner = inner_take(100, np.float32)
            inner[...] = -1
            assert not np.shares_memory(outer, inner)
        again = take(100, np.float32)
        assert not np.shares_memory(outer, again)
        assert (outer == 5).all()


def test_the_block_grows_to_the_most_a_frame_stack_needed_and_is_reused():
    own = arena.Arena()
    with own as take:
        first = take(1000, np.float64)          # more than the empty block: fresh memory
        assert first.base is not own.block.base
    assert own.capacity >= 8000
    with own as take:
        second = take(1000, np.float64)
        assert np.shares_memory(second, own.block)
    before = own.capacity
    with own as take:
        take(10, np.float64)
    assert own.capacity == before


def test_take_outside_a_frame_is_an_error():
    with pytest.raises(RuntimeError, match="outside a frame"):
        arena.Arena().take(3, np.float32)


def test_each_thread_has_its_own_arena():
    seen = {}

    def run(name):
        seen[name] = arena.scratch()

    threads = [threading.Thread(target=run, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen["a"] is not seen["b"]
    assert arena.scratch() is arena.scratch()
    assert arena.scratch() not in seen.values()


def test_an_exception_closes_the_frame():
    own = arena.Arena()
    with pytest.raises(ValueError):
        with own as take:
            take(10, np.float32)
            raise ValueError
    assert own.used == 0 and own.marks == []


def conv_net(*layers):
    """Convolutions in a chain on a (2, 8, 12, 12) input: (outputs, kernel, pad, stride) each."""
    text = 'input: "x" input_shape { dim: 2 dim: 8 dim: 12 dim: 12 }\n'
    bottom = "x"
    for i, (outputs, kernel, pad, stride) in enumerate(layers):
        text += (f'layer {{ name: "c{i}" type: "Convolution" bottom: "{bottom}" top: "c{i}" '
                 f'convolution_param {{ num_output: {outputs} kernel_size: {kernel} '
                 f'pad: {pad} stride: {stride} }} }}\n')
        bottom = f"c{i}"
    return text


def arena_after_forward(text, x):
    """The arena capacity one forward of the net grows, in a fresh thread (a fresh arena)."""
    import cyffe
    net = cyffe.Net(text, cyffe.TEST)
    capacity = []
    thread = threading.Thread(target=lambda: (net.forward(x=x),
                                              capacity.append(arena.scratch().capacity)))
    thread.start()
    thread.join()
    return capacity[0]


def test_convolutions_share_one_arena_block_the_size_of_the_largest_need():
    from cyffe.layers.backend import gpu_mode
    if gpu_mode():
        pytest.skip("the arena serves the CPU kernels")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 12, 12)).astype(np.float32)
    layers = [(16, 3, 1, 1), (16, 5, 2, 1), (4, 3, 1, 2)]
    whole = arena_after_forward(conv_net(*layers), x)
    alone, shapes = [], [x.shape, (2, 16, 12, 12), (2, 16, 12, 12)]
    for layer, shape in zip(layers, shapes):
        text = conv_net(layer).replace("dim: 8 dim: 12 dim: 12",
                                       f"dim: {shape[1]} dim: 12 dim: 12")
        alone.append(arena_after_forward(text, np.zeros(shape, np.float32)))
    assert min(alone) > 0
    assert whole == max(alone)
