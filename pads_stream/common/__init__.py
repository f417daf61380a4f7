"""Plumbing every layer may use, importing nothing of pads-stream: config dataclasses and their
JSON files, where files are (:mod:`.files`), user-fixable errors, stop signals, progress bars,
robust statistics, fair timing, a most-recently-used cache.

Layer: the lowest; may import only the standard library and numpy.
"""
