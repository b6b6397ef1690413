"""convert_imageset: images named in a list file -> an LMDB of Datums, as Caffe's convert_imageset.

    convert_imageset ROOT/ LIST DB [--resize_height H --resize_width W] [--shuffle] [--gray]
                     [--encoded [--encode_type png]] [--check_size]

Each LIST line is ``path label`` (split at the last space); images are read from
ROOT + path. A Datum holds the BGR (or gray) pixels, resized when both sizes are
given; with --encoded it holds the image file itself when nothing needs changing
(same format, no resize, colour as asked), else the image re-encoded as
--encode_type (default: the file's own extension). Keys are Caffe's
"%08d_path". An image that cannot be read is an error naming it, and the
database is built in a temporary folder and renamed only when complete.
"""
import io
import os
import sys

import numpy as np

from cyffe.layers.pipeline.databases import write_database
from cyffe.layers.pipeline.images import read_image
from cyffe.layers.image_data import read_image_list
from cyffe.proto import cyffe_pb2 as pb
from cyffe.proto.errors import DataError
from cyffe.tools import cli

PIL_FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "bmp": "BMP", "ppm": "PPM",
               "tif": "TIFF", "tiff": "TIFF", "webp": "WEBP"}


def encode(pixels, encode_type, where):
    """The (C, H, W) BGR or gray uint8 image encoded as encode_type (png, jpg, ...)."""
    from PIL import Image
    fmt = PIL_FORMATS.get(encode_type.lower())
    if fmt is None:
        raise DataError(f"{where}: unknown encode_type {encode_type!r}; known: "
                        f"{', '.join(sorted(PIL_FORMATS))}")
    array = pixels[0] if pixels.shape[0] == 1 else pixels[::-1].transpose(1, 2, 0)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format=fmt)
    return buf.getvalue()


def image_datum(path, label, height, width, color, encode_type=None):
    """A Datum for one image file, as Caffe's ReadImageToDatum."""
    pixels = read_image(path, height, width, color, where=None)
    if encode_type is None:
        c, h, w = pixels.shape
        return pb.Datum(channels=c, height=h, width=w, data=pixels.tobytes(), label=label)
    extension = os.path.splitext(path)[1][1:].lower()
    as_is = (not (height and width) and (pixels.shape[0] == 3) == color
             and PIL_FORMATS.get(extension) == PIL_FORMATS.get(encode_type.lower()))
    if as_is:
        with open(path, "rb") as f:
            data = f.read()
    else:
        data = encode(pixels, encode_type, path)
    return pb.Datum(data=data, encoded=True, label=label)


def imageset_records(args, entries):
    """(key, serialized Datum) per list entry, checking sizes when asked."""
    first_size = None
    for i, (name, label) in enumerate(entries):
        path = os.path.join(args.root, name)
        encode_type = None
        if args.encoded:
            encode_type = args.encode_type or os.path.splitext(name)[1][1:].lower()
        datum = image_datum(path, label, args.resize_height, args.resize_width, not args.gray,
                            encode_type)
        if args.check_size and not args.encoded:
            size = (datum.channels, datum.height, datum.width)
            if first_size is None:
                first_size = size
            elif size != first_size:
                raise DataError(f"{path}: image of size {size}, the first was {first_size}")
        yield b"%08d_%s" % (i, name.encode()), datum.SerializeToString()


def convert(args):
    entries = read_image_list(args.list)
    if args.shuffle:
        order = np.random.default_rng(args.seed).permutation(len(entries))
        entries = [entries[i] for i in order]
    count = [0]

    def counted():
        for record in imageset_records(args, entries):
            count[0] += 1
            yield record
    size = sum(os.path.getsize(os.path.join(args.root, n)) for n, _ in entries
               if os.path.isfile(os.path.join(args.root, n)))
    pixels = len(entries) * 3 * max(args.resize_height * args.resize_width, 1)
    write_database(args.db, counted(), args.backend, 64 * size + 4 * pixels + (256 << 20))
    print(f"convert_imageset: wrote {count[0]} images to {args.db}")
    return 0


def build_parser():
    p = cli.parser("convert_imageset", "Images named in a list file -> an LMDB of Datums, as "
                                       "Caffe's convert_imageset.")
    p.add_argument("root", metavar="ROOT", help="folder the listed paths are relative to "
                                                "(include the /)")
    p.add_argument("list", metavar="LIST", help="list file of 'path label' lines")
    p.add_argument("db", metavar="DB", help="the LMDB folder to create")
    p.add_argument("--resize_height", type=int, default=0, metavar="H",
                   help="resize to this height (with --resize_width; 0: keep)")
    p.add_argument("--resize_width", type=int, default=0, metavar="W",
                   help="resize to this width (with --resize_height; 0: keep)")
    p.add_argument("--gray", action="store_true", help="store 1-channel gray images")
    p.add_argument("--shuffle", action="store_true", help="shuffle the list first")
    p.add_argument("--seed", type=int, help="random seed for --shuffle")
    p.add_argument("--encoded", action="store_true", help="store encoded images")
    p.add_argument("--encode_type", default="", metavar="TYPE",
                   help="format of --encoded images (png, jpg, ...; default: the file's own)")
    p.add_argument("--check_size", action="store_true",
                   help="check that all images have the same size")
    cli.add_backend(p)
    cli.add_common(p)
    return p


def main(argv=None):
    return cli.run("convert_imageset", convert, cli.parse_args(build_parser(), argv))


if __name__ == "__main__":
    sys.exit(main())
