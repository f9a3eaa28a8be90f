"""The base of every error bench reports to a user as a clean message, and the exit codes every
``bench`` command honours (the README's table is tested against :data:`EXIT_CODES`)."""


class BenchError(Exception):
    """A problem with the user's input (suite, data, weights) rather than a bug."""


EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

EXIT_CODES: dict[int, str] = {
    EXIT_OK: "done: everything asked for finished, or was shown or written",
    EXIT_FAILED: "the work ran and some of it failed: a stage or trial (`run`; the others ran, "
                 "see the list printed at the end), an input that changed since the runs "
                 "recorded it (`verify`)",
    EXIT_USAGE: "bad input, found before anything trains, in a message that names it and what "
                "fixes it: the command line, the suite, the data (also what `data check` and "
                "`plan` find missing or leaking), the weights, the output folder and results "
                "store (`status` and `report` on a store that does not exist), the tracking or "
                "claims store, a setting, results computed with other numerics",
    EXIT_INTERRUPTED: "interrupted (finished work is kept; run the same command to resume)",
}
"""Exit code → what it means, for every command."""
