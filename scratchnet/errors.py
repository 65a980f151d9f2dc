"""The one exception a user's mistake raises.

Library functions raise :class:`ScratchnetError` (a ``ValueError``) for bad input they can
name: a missing file, a signal shorter than one frame, an unknown method.  The command line
turns it into a one-line message and exit status 2; anything else is a bug and keeps its
traceback.
"""


class ScratchnetError(ValueError):
    """A problem with the user's input, stated in one line that names the bad value."""
