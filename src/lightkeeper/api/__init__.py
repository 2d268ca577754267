"""Tencent Cloud API 3.0 front end: signatures, envelopes, errors and rate limits.

Nothing here knows about snapshots; actions are plugged in through ``registry.Action``.
"""
