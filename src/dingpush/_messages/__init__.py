"""The message models: webhook messages, app-only media messages, channel mappings, media.

Importing any of them imports both model modules, so the ``{msgtype: class}`` registry that
``parse_message`` reads always holds every type (``Image``, ``File`` and ``OA`` included),
whichever name was loaded first.
"""

from . import _app_models, _models  # noqa: F401
