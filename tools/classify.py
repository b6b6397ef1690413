"""classify: the top classes a trained net gives images or arrays, as Caffe's classification.bin.

    classify examples/digits/deploy.prototxt LeNet-digits_iter_2000.caffemodel \\
             examples/digits/samples.npy
    classify deploy.prototxt bvlc_reference_caffenet.caffemodel cat.jpg --raw_scale 255 \\
             --mean_file imagenet_mean.binaryproto --labels synset_words.txt

A thin layer over cyffe.Classifier (pycaffe's caffe.Classifier). Images are read
as pycaffe's load_image does (values in [0, 1]; color for a 3-channel input, as
BGR unless --channel_swap says otherwise; Pillow needed); a .npy file holds
N x H x W x K images (or N x H x W for one channel), taken as they are. Each
is resized to the net input's height and width, scaled by --raw_scale, its
mean subtracted and scaled by --input_scale (pycaffe's order), and fed to the
net; the net's first output (a deploy net's Softmax "prob") gives the scores.
"""
import os
import sys

import numpy as np

import cyffe
from cyffe.proto.io import blobproto_to_array
from cyffe.tools import cli


def build_parser():
    p = cli.parser("classify", "Print the top classes a trained deploy net gives each image "
                               "(or each row of a .npy array), as Caffe's classification.bin.")
    p.add_argument("model", metavar="DEPLOY", help="deploy net prototxt (an Input layer)")
    p.add_argument("weights", metavar="WEIGHTS", help="trained .caffemodel (or .caffemodel.h5)")
    p.add_argument("inputs", metavar="INPUT", nargs="+",
                   help="image files (needs Pillow), or .npy arrays of N x H x W x K images")
    p.add_argument("--top", type=int, default=5, metavar="K", help="classes to print per input")
    p.add_argument("--labels", metavar="FILE",
                   help="class names, one a line (Caffe's synset_words.txt); default: the "
                        "class numbers")
    mean = p.add_mutually_exclusive_group()
    mean.add_argument("--mean_file", metavar="MEAN",
                      help="a .binaryproto (compute_image_mean's) or .npy mean image; its "
                           "per-channel mean is subtracted, as classification.bin does")
    mean.add_argument("--mean_value", metavar="V[,V]",
                      help="the value to subtract, one, or one per channel")
    p.add_argument("--raw_scale", type=float, metavar="S",
                   help="multiply the [0, 1] pixels by S first (255 for nets trained on 0-255 "
                        "pixels, as the ImageNet models)")
    p.add_argument("--input_scale", type=float, metavar="S",
                   help="multiply by S after the mean is subtracted")
    p.add_argument("--channel_swap", metavar="ORDER",
                   help="the order of a color input's channels from RGB (default 2,1,0: "
                        "BGR, as Caffe's nets expect)")
    cli.add_device(p)
    cli.add_common(p)
    return p


def main(argv=None):
    return cli.run("classify", classify, cli.parse_args(build_parser(), argv))


def read_inputs(paths, channels):
    """[(name, H x W x K image)] of every image file and every row of every .npy file."""
    items = []
    for path in paths:
        if path.endswith(".npy"):
            try:
                array = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise cyffe.DataError(f"{path}: cannot read the array: {e}") from None
            if array.ndim == 3:
                array = array[..., np.newaxis]
            if array.ndim != 4:
                raise cyffe.ShapeError(f"{path}: an array of shape {array.shape}; give N x H x W "
                                       "x K images (or N x H x W)")
            name = os.path.basename(path)
            items += [(f"{name}[{k}]", image) for k, image in enumerate(array)]
        else:
            items.append((path, cyffe.io.load_image(path, color=channels == 3)))
    return items


def mean_of(args, channels):
    """The per-channel mean to subtract, from --mean_file or --mean_value (None without)."""
    if args.mean_value:
        values = [float(v) for v in args.mean_value.split(",")]
        return np.array(values * channels if len(values) == 1 else values, np.float32)
    if args.mean_file:
        if args.mean_file.endswith(".npy"):
            image = np.load(args.mean_file, allow_pickle=False)
        else:
            blob = cyffe.pb.BlobProto()
            with open(args.mean_file, "rb") as f:
                blob.ParseFromString(f.read())
            image = blobproto_to_array(blob)
        image = np.asarray(image, np.float32).reshape((-1,) + image.shape[-2:])
        return image.reshape(image.shape[0], -1).mean(axis=1)
    return None


def read_labels(path):
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def classify(args):
    cli.choose_device("classify", args)
    classifier = cyffe.Classifier(args.model, args.weights, raw_scale=args.raw_scale,
                                  input_scale=args.input_scale)
    data = classifier.inputs[0]
    channels = classifier.blobs[data].shape[1]
    mean = mean_of(args, channels)
    if mean is not None:
        classifier.transformer.set_mean(data, mean)
    if channels == 3:
        swap = tuple(int(c) for c in (args.channel_swap or "2,1,0").split(","))
        classifier.transformer.set_channel_swap(data, swap)
    labels = read_labels(args.labels) if args.labels else None
    items = read_inputs(args.inputs, channels)
    scores = classifier.predict([image for _, image in items], oversample=False)
    if labels is not None and len(labels) != scores.shape[1]:
        raise cyffe.DataError(f"{args.labels}: {len(labels)} labels for {scores.shape[1]} "
                              "classes")
    for (name, _), row in zip(items, scores):
        best = np.argsort(-row, kind="stable")[:args.top]
        print(f"{name}: " + ", ".join(
            f"{labels[k] if labels else k} ({row[k]:.4f})" for k in best))
    return 0


if __name__ == "__main__":
    sys.exit(main())
