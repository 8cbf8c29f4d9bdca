"""What every model loader shares: the one error that means "this model can't be used here".

Loaders (:mod:`engine.aisfx_model`, :mod:`engine.clap_model`) raise
:class:`ModelUnavailable` with a message that says why and how to fix it; callers such as
``engine.spaces.available_spaces`` catch it and keep working without that model.
Any thread; the module holds no state.
"""

from __future__ import annotations


class ModelUnavailable(Exception):
    """A model's weights are missing, unreachable or could not be loaded safely.

    The message is meant for the user: the reason, then what to do about it.
    """
