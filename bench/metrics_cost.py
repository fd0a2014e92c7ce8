"""What the breaker and the metrics add per request, in-process (no sockets, no noise
from other processes): ``Metrics.started`` + ``finished`` for one interception, one
upstream request through the breaker's gate (admit, report, both listeners' events),
and one ``/metrics`` exposition.

    python bench/metrics_cost.py
"""

from __future__ import annotations

import timeit

from aibridge_cli.config import BreakerConfig
from aibridge_cli.providers.anthropic import AnthropicMessages
from aibridge_cli.proxy.breaker import Breakers, gated
from aibridge_cli.proxy.bridge import ProviderUpstream
from aibridge_cli.proxy.keypool import KeyPool
from aibridge_cli.proxy.metrics import Metrics
from aibridge_cli.sessions.builtin import load_builtin
from aibridge_cli.tools import ToolSet

N = 100_000


def main() -> None:
    pool = KeyPool.from_secrets(["sk-ant-bench-0000000000000000"])
    metrics = Metrics({"anthropic": ProviderUpstream("http://upstream", pool)})
    breakers = Breakers(BreakerConfig(), (metrics.on_breaker,))
    record = load_builtin("anthropic/simple")[0].interceptions[0]
    conversation = AnthropicMessages().conversation(record.request.body, ToolSet())
    # what the client was told, as finished() reads it
    conversation.usage = {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 3}

    def clock() -> float:
        return 1.0

    def one_interception() -> None:
        metrics.started("anthropic", record, "claude-test")
        metrics.finished("anthropic", record, "claude-test", 0.01, conversation, 1.0)

    def one_upstream_request() -> None:
        with gated(breakers.of("anthropic", "anthropic", "claude-test"), clock) as gate:
            gate.answered(200)

    for name, work in (
        ("metrics per interception", one_interception),
        ("breaker gate per upstream request", one_upstream_request),
    ):
        seconds = min(timeit.repeat(work, number=N, repeat=5)) / N
        print(f"{name}: {seconds * 1e6:.2f} us")
    text = metrics.exposition(1.0, breakers)
    seconds = min(timeit.repeat(lambda: metrics.exposition(1.0, breakers), number=200, repeat=3))
    print(f"one scrape: {seconds / 200 * 1e6:.0f} us ({len(text.splitlines())} lines)")


if __name__ == "__main__":
    main()
