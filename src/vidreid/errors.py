"""Exceptions raised by vidreid. Each message names the offending path or key."""


class VidReIDError(Exception):
    """Base class of every error vidreid raises on purpose."""


class DatasetError(VidReIDError):
    """A dataset tree or protocol file is missing or malformed. The message names the path
    and what was expected there."""


class ConfigError(VidReIDError):
    """A configuration key or value is invalid. The message names the key and lists the
    valid choices."""


class NonFiniteLossError(VidReIDError):
    """Training produced a NaN or infinite loss; the message names the epoch and step."""
