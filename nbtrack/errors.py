"""Exceptions raised by nbtrack.

The names follow the ``wandb`` contract so that code written against it keeps
working: ``Error`` is the base, ``UsageError`` means the caller passed something
that cannot be accepted, ``CommError`` a server could not be talked to, and
``AuthenticationError`` the server refused the credentials.
"""

from __future__ import annotations


class Error(Exception):
    """Base class of every exception nbtrack raises on purpose."""


class UsageError(Error):
    """An argument or call that nbtrack cannot accept.

    The message always names the argument and what is accepted.
    """


class ConfigError(UsageError):
    """A run's config was changed in a way its ``allow_val_change`` forbids."""


class CommError(Error):
    """A tracking server could not be reached or answered with an error."""


class AuthenticationError(CommError):
    """A tracking server refused the credentials (HTTP 401 or 403)."""


def choices(values) -> str:
    """Format accepted values for an error message: ``'a', 'b' or 'c'``."""
    items = [repr(v) for v in values]
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " or " + items[-1]
