"""Telling Caffe's log lines (glog's prefix) from a tool's own messages on stderr."""
import re

GLOG_LINE = re.compile(r"[IWEF]\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ \S+:\d+\] ")


def messages(stderr):
    """The lines of stderr that are not Caffe's log lines: a tool's errors and notes."""
    return [line for line in stderr.strip().splitlines() if not GLOG_LINE.match(line)]


def log_text(stderr):
    """Caffe's log lines of stderr, without glog's prefix."""
    return "\n".join(GLOG_LINE.sub("", line, count=1) for line in stderr.splitlines()
                     if GLOG_LINE.match(line))
