"""The delivery engine, sans-I/O: flows of Sleep/Post steps, rate limits, retries, splitting.

Nothing here knows a robot from an app: a destination is a ``Channel`` (``_delivery.py``).
"""
