"""Throughput and memory benchmarks of cyffe, side by side with its peers.

`python -m benchmarks.run`: training and inference against PyTorch and a NumPy reference
(benchmarks/run.py). `python -m benchmarks.inference`: inference on the Caffe zoo nets
against OpenCV DNN and PyTorch (benchmarks/inference.py). Both take `--quick`.
"""
