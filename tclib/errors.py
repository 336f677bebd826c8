"""Errors raised on bad input. Each names the file or key at fault."""


class TclibError(Exception):
    """Base class for every error tclib raises on purpose."""


class DataError(TclibError, ValueError):
    """A data file (video, annotation, cache) is missing, unreadable or malformed."""


class ParamsError(TclibError, ValueError):
    """A params file has an unknown key, a wrong type or an invalid value."""


class CheckpointError(TclibError, ValueError):
    """A checkpoint file is missing or does not fit the model it is loaded into."""
