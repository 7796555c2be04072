"""The one exception type for problems a user can cause and fix."""


class TwinError(Exception):
    """A user-fixable problem. The message names the file/field and says what to do.

    The CLI prints it as one line and exits with ``exit_code``; nothing else is shown.
    """

    exit_code = 2

    def __init__(self, message: str, *, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
