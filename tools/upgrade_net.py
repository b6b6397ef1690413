"""upgrade_net: rewrite an old Caffe net or .caffemodel in today's format.

    upgrade_net old_deploy.prototxt deploy.prototxt
    upgrade_net old_weights.caffemodel weights.caffemodel

Caffe's upgrade_net_proto_text and upgrade_net_proto_binary in one tool: V0
and V1 (`layers { type: CONVOLUTION }`) nets, old data transformation fields,
net-level inputs and old BatchNorm param specs become what Caffe writes today
(cyffe.proto.upgrade). The output has the format of the input: prototxt text
for text, binary for a .caffemodel; it is written atomically.
"""
import os
import sys
import warnings

from cyffe.proto.io import read_binary_net, read_net, write_binary, write_text
from cyffe.proto.upgrade import net_needs_upgrade, upgrade_net
from cyffe.proto.errors import DataError
from cyffe.tools import cli

TEXT_SUFFIXES = (".prototxt", ".pbtxt", ".txt")
BINARY_SUFFIXES = (".caffemodel", ".binaryproto", ".pb")


def build_parser():
    p = cli.parser("upgrade_net", "Upgrade an old Caffe net (V0/V1 prototxt) or its weights "
                                  "(.caffemodel) to today's format, as Caffe's "
                                  "upgrade_net_proto_text/_binary.")
    p.add_argument("input", metavar="IN", help="old net prototxt or .caffemodel")
    p.add_argument("output", metavar="OUT", help="where to write the upgraded net (same format)")
    p.add_argument("--format", choices=("auto", "text", "binary"), default="auto",
                   help="the format of IN (and OUT); auto: by IN's extension, else its content")
    cli.add_common(p)
    return p


def main(argv=None):
    return cli.run("upgrade_net", upgrade, cli.parse_args(build_parser(), argv))


def input_format(path):
    """"text" or "binary": by the file's extension, else whether it reads as UTF-8 text."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix in TEXT_SUFFIXES:
        return "text"
    if suffix in BINARY_SUFFIXES:
        return "binary"
    try:
        with open(path, "rb") as f:
            f.read().decode("utf-8")
    except UnicodeDecodeError:
        return "binary"
    except OSError:
        pass                              # the reader below says what is wrong with the file
    return "text"


def upgrade(args):
    form = input_format(args.input) if args.format == "auto" else args.format
    if form == "text":
        old, _ = read_net(args.input)
    else:
        old = read_binary_net(args.input)
    folder = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(folder):
        raise DataError(f"{args.output}: the folder {folder} does not exist")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        new = upgrade_net(old, args.input)
    for w in caught:
        print(f"upgrade_net: warning: {w.message}", file=sys.stderr)
    (write_text if form == "text" else write_binary)(new, args.output)
    what = "upgraded" if net_needs_upgrade(old) else "already in the latest format, copied"
    print(f"{args.input}: {what}; wrote {args.output} ({form})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
