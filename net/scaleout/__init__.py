"""Data-parallel training: a communicator (MPI, or NCCL on GPUs) and DataParallel over a solver."""
