"""What is built over layers.

The core, at this level: graph (Net: wiring and running), weights (a Net's
.caffemodel and .caffemodel.h5 files), solver (SGD, the lr policies, snapshots)
and adaptive (the other solvers), with glog (Caffe's log lines). Around it, each
in its own folder: pycaffe (pycaffe's caffe.io, draw, coord_map, Classifier,
Detector, Timer and the multi-GPU names), analysis (looking at a net: timing,
evaluation, gradient checks, diagnostics, drawing, training logs) and scaleout
(data-parallel training over MPI or NCCL).
"""
