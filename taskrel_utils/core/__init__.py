"""Plumbing every layer may use; knows nothing of the method or the study.

``errors`` (the error hierarchy), ``io`` (atomic writes, checksums, a full disk named), ``paths``
(where the bundle, the cache and the runs live), ``cache`` (the content-addressed disk cache),
``imports`` (a module's imports of the package, read from its source), ``numerics`` (softmax,
distances, the exact z-scorer), ``checks`` (input validation), ``jobs`` (``run_jobs``: local
processes or a Dask cluster), ``workers`` (how many local workers, what each job carries),
``cluster`` (the Dask backend of ``jobs``), ``memory`` (available and peak memory).

Imports nothing else of the package.
"""
__all__ = ["errors", "io", "paths", "cache", "imports", "numerics", "checks", "jobs", "workers", "cluster", "memory"]
