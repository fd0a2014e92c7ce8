"""The simulated world: proxy, mock upstream and client in one trio run, in memory.

``sched`` makes trio's scheduler seeded and deterministic, ``network`` is an httpcore
network backend over in-memory streams, ``world`` wires one run together.
"""
