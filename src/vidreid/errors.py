"""Exceptions raised by vidreid. Each message names the offending path or key."""


class VidReIDError(Exception):
    """Base class of every error vidreid raises on purpose."""


class DatasetError(VidReIDError):
    """A dataset tree or protocol file is missing or malformed. The message names the path
    and what was expected there."""


class ConfigError(VidReIDError):
    """A configuration key or value is invalid. The message names the key and lists the
    valid choices."""


class NonFiniteError(VidReIDError):
    """A model produced NaN or infinite values (diverged weights); the message says where."""


class NonFiniteLossError(NonFiniteError):
    """Training produced a NaN or infinite loss or parameters; the message names the epoch and
    step."""


class TrainingInterrupted(VidReIDError):
    """Training stopped on SIGINT or SIGTERM after writing a resumable checkpoint.

    Attributes: signum, checkpoint (path), epoch, step, where (text).
    """

    def __init__(self, signum: int, checkpoint, epoch: int, step: int, where: str):
        import signal

        self.signum, self.checkpoint, self.epoch, self.step = signum, checkpoint, epoch, step
        name = signal.Signals(signum).name if signum else "a signal"
        super().__init__(f"interrupted by {name} at {where} (global step {step}); checkpoint saved to {checkpoint}")

    @property
    def exit_code(self) -> int:
        """128 + the signal number: 130 for SIGINT, 143 for SIGTERM (the shell convention)."""
        return 128 + int(self.signum or 2)
