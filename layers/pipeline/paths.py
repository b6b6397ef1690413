"""Where a path named in a prototxt lies."""
import os


def beside(path, folder):
    """path as given when it exists (from the working directory), else the same relative path
    under folder (the net's prototxt folder) when that exists; else path, for the error."""
    if os.path.exists(path) or os.path.isabs(path) or not folder:
        return path
    candidate = os.path.join(folder, path)
    return candidate if os.path.exists(candidate) else path
