"""Command-line programs, thin wrappers over the public API."""
