"""``aibridge fuzz``: plans drawn from a seed, run in the simulated world (or against a
running proxy), judged by protocol oracles, shrunk and written as reproducers."""
