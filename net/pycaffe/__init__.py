"""pycaffe's helpers over a Net: caffe.io (`cyffe.io`), caffe.draw, caffe.coord_map,
Classifier, Detector, Timer and the multi-GPU names (runtime)."""
