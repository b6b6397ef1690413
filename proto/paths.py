"""Where a relative path written in a prototxt or solver file is read from.

Caffe resolves every relative path from the working directory. cyffe does too,
and when nothing is there it also looks beside the file that names the path, so
a net and its data can travel together and be run from anywhere.
"""
import os


def resolve_path(path, folder):
    """path as given when it is absolute or exists (from the working directory); else the
    same relative path under folder (the prototxt's or solver's) when that exists; else
    path as given, so the error names what the user wrote. folder may be None."""
    if os.path.isabs(path) or os.path.exists(path) or not folder:
        return path
    beside = os.path.join(folder, path)
    return beside if os.path.exists(beside) else path
