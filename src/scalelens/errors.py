"""Errors a user can act on. The stage runner prints their message on one line and exits non-zero."""


class ScalelensError(Exception):
    """Base class: the message alone must tell the user what was wrong and what would work."""
