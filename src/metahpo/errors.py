"""Errors a user can fix. Scripts print them as one clear message and exit with status 2."""


class MetahpoError(Exception):
    """Bad input: the message names the problem and how to fix it."""


class ParamsError(MetahpoError):
    """params.yaml has an unknown key, a wrong type or an inconsistent value."""


class DataError(MetahpoError):
    """A dataset cannot be found, read or interpreted."""
