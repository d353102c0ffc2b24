"""Benchmarks for lakenode against a bare-ASGI ceiling and SeaweedFS (``make bench``).

Not collected by pytest: the test paths are ``tests/unit`` and ``tests/integration``.
"""
