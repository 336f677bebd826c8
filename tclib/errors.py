"""Errors raised on bad input. Each names the file or key at fault."""


class TclibError(Exception):
    """Base class for every error tclib raises on purpose."""


class DataError(TclibError, ValueError):
    """A data file (video, annotation, cache) is missing, unreadable or malformed."""


class ParamsError(TclibError, ValueError):
    """A params file has an unknown key, a wrong type or an invalid value."""


class CheckpointError(TclibError, ValueError):
    """A checkpoint file is missing or does not fit the model it is loaded into."""


class LockedError(TclibError):
    """An experiment folder is in use by another run (the message names it)."""


class FolderInTheWay(TclibError, FileExistsError):
    """A finished run cannot be moved to its folder: something else is there (the message names both)."""


class StageError(TclibError):
    """A pipeline notebook failed: names the notebook, the error raised in it, and where to look."""

    def __init__(self, stage: str, ename: str, evalue: str, notebook: str, log_file: str) -> None:
        self.stage, self.ename, self.evalue = stage, ename, evalue
        self.notebook, self.log_file = notebook, log_file
        error = f"{ename}: {evalue}" if evalue else ename
        super().__init__(f"{stage} failed: {error}\n"
                         f"  executed notebook: {notebook}\n"
                         f"  full traceback: {log_file}")


class PreflightError(TclibError, ValueError):
    """Params that load but cannot run: a missing folder or file, a checkpoint that does not fit its
    model, an unknown CLIP name or weights. The message lists every problem, one per line."""
