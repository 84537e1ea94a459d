"""Exceptions raised by headstart.

Every error a user can cause is a ``HeadstartError``. Each subclass also derives from the builtin
exception that describes it (``ValueError``, ``FileNotFoundError``), so ``except ValueError`` in user
code keeps working, the way scikit-learn's ``InvalidParameterError`` does.
"""

from __future__ import annotations

__all__ = [
    "HeadstartError",
    "ConfigError",
    "DataError",
    "DatasetNotFoundError",
    "WeightsNotFoundError",
    "WeightsMismatchError",
    "RunFolderError",
]


class HeadstartError(Exception):
    """Base class of every error headstart raises on purpose."""


class ConfigError(HeadstartError, ValueError):
    """A parameter or configuration value is invalid."""


class DataError(HeadstartError, ValueError):
    """The dataset cannot be used as it is (too few classes, unreadable images, ...)."""


class DatasetNotFoundError(HeadstartError, FileNotFoundError):
    """The dataset path does not exist or holds no images."""


class WeightsNotFoundError(HeadstartError, FileNotFoundError):
    """No pretrained weights could be found offline for a model."""


class WeightsMismatchError(HeadstartError, ValueError):
    """A weights file does not fit the model it is imported for."""


class RunFolderError(HeadstartError, FileNotFoundError):
    """A run folder is missing or incomplete."""
