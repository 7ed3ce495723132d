"""Benchmarks reachable as ``vbayes bench NAME``, one module each with ``register(subparsers)``."""
