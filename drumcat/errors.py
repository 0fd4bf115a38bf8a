"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class DrumcatError(Exception):
    """A user-facing error: the message names the file or key at fault and how to fix it."""
