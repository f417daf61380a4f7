"""The user's commands around the node: replay, listen, demo, view, bridges, fuzz.

Layer: may import ``cluster``, ``stream`` and everything below; not ``evaluation``.
"""
