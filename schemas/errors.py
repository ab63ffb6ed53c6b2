"""Errors raised by gridwatch.

The whole tree::

    GridwatchError                 root of everything gridwatch raises on purpose
    ├── ConfigError                a setting or configuration file is wrong
    ├── DecodeError                an input message is not a valid v1 event
    │                              (carries ``reason`` and ``field``; dead-lettered)
    ├── StackError                 the local stack cannot start or answer
    └── TransitionRefused          an alert/task command is not allowed now
                                   (carries ``reason``; the CLI exits non-zero)
"""

from __future__ import annotations


class GridwatchError(Exception):
    """Root of every error gridwatch raises on purpose."""


class ConfigError(GridwatchError):
    """A setting or a configuration file is invalid."""


class DecodeError(GridwatchError):
    """An input message is not a valid event.

    Args:
        reason: a short, human-readable reason, e.g. ``"lat: out of range"``.
        field: the offending field, or ``None`` when the message as a whole is bad.
    """

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


class StackError(GridwatchError):
    """The local stack (Kafka, Redis) cannot be started, stopped or reached."""


class TransitionRefused(GridwatchError):
    """A state-machine transition is not allowed; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
