"""Solver snapshots (binary and HDF5, Caffe's layouts), restore, and exact resume."""
import os

import h5py
import numpy as np
import pytest

import cyffe
from cyffe.proto import cyffe_pb2 as pb

# helpers/counting_data.CountingData: batch k is a pure function of k, and the layer can
# skip batches: resuming is exact only when the solver moves it past the batches already used.
HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers")

NET = """
name: "regress"
layer {{ name: "data" type: "Python" top: "x" top: "t"
        python_param {{ module: "{module}" layer: "CountingData" }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "x" top: "h"
        inner_product_param {{ num_output: 5 weight_filler {{ type: "gaussian" std: 0.5 }}
                               bias_filler {{ type: "constant" value: 0.1 }} }} }}
layer {{ name: "tanh" type: "TanH" bottom: "h" top: "a" }}
layer {{ name: "ip2" type: "InnerProduct" bottom: "a" top: "y"
        inner_product_param {{ num_output: 2 weight_filler {{ type: "gaussian" std: 0.5 }} }} }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }}
"""

SOLVERS = {
    "SGD": 'type: "SGD" momentum: 0.9',
    "Nesterov": 'type: "Nesterov" momentum: 0.9',
    "Adam": 'type: "Adam" momentum: 0.9 momentum2: 0.999 delta: 1e-8',
    "AdaDelta": 'type: "AdaDelta" momentum: 0.95 delta: 1e-6',
}


@pytest.fixture
def data_module(monkeypatch):
    """The data layer's module name, made importable."""
    monkeypatch.syspath_prepend(HELPERS)
    return "counting_data"


def write_solver(tmp_path, module, name="solver", extra="", kind="SGD", fmt="BINARYPROTO"):
    (tmp_path / "net.prototxt").write_text(NET.format(module=module))
    path = tmp_path / f"{name}.prototxt"
    path.write_text(f'net: "net.prototxt"\nbase_lr: 0.05\nlr_policy: "multistep"\n'
                    f'gamma: 0.5\nstepvalue: 3\nstepvalue: 8\nweight_decay: 0.001\n'
                    f'max_iter: 12\nrandom_seed: 7\nsnapshot_format: {fmt}\n'
                    f'{SOLVERS[kind]}\n{extra}\n')
    return path


def quiet(path, **kwargs):
    return cyffe.get_solver(str(path), log=lambda line: None, **kwargs)


def weights(solver):
    return {name: [b.data.copy() for b in blobs] for name, blobs in solver.net.params.items()}


@pytest.mark.parametrize("kind", sorted(SOLVERS))
@pytest.mark.parametrize("fmt", ["BINARYPROTO", "HDF5"])
def test_resuming_at_k_gives_exactly_the_weights_of_training_straight_to_n(
        tmp_path, data_module, kind, fmt):
    path = write_solver(tmp_path, data_module, extra="snapshot: 5\niter_size: 2", kind=kind,
                        fmt=fmt)
    straight = quiet(path)
    straight.solve()
    assert straight.iter == 12 and straight.current_step == 2
    h5 = ".h5" if fmt == "HDF5" else ""
    state = tmp_path / f"solver_iter_5.solverstate{h5}"
    for k in (5, 10, 12):            # every 5, and after training (12 is not a multiple of 5)
        assert (tmp_path / f"solver_iter_{k}.caffemodel{h5}").exists()
        assert (tmp_path / f"solver_iter_{k}.solverstate{h5}").exists()

    cyffe.set_random_seed(12345)                      # other initial weights: restore replaces them
    resumed = cyffe.get_solver(str(path), log=lambda line: None)
    resumed.snapshot_prefix = str(tmp_path / "again")
    resumed.restore(str(state))
    assert resumed.iter == 5 and resumed.current_step == 1
    assert resumed.net.layer_dict["data"].cursor == 5 * 2       # skip(k * iter_size)
    resumed.solve()
    assert resumed.iter == 12
    for name, blobs in weights(straight).items():
        for mine, theirs in zip(blobs, weights(resumed)[name]):
            np.testing.assert_array_equal(mine, theirs)
    for mine, theirs in zip(straight.history, resumed.history):
        np.testing.assert_array_equal(mine, theirs)


def test_without_skipping_the_data_resume_would_differ(tmp_path, data_module):
    """The data position matters: the test above would fail without restore's skip."""
    path = write_solver(tmp_path, data_module, extra="snapshot: 6")
    straight = quiet(path)
    straight.solve()
    resumed = quiet(path)
    resumed.restore(str(tmp_path / "solver_iter_6.solverstate"))
    resumed.net.layer_dict["data"].cursor = 0
    resumed.snapshot_prefix = str(tmp_path / "again")
    resumed.solve()
    assert not np.array_equal(straight.net.params["ip1"][0].data,
                              resumed.net.params["ip1"][0].data)


def test_binary_solverstate_is_caffes_message(tmp_path, data_module):
    path = write_solver(tmp_path, data_module, kind="Adam")
    solver = quiet(path)
    solver.step(4)
    model, state = solver.snapshot()
    assert model == str(tmp_path / "solver_iter_4.caffemodel")
    assert state == str(tmp_path / "solver_iter_4.solverstate")
    message = pb.SolverState()
    message.ParseFromString(open(state, "rb").read())
    assert message.iter == 4 and message.current_step == 1 and message.learned_net == model
    assert len(message.history) == 2 * len(solver.net.learnable_params)     # Adam's m and v
    assert list(message.history[1].shape.dim) == [5]                         # ip1's bias
    np.testing.assert_array_equal(np.asarray(message.history[4].data).reshape(5, 3),
                                  solver.history[4])
    net = pb.NetParameter()
    net.ParseFromString(open(model, "rb").read())
    assert [l.name for l in net.layer if l.blobs] == ["ip1", "ip2"]
    assert not net.layer[1].blobs[0].diff


def test_hdf5_solverstate_is_caffes_layout(tmp_path, data_module):
    path = write_solver(tmp_path, data_module, kind="SGD", fmt="HDF5")
    solver = quiet(path)
    solver.step(2)
    model, state = solver.snapshot()
    assert model.endswith("solver_iter_2.caffemodel.h5") and state.endswith(".solverstate.h5")
    with h5py.File(state, "r") as f:
        assert f["iter"][()].tolist() == [2] and f["current_step"][()].tolist() == [0]
        assert f["learned_net"][()].decode() == model
        assert sorted(f["history"].keys()) == ["0", "1", "2", "3"]
        np.testing.assert_array_equal(f["history/2"][()], solver.history[2])
    with h5py.File(model, "r") as f:
        np.testing.assert_array_equal(f["data/ip2/0"][()], solver.net.params["ip2"][0].data)


def test_snapshot_diff_writes_the_param_diffs(tmp_path, data_module):
    path = write_solver(tmp_path, data_module, extra="snapshot_diff: true")
    solver = quiet(path)
    solver.step(1)
    model, _ = solver.snapshot()
    net = pb.NetParameter()
    net.ParseFromString(open(model, "rb").read())
    ip1 = [l for l in net.layer if l.name == "ip1"][0]
    np.testing.assert_allclose(np.asarray(ip1.blobs[0].diff).reshape(5, 3),
                               solver.net.params["ip1"][0].diff)


def test_snapshot_after_train_false_writes_nothing(tmp_path, data_module):
    path = write_solver(tmp_path, data_module, extra="snapshot_after_train: false")
    quiet(path).solve()
    assert not list(tmp_path.glob("*_iter_*"))


def test_prefix_rules_are_caffes(tmp_path, data_module, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_solver(tmp_path, data_module, extra='snapshot_prefix: "snaps"')
    assert quiet(path).snapshot_prefix == "snaps"                 # relative to the cwd
    (tmp_path / "snaps").mkdir()
    assert quiet(path).snapshot_prefix == "snaps/solver"          # a folder: + the solver's stem
    path = write_solver(tmp_path, data_module)
    assert quiet(path).snapshot_prefix == str(tmp_path / "solver")
    text = path.read_text().replace('net: "net.prototxt"', f'net: "{tmp_path}/net.prototxt"')
    assert cyffe.get_solver(text, log=lambda line: None).snapshot_prefix is None
    with pytest.raises(cyffe.NetError, match="snapshot is given but snapshot_prefix is not"):
        cyffe.get_solver(text + "snapshot: 5\n")
    with pytest.raises(cyffe.NetError, match="snapshot must be >= 0"):
        cyffe.get_solver(text + 'snapshot: -1\nsnapshot_prefix: "x"\n')


def test_the_action_function_snapshots_or_stops_as_caffes(tmp_path, data_module):
    path = write_solver(tmp_path, data_module)
    lines = []
    solver = cyffe.get_solver(str(path), log=lines.append)
    requests = {3: "snapshot", 7: "stop"}
    solver.action = lambda: requests.get(solver.iter)
    solver.solve()
    assert solver.iter == 7 and solver.requested_early_exit
    assert sorted(p.name for p in tmp_path.glob("*.solverstate")) == [
        "solver_iter_3.solverstate", "solver_iter_7.solverstate"]
    assert lines[-1] == "Optimization stopped early."


def test_restore_starts_a_fresh_smoothed_loss_window(tmp_path, data_module):
    path = write_solver(tmp_path, data_module, extra="average_loss: 5")
    solver = quiet(path)
    solver.step(4)
    _, state = solver.snapshot()
    solver.restore(state)
    assert np.isnan(solver.smoothed_loss)
    solver.step(1)
    assert solver._losses == [pytest.approx(solver.smoothed_loss)]


def test_solve_takes_a_resume_file_as_pycaffes(tmp_path, data_module):
    path = write_solver(tmp_path, data_module, extra="snapshot: 4")
    quiet(path).solve()
    solver = quiet(path)
    solver.solve(str(tmp_path / "solver_iter_8.solverstate"))
    assert solver.iter == 12


def test_learned_net_is_found_beside_the_state_when_moved(tmp_path, data_module, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_solver(tmp_path, data_module, extra='snapshot_prefix: "rel"')
    solver = quiet(path)
    solver.step(2)
    _, state = solver.snapshot()
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("rel_iter_2.caffemodel", "rel_iter_2.solverstate"):
        (tmp_path / name).rename(moved / name)
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    fresh = quiet(path)
    fresh.restore(str(moved / "rel_iter_2.solverstate"))
    np.testing.assert_array_equal(fresh.net.params["ip1"][0].data,
                                  solver.net.params["ip1"][0].data)


# -- bad input ------------------------------------------------------------------------------

@pytest.fixture
def snapshot_files(tmp_path, data_module):
    path = write_solver(tmp_path, data_module, kind="Adam")
    solver = quiet(path)
    solver.step(3)
    return path, solver.snapshot()


def test_truncated_binary_state_is_one_data_error_at_every_cut(tmp_path, snapshot_files):
    path, (_, state) = snapshot_files
    content = open(state, "rb").read()
    bad = tmp_path / "cut.solverstate"
    for cut in range(0, len(content) - 3, 7):
        bad.write_bytes(content[:cut])
        with pytest.raises(cyffe.DataError, match="cut.solverstate"):
            quiet(path).restore(str(bad))


@pytest.mark.parametrize("content", [b"\xff\xff\xff\xff garbage", b"\x0a\x05ab"])
def test_corrupt_binary_state_is_one_data_error(tmp_path, snapshot_files, content):
    path, _ = snapshot_files
    bad = tmp_path / "bad.solverstate"
    bad.write_bytes(content)
    with pytest.raises(cyffe.DataError, match="bad.solverstate"):
        quiet(path).restore(str(bad))


def test_truncated_or_missing_h5_state_is_one_data_error(tmp_path, data_module):
    path = write_solver(tmp_path, data_module, fmt="HDF5")
    solver = quiet(path)
    solver.step(1)
    _, state = solver.snapshot()
    content = open(state, "rb").read()
    bad = tmp_path / "cut.solverstate.h5"
    bad.write_bytes(content[:len(content) // 2])
    with pytest.raises(cyffe.DataError, match="cut.solverstate.h5"):
        quiet(path).restore(str(bad))
    with pytest.raises(cyffe.DataError, match="not found"):
        quiet(path).restore(str(tmp_path / "none.solverstate.h5"))
    with h5py.File(bad, "w") as f:
        f.create_dataset("iter", data=[1])
    with pytest.raises(cyffe.DataError, match="no 'history'"):
        quiet(path).restore(str(bad))


def test_a_state_of_another_solver_or_net_names_the_param(tmp_path, data_module, snapshot_files):
    path, (_, adam_state) = snapshot_files
    sgd = quiet(write_solver(tmp_path, data_module, name="sgd", kind="SGD"))
    before = sgd.net.params["ip1"][0].data.copy()
    with pytest.raises(cyffe.DataError, match="8 history blobs, but this SGD solver keeps 4"):
        sgd.restore(adam_state)
    np.testing.assert_array_equal(sgd.net.params["ip1"][0].data, before)   # nothing loaded
    assert sgd.iter == 0

    wide = NET.format(module=data_module).replace("num_output: 5", "num_output: 6")
    (tmp_path / "net.prototxt").write_text(wide)
    other = quiet(tmp_path / "solver.prototxt")
    with pytest.raises(cyffe.ShapeError, match=r"history blob 0 \(layer 'ip1' param 0\) has "
                                               r"shape \(5, 3\) there but \(6, 3\)"):
        other.restore(adam_state)

