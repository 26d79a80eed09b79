"""The one error type of the interop layer."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint (or a config / parameter tree to be saved) does not match what the model needs.

    The message names every offending key, field or file; nothing is loaded partially.
    """
