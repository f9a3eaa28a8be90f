"""The base of every error bench reports to a user as a clean message (exit code 2)."""


class BenchError(Exception):
    """A problem with the user's input (suite, data, weights) rather than a bug."""
