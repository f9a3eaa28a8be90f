"""The base of every error bench reports to a user as a clean message (exit code 2)."""


class BenchError(Exception):
    """A problem with the user's input (suite, data, weights) rather than a bug."""


EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
"""Exit codes of ``bench`` commands (2: bad input, found before any training)."""
