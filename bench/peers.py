"""The other proxies the benchmarks run beside aibridge, each in front of the bench upstream:
LiteLLM's proxy and mitmproxy's mitmdump (``pip install -e ".[bench]"``, or a venv of its
own under ``.bench-venvs/``). Each context manager yields the running service, or the
reason it cannot run, so a benchmark reports the target as missing instead of failing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness import Service, find_tool, free_port, spawn

LITELLM_CONFIG = """\
model_list:
  - model_name: claude-bench
    litellm_params:
      model: anthropic/claude-bench
      api_base: {base}
      api_key: sk-ant-bench-0000000000000000
"""
# No phoning home for a price list or telemetry: every byte stays on loopback.
LITELLM_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_TELEMETRY": "False",
    "LITELLM_LOG": "ERROR",
    "DISABLE_SCHEMA_UPDATE": "True",
    # made up: it refuses to start without one
    "LITELLM_MASTER_KEY": "sk-bench-master-0000000000000000",
}


@contextmanager
def litellm(upstream: Service, workdir: Path) -> Iterator[Service | str]:
    """LiteLLM's proxy with the bench upstream as its Anthropic model, or why not."""
    exe = find_tool("litellm")
    if exe is None:
        yield "litellm not installed (pip install -e '.[bench]')"
        return
    config = workdir / "litellm.yaml"
    config.write_text(LITELLM_CONFIG.format(base=f"http://{upstream.host}:{upstream.port}"))
    port = free_port()
    argv = [
        exe,
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    with spawn("litellm", argv, "/v1/messages", port=port, timeout=120, env=LITELLM_ENV) as svc:
        svc.headers = {"x-api-key": LITELLM_ENV["LITELLM_MASTER_KEY"]}
        yield svc


@contextmanager
def mitmdump(upstream: Service) -> Iterator[Service | str]:
    """mitmproxy in reverse-proxy mode in front of the bench upstream, or why not."""
    exe = find_tool("mitmdump")
    if exe is None:
        yield "mitmdump not installed (pip install -e '.[bench]')"
        return
    port = free_port()
    argv = [
        exe,
        "--mode",
        f"reverse:http://{upstream.host}:{upstream.port}",
        "--listen-host",
        "127.0.0.1",
        "-p",
        str(port),
        "-q",
        # without it mitmproxy holds an SSE response until it ends (its issue 4469)
        "--set",
        "stream_large_bodies=1",
    ]
    with spawn("mitmdump", argv, "/v1/messages", port=port, timeout=60) as svc:
        yield svc
