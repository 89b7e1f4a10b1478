"""The one error type a user can fix: the scripts print its message on one line and exit 2."""


class InputError(ValueError):
    """Bad input from the user (a path, a name, a flag value, a config file, the machine)."""
