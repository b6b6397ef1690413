"""Throughput and memory benchmarks of cyffe, side by side with PyTorch and a NumPy reference.

Run `python -m benchmarks.run` (or `--quick`); see benchmarks/run.py.
"""
