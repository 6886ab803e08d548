"""Errors a user can act on: the stage runner prints the message on one line, exits non-zero."""


class ScalelensError(Exception):
    """Base class: the message alone must tell the user what was wrong and what would work."""
