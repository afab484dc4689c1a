"""Plumbing every layer may use; knows nothing of the method or the study.

``errors`` (the error hierarchy), ``io`` (atomic writes, checksums, a full disk named),
``paths`` (where the bundle, the cache and the runs live), ``cache`` (the content-addressed disk
cache), ``numerics`` (softmax, distances, the exact z-scorer), ``checks`` (input validation),
``jobs`` (``run_jobs``: local processes or a Dask cluster), ``cluster`` (the Dask backend of
``jobs``), ``memory`` (available and peak memory).

Imports nothing else of the package.
"""
__all__ = ["errors", "io", "paths", "cache", "numerics", "checks", "jobs", "cluster", "memory"]
