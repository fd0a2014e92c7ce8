"""``aibridge fuzz``: plans drawn from a seed, run in the simulated world (or against a
running proxy), judged by protocol oracles, shrunk and written as reproducers."""

import sys

# Campaign workers are forked from the campaign's own process where that is safe for a
# process with no other thread (Linux), so the fuzzer is imported once; elsewhere they come
# from a fork server that imports it (see ``campaign.workers_context``).
FORK_WORKERS = sys.platform == "linux"
