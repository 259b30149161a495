"""The one error type for bad input: a file, a config value or an argument the user gave.

Library code raises :class:`BadInputError` where it recognises the bad input (the config
loader, the checkpoint reader, the backbone's constructor...), with a message that names the
input and the fix. The command-line tools catch exactly this type
(:func:`mmspatialmamba.apis.cli.exit_on_user_error`) and print its message as one line, so a
bug, which raises anything else, keeps its traceback.

It is a ``ValueError``, so callers that catch ``ValueError`` keep working. Two subclasses keep
Python's own type where there is one: a missing file is also a ``FileNotFoundError``
(:class:`MissingFileError`) and an argument a constructor does not take is also a
``TypeError`` (:class:`BadArgumentError`). Each takes a single message argument, which
mmengine's registry relies on when it re-raises a build error with the class name prefixed.
"""


class BadInputError(ValueError):
    """Bad input from the user; the message names the input and how to fix it."""


class MissingFileError(BadInputError, FileNotFoundError):
    """A file the user named does not exist (also a ``FileNotFoundError``)."""


class BadArgumentError(BadInputError, TypeError):
    """An argument a constructor does not take, or of the wrong type (also a ``TypeError``)."""
