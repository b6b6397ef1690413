"""pycaffe's helpers over a Net: caffe.io (images in, blobs out; `cyffe.io`) and caffe.Classifier."""
