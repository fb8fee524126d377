"""The one exception type for bad user input: the CLI prints it as one line, no traceback."""


class Bs4nnError(Exception):
    """A problem with the user's input (file, shape, value) that a user can fix."""
