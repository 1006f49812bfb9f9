"""Errors zoo raises for user mistakes: each message says what was wrong and what is expected."""


class ZooError(Exception):
    """Base class of every error zoo reports to users (the CLI prints it as one line)."""


class UnknownModelError(ZooError, KeyError):
    """No registered model has the requested name."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateModelError(ZooError):
    """Two registrations claim the same model name."""


class WeightsError(ZooError):
    """Weights are missing, corrupt, or do not fit the architecture."""


class ConfigError(ZooError, ValueError):
    """A configuration value or argument is invalid."""


class DataError(ZooError):
    """Input data (a data set, an image, a folder) is missing or unreadable."""


class PluginError(ZooError):
    """A plugin failed to import or register (raised only with ZOO_STRICT_PLUGINS=1)."""
