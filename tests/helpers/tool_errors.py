"""What a tool's failure must look like: exit 1 and one line on stderr, no traceback."""


def assert_one_line_error(result, *fragments):
    """result (a finished subprocess) failed with exit 1 and one stderr line holding fragments."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
