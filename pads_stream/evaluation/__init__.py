"""Measuring: the accuracy tables, the backend benchmark, the supervised baseline, sampler tuning.

Layer: may import ``cluster`` and everything below; not ``apps``.
"""
