"""What the breaker and the metrics add per request, in-process (no sockets, no noise
from other processes): ``Metrics.started`` + ``finished`` for one interception, one
upstream request through the breaker's gate (admit, report, both listeners' events),
and one ``/metrics`` exposition.

    python bench/metrics_cost.py
"""

from __future__ import annotations

import timeit

from aibridge_cli.config import BreakerConfig
from aibridge_cli.proxy.breaker import Breakers, gated
from aibridge_cli.proxy.metrics import Metrics
from aibridge_cli.proxy.bridge import ProviderUpstream
from aibridge_cli.proxy.keypool import KeyPool
from aibridge_cli.sessions.builtin import load_builtin
from aibridge_cli.providers.anthropic import AnthropicMessages
from aibridge_cli.tools import ToolSet

ups = {
    "anthropic": ProviderUpstream("http://x", KeyPool.from_secrets(["sk-ant-bench-0000000000000000"]))}
m = Metrics(ups)
b = Breakers(BreakerConfig(), (m.on_breaker,))
rec = load_builtin("anthropic/simple")[0].interceptions[0]
conv = AnthropicMessages().conversation(rec.request.body, ToolSet())
conv.usage = {  # as the client was told: what finished() reads"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 3}


def clock() -> float:
    return 1.0


def metrics_only() -> None:
    m.started("anthropic", rec, "claude-test")
    m.finished("anthropic", rec, "claude-test", 0.01, conv, 1.0)
def breaker_only() -> None:
    with gated(b.of("anthropic", "anthropic", "claude-test"), clock) as g:
        g.answered(200)
n = 100_000
for name, fn in (("metrics per interception", metrics_only), ("breaker gate per upstream request", breaker_only)):
    t = min(timeit.repeat(fn, number=n, repeat=5)) / n
    print(f"{name}: {t*1e6:.2f} us")
t = min(timeit.repeat(lambda: m.exposition(1.0, b), number=200, repeat=3)) / 200
print(f"one scrape: {t*1e6:.0f} us ({len(m.exposition(1.0, b).splitlines())} lines)")
