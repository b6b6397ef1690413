"""The compute building blocks under the layers: GEMM and threads, the AVX-512 kernels,
window geometry and padding, im2col/col2im, the convolution pipeline, depthwise and pooling
kernels, broadcasting and reductions.

Layer modules (layers/*.pyx) are thin over these, as Caffe's layers are over
src/caffe/util. Shared Cython is declared in .pxd files and cimported, never pasted.
"""
