"""Exceptions that describe a problem with the user's input, not a bug.

The command line prints them as one line and exits with status 2.
"""

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad input: a missing, corrupt or unsupported file, or an impossible parameter.

    The message is a complete sentence naming the problem, fit to be shown as is.

    Examples
    --------
    >>> raise InputError("video.avi: no such file")
    Traceback (most recent call last):
    ...
    visualmic.errors.InputError: video.avi: no such file
    """
