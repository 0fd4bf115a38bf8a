"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class DrumcatError(Exception):
    """A user-facing error: the message names the file or key at fault and how to fix it."""


def listing(items: list[str], shown: int = 5) -> str:
    """The first `shown` items and how many more: an error message stays one readable line."""
    more = len(items) - shown
    return ", ".join(items[:shown]) + (f" and {more} more" if more > 0 else "")
