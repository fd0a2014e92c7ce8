"""Benchmark 8, the fuzzer measured by mutation testing: how many realistic bugs does
``aibridge fuzz`` alone find?

``MUTANTS`` is a written set of small bugs, each one a change a reviewer could miss,
over the bridge, the providers, the SSE codec, the key pool and the server, and over
what concurrent requests share (the key pool under concurrency, the recorder, the
circuit breaker, a client connection's upstream WebSocket, a shared MCP server: the
built-in loads are what judge most of them). Each is applied alone to a temporary copy
of the package, and the only test is one fuzz campaign of the copy (all built-in
scenarios, eager, a fixed seed)::

    aibridge fuzz --iterations 1000 --jobs 2 --seed SEED --max-findings 1

Exit 1 (a failure found) kills the mutant; exit 0 lets it survive; anything else is a
broken mutant (reported, never counted as killed). ``--max-findings 1`` only limits how
many findings are shrunk afterwards: whether the campaign fails does not depend on it.
With ``--shards N`` (default 4) the campaign runs as its N shards (``--shard K/N``, which
together are exactly its 1,000 iterations) one after another, and a mutant is killed at
the first shard that fails: the same verdict as the whole campaign, and a killed mutant
costs a fraction of one on a loaded machine. A survivor runs every shard.
The unmutated copy runs first and must be clean, or the figure means nothing.

A mutant marked ``equivalent`` changes no behaviour the client or the upstream can see;
it is run and reported but left out of the kill rate, with the reason.

    python bench/mutants.py [--source DIR] [--iterations 1000] [--jobs 2] [--seed 1]
                            [--only ID ...] [--json FILE] [--list]

``--source``: a checkout whose ``aibridge_cli`` is mutated (default: this one), so the
same mutants can be run against another branch's fuzzer.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    id: str
    path: str  # under aibridge_cli/
    old: str  # must occur exactly once in the file
    new: str
    change: str  # what it changes
    bug: str  # the real bug it stands for
    equivalent: str = ""  # why no client or upstream can tell, when that is so
    # The same bug written against another version of the file: (old, new) pairs tried
    # when ``old`` is not there, so one mutant set measures a branch and main alike.
    elsewhere: tuple[tuple[str, str], ...] = ()


MUTANTS: tuple[Mutant, ...] = (
    # -- SSE codec -------------------------------------------------------------------------
    Mutant(
        "sse-cr-split",
        "sse.py",
        "                self._scan += 1  # the LF of a CRLF whose CR ended the last chunk\n",
        "                pass\n",
        "the LF of a CRLF split across two reads is taken as a line end of its own",
        "CRLF split across two reads parsed as two line ends: the event is dispatched early, "
        "its data goes out as a second, nameless event",
        elsewhere=(('if end == size and match.group() == b"\\r":', "if False:"),),
    ),
    Mutant(
        "sse-lf-only",
        "sse.py",
        '_LINE_END = re.compile(rb"\\r\\n|\\r|\\n")',
        '_LINE_END = re.compile(rb"\\n")',
        "only LF ends a line",
        "a parser written for what OpenAI sends: CR-only streams never dispatch, CRLF leaves "
        "a CR at the end of every field (event names that match nothing)",
    ),
    Mutant(
        "sse-raw-short",
        "sse.py",
        '.decode("utf-8", "replace"),\n                                    buffer[pos : end + 2],',
        '.decode("utf-8", "replace"),\n                                    buffer[pos : end + 1],',
        "the fast path keeps an event's raw bytes without its blank line",
        "an off-by-one in a slice: relayed events run into each other",
    ),
    Mutant(
        "sse-encode-no-blank",
        "sse.py",
        'return f"{head}{body}\\n".encode()',
        'return f"{head}{body}".encode()',
        "encode_event leaves out the blank line that ends a frame",
        "a re-encoded event (renumbered, usage summed) merges with the next one",
    ),
    Mutant(
        "sse-data-join",
        "sse.py",
        'event = SSEEvent(self._event, "\\n".join(self._data), raw, self._id)',
        'event = SSEEvent(self._event, "".join(self._data), raw, self._id)',
        "multi-line data joined without newlines",
        "a multi-line data field glued together (WHATWG says join with LF)",
        equivalent="every data line of every scenario is one JSON document on one line "
        "(providers write it so): joined with or without LF, the JSON is the same",
    ),
    # -- key pool --------------------------------------------------------------------------
    Mutant(
        "pool-round",
        "proxy/keypool.py",
        "retry_after=max(1, math.ceil(remaining - 1e-9))",
        "retry_after=max(1, round(remaining))",
        "Retry-After rounded to nearest instead of up",
        "a client told to come back 0.4 s before any key is usable",
    ),
    Mutant(
        "pool-truncate",
        "proxy/keypool.py",
        "retry_after=max(1, math.ceil(remaining - 1e-9))",
        "retry_after=max(1, int(remaining))",
        "Retry-After truncated",
        "int() where ceil was meant: early by up to a second whenever the clock is fractional",
    ),
    Mutant(
        "pool-longest",
        "proxy/keypool.py",
        "return self._raise_rate_limited(min(cooling))",
        "return self._raise_rate_limited(max(cooling))",
        "all keys cooling: Retry-After from the longest cooldown",
        "the client waits for the last key instead of the first",
    ),
    Mutant(
        "pool-same-key-twice",
        "proxy/keypool.py",
        "if key.index in tried and state is not KeyState.DISABLED:",
        "if False:",
        "one attempt may take the same key again",
        "Retry-After: 0 makes the loop hammer the key that just answered 429",
    ),
    Mutant(
        "pool-no-dates",
        "proxy/keypool.py",
        "return max(0.0, when.timestamp() - wall_now)",
        "return DEFAULT_COOLDOWN",
        "an HTTP-date Retry-After is read as the 60 s default",
        "a Retry-After parser that knows only delta-seconds",
    ),
    Mutant(
        "pool-int-seconds",
        "proxy/keypool.py",
        "seconds = float(value)",
        "seconds = int(value)",
        "delta-seconds parsed with int()",
        "a fractional Retry-After (1.5) falls through to the 60 s default",
    ),
    Mutant(
        "pool-403-ignored",
        "proxy/keypool.py",
        "if status in (401, 403):",
        "if status == 401:",
        "a 403 no longer disables the key",
        "a revoked key (403) kept in rotation: every request pays for it",
    ),
    Mutant(
        "pool-uncounted",
        "proxy/keypool.py",
        "                key.attempts += 1\n",
        "",
        "attempts not counted",
        "the status page under-reports a key's use",
    ),
    Mutant(
        "pool-boundary",
        "proxy/keypool.py",
        "if now < self.cooling_until:",
        "if now <= self.cooling_until:",
        "a key is still cooling at the very end of its cooldown",
        "an off-by-one at the boundary: a Retry-After: 0 key cools for good within its turn",
    ),
    # -- bridge ----------------------------------------------------------------------------
    Mutant(
        "bridge-no-eager",
        "proxy/bridge.py",
        "            if iteration and eager:\n                await client.initiate()\n",
        "",
        "eager mode no longer initiates the stream before a continuation",
        "coder/coder#26139 back: an error after a tool turn answered in JSON",
    ),
    Mutant(
        "bridge-drop-before-broken",
        "proxy/bridge.py",
        "broken = exc  # the events before the broken one still go out",
        "broken, frames = exc, []",
        "events decoded before a broken one in the same read are dropped",
        "content the upstream sent lost when a later event in the same read is bad",
    ),
    Mutant(
        "bridge-retry-after-ignored",
        "proxy/bridge.py",
        'response.headers.get("retry-after"),',
        "None,",
        "the upstream's Retry-After is not read",
        "every 429 cools its key for the default 60 s",
    ),
    Mutant(
        "bridge-monotonic-date",
        "proxy/bridge.py",
        "                    self.env.wall_clock(),\n",
        "                    trio.current_time(),\n",
        "an HTTP-date Retry-After measured against the monotonic clock",
        "mixing clocks: a date cooldown of decades",
        elsewhere=(
            (
                "                        self.env.wall_clock(),\n",
                "                        trio.current_time(),\n",
            ),
        ),
    ),
    Mutant(
        "bridge-no-closing",
        "proxy/bridge.py",
        "await client.put(conversation.closing_frames())",
        "pass",
        "the closing frames are not sent",
        "Chat streams end without [DONE]",
    ),
    Mutant(
        "bridge-json-drops-queued",
        "proxy/bridge.py",
        "if failure is not None and not out and not self.initiated.is_set():",
        "if failure is not None and not self.initiated.is_set():",
        "an error before initiation is answered in JSON even when frames were queued",
        "the frames the upstream sent before its error are thrown away",
    ),
    Mutant(
        "bridge-ping-early",
        "proxy/bridge.py",
        "                    if self.initiated.is_set():\n"
        "                        await self.writer.send(self.api.ping_frame)\n",
        "                    await self.writer.send(self.api.ping_frame)\n",
        "a ping may start the response",
        "a slow upstream gets a 200 with no content-type and a ping before any event",
    ),
    Mutant(
        "bridge-last-frame-only",
        "proxy/bridge.py",
        'item = frames[0] if len(frames) == 1 else b"".join(frames)',
        "item = frames[-1]",
        "only the last frame of an upstream read is queued",
        "an overwrite where an append was meant: events lost when several come in one read",
    ),
    # -- Anthropic ----------------------------------------------------------------------------
    Mutant(
        "anthropic-usage-last",
        "providers/anthropic.py",
        "        _sum_usage(self.usage, self.iter_usage)\n",
        "        self.usage = dict(self.iter_usage)\n",
        "streaming usage is the last iteration's, not the sum",
        "the client is billed for one turn of an agentic loop",
        elsewhere=(
            (
                "        add_usage(self.usage, self.iter_usage)\n",
                "        self.usage = dict(self.iter_usage)\n",
            ),
        ),
    ),
    Mutant(
        "anthropic-usage-merge-order",
        "providers/anthropic.py",
        'usage = {**(data.get("usage") or {}), **self.usage}',
        'usage = {**self.usage, **(data.get("usage") or {})}',
        "the last message_delta's own counts override the sums",
        "a dict merge in the wrong order: output_tokens is the last turn's",
        elsewhere=(
            (
                'usage = overlay_usage(data.get("usage"), self.usage)',
                'usage = overlay_usage(self.usage, data.get("usage") or {})',
            ),
        ),
    ),
    Mutant(
        "anthropic-fast-path-index",
        "providers/anthropic.py",
        "if block is not None and block.client_index == index:",
        "if block is not None:",
        "the text-delta fast path relays a delta whose block was renumbered",
        "a fast path that forgot the renumbering: the second turn's text under index 0",
    ),
    Mutant(
        "anthropic-hidden-deltas",
        "providers/anthropic.py",
        "            return self._renumbered(event, data, block.client_index)\n"
        '        if kind == "message_delta":',
        "            return self._renumbered(event, data, block.client_index) or [event.raw]\n"
        '        if kind == "message_delta":',
        "an injected tool_use block's deltas and stop are relayed",
        "only the block start is hidden: the injected call's arguments leak",
    ),
    Mutant(
        "anthropic-clean-early-end",
        "providers/anthropic.py",
        "        if not self.stopped:\n"
        '            raise UpstreamBroken("upstream stream ended before message_stop")\n',
        "",
        "a stream that ends without message_stop counts as finished",
        "LiteLLM's bug: an upstream cut short looks like a complete answer",
    ),
    Mutant(
        "anthropic-blocking-usage",
        "providers/anthropic.py",
        '"usage": {**self.last.get("usage", {}), **self.usage},',
        '"usage": self.last.get("usage", {}),',
        "blocking usage is the last iteration's",
        "usage not summed over the loop (blocking)",
        elsewhere=(
            (
                '"usage": overlay_usage(self.last.get("usage"), self.usage),',
                '"usage": self.last.get("usage", {}),',
            ),
        ),
    ),
    # -- OpenAI Chat --------------------------------------------------------------------------
    Mutant(
        "chat-argument-deltas",
        "providers/openai_chat.py",
        "        if call.client_index is None:\n            return None\n",
        '        if call.client_index is None and function.get("name"):\n            return None\n',
        "only the delta naming an injected call is hidden",
        "the issue's leak: an injected call's argument deltas reach the client",
    ),
    Mutant(
        "chat-usage-continuing",
        "providers/openai_chat.py",
        "                add_usage(self.usage, usage)\n                usage = None\n",
        "                usage = None\n",
        "usage of intermediate iterations dropped",
        "usage not summed over the loop (streaming)",
    ),
    Mutant(
        "chat-clean-early-end",
        "providers/openai_chat.py",
        "if not (self.done or self.finished):",
        "if False:",
        "a stream with neither finish_reason nor [DONE] counts as finished",
        "an early clean end relayed as a complete answer (with our [DONE])",
    ),
    Mutant(
        "chat-blocking-usage",
        "providers/openai_chat.py",
        '            body["usage"] = {**(body.get("usage") or {}), **self.usage}\n',
        "            pass\n",
        "blocking usage is the last completion's",
        "usage not summed over the loop (blocking)",
        elsewhere=(
            (
                '            body["usage"] = overlay_usage(body.get("usage"), self.usage)\n',
                "            pass\n",
            ),
        ),
    ),
    # -- OpenAI Responses ---------------------------------------------------------------------
    Mutant(
        "responses-hidden-by-index",
        "providers/openai_responses.py",
        '        if "output_index" in data and data["output_index"] in self.hidden:\n'
        "            return\n",
        "",
        "events tied to a hidden call by output_index alone are released",
        "the issue's leak: function_call_arguments events of an injected call on an error",
        elsewhere=(
            (
                '        if "output_index" in data and hashable(data["output_index"]) in self'
                ".hidden_indexes:\n"
                "            return True\n"
                '        return "item_id" in data and hashable(data["item_id"]) in self'
                ".hidden_ids\n",
                "        return False\n",
            ),
        ),
    ),
    Mutant(
        "responses-clean-early-end",
        "providers/openai_responses.py",
        "        if not self.ended:\n"
        '            raise UpstreamBroken("upstream stream ended before response.completed")\n',
        "",
        "a stream without a terminal event counts as finished",
        "an early clean end relayed as a complete answer",
    ),
    Mutant(
        "responses-error-not-failed",
        "providers/openai_responses.py",
        '        if kind == "error":\n            self.failed = True\n        elif',
        "        if False:\n            pass\n        elif",
        "an upstream error event does not end the stream",
        "the proxy adds its own error after the upstream's",
        elsewhere=(
            (
                '        if kind == "error":\n            self.failed = True\n'
                "            self.failure",
                "        if False:\n            self.failure",
            ),
        ),
    ),
    # -- cross-request (#28): what concurrent requests share -------------------------------
    # The key pool under concurrency: judged by key-consistency on the built-in loads.
    Mutant(
        "pool-shorter-cooldown-wins",
        "proxy/keypool.py",
        "            key.cooling_until = max(\n"
        "                key.cooling_until, now + parse_retry_after(retry_after, wall_now)\n"
        "            )\n",
        "            key.cooling_until = now + parse_retry_after(retry_after, wall_now)\n",
        "a 429 sets its key's cooldown even when a longer one is in force",
        "two requests on one key both get 429s; the later, shorter Retry-After overwrites the "
        "longer one and the key is back in rotation before the upstream said",
    ),
    Mutant(
        "pool-cooling-key-shared",
        "proxy/keypool.py",
        "            if state is KeyState.VALID:\n                key.attempts += 1\n",
        "            if state is not KeyState.DISABLED:\n                key.attempts += 1\n",
        "a cooling key is handed to any request that has not tried it yet",
        "per-request failover memory (tried) taken for the pool's state: a key another "
        "request's 429 cooled is used again at once",
    ),
    Mutant(
        "pool-401-while-cooling",
        "proxy/keypool.py",
        "        if status in (401, 403):\n            key.disabled = True\n",
        "        if status in (401, 403) and key.state(now) is KeyState.VALID:\n"
        "            key.disabled = True\n",
        "a 401/403 does not disable a key that is cooling",
        "a key another request cooled is out of rotation anyway, so its 401 (from a request "
        "that took it before the 429 was read) is dropped: the revoked key is back when the "
        "cooldown ends",
    ),
    Mutant(
        "pool-success-clears-cooldown",
        "proxy/keypool.py",
        "            return True\n        return False\n",
        "            return True\n        key.cooling_until = 0.0  # it answered: usable again\n"
        "        return False\n",
        "any success ends its key's cooldown",
        "a reset meant for one request's own retries: a 200 that was in flight on a key when "
        "another request's 429 cooled it puts the key back in rotation",
    ),
    # The recorder: judged by the recording oracle on every load (each load records).
    Mutant(
        "record-ok-only",
        "proxy/bridge.py",
        "        try:\n            if error is not None:\n"
        "                note_interruption(self.record, error)\n"
        "        finally:\n            if self.recorder is not None:\n"
        "                self.recorder(self.record)\n",
        "        if error is not None:\n            note_interruption(self.record, error)\n"
        "        elif self.recorder is not None:\n            self.recorder(self.record)\n",
        "an interception that ends in an exception is not handed to the recorder",
        "a recorder called after the with block instead of in a finally: a client that "
        "leaves, or a cancelled request, is missing from the recording",
        elsewhere=(
            (
                "    try:\n        with interruptions_noted(record):\n            yield record\n"
                "    finally:\n        if recorder is not None:\n            recorder(record)\n",
                "    with interruptions_noted(record):\n        yield record\n"
                "    if recorder is not None:\n        recorder(record)\n",
            ),
        ),
    ),
    Mutant(
        "record-handed-early",
        "proxy/bridge.py",
        "    def __enter__(self) -> Interception:\n        return self.record\n",
        "    def __enter__(self) -> Interception:\n        if self.recorder is not None:\n"
        "            self.recorder(self.record)  # encoded when its turn comes\n"
        "            self.recorder = None\n        return self.record\n",
        "the record is handed over when the interception starts",
        "a mutable record handed to the writer's queue before it is finished: the line says "
        "what was known when the writer got to it, often the request alone",
        elsewhere=(
            (
                "    try:\n        with interruptions_noted(record):\n            yield record\n"
                "    finally:\n        if recorder is not None:\n            recorder(record)\n",
                "    if recorder is not None:\n"
                "        recorder(record)  # encoded when its turn comes\n"
                "    with interruptions_noted(record):\n        yield record\n",
            ),
        ),
    ),
    Mutant(
        "record-interrupted-twice",
        "proxy/bridge.py",
        "                note_interruption(self.record, error)\n        finally:\n",
        "                note_interruption(self.record, error)\n"
        "                if self.recorder is not None:\n"
        "                    self.recorder(self.record)  # what was cut is recorded too\n"
        "        finally:\n",
        "an interception that ends in an exception is handed to the recorder twice",
        "an except clause added to record interrupted interceptions, beside the finally that "
        "already does: a client that left or a cancelled request is recorded twice",
        elsewhere=(
            (
                "            yield record\n    finally:\n",
                "            yield record\n    except BaseException:\n"
                "        if recorder is not None:\n"
                "            recorder(record)  # what was cut is recorded too\n"
                "        raise\n    finally:\n",
            ),
        ),
    ),
    Mutant(
        "breaker-stale-report",
        "proxy/breaker.py",
        "        if ticket.generation != self.generation:\n"
        "            return  # admitted under a state that has ended since\n",
        "",
        "an answer counts in the state it arrives in, not the one it was admitted in",
        "a request admitted while closed that fails after the breaker opened (or a probe "
        "that outlives its half-open period) counts twice: it reopens or closes the breaker",
    ),
    Mutant(
        "breaker-extra-probe",
        "proxy/breaker.py",
        "self.state is BreakerState.HALF_OPEN and self.probes < self.config.probes",
        "self.state is BreakerState.HALF_OPEN and self.probes <= self.config.probes",
        "half-open admits one probe more than configured",
        "an off-by-one in the probe count: a burst sends one more request to an upstream "
        "that is still overloaded",
    ),
    Mutant(
        "breaker-run-survives-success",
        "proxy/breaker.py",
        "            if not failed:\n                self.failures = 0\n                return\n",
        "            if not failed:\n                return\n",
        "a success does not end a run of failures",
        "failures counted, not failures in a row: interleaved requests that mostly succeed "
        "open the breaker",
    ),
    Mutant(
        "breaker-probe-kept",
        "proxy/breaker.py",
        "        if ticket.probe and ticket.generation == self.generation:\n"
        "            self.probes -= 1\n",
        "        if ticket.probe and ticket.generation == self.generation:\n            pass\n",
        "a probe that got no answer does not give its slot back",
        "a probe whose client left holds its half-open slot for good: every request is "
        "rejected until the state changes",
    ),
    # The upstream WebSocket one client connection keeps for its responses.
    Mutant(
        "ws-socket-kept-after-cut",
        "proxy/ws_bridge.py",
        "            # the answer would reach the next request, so the socket goes.\n"
        "            await self.session.close()\n            raise\n",
        "            raise\n",
        "the upstream socket is kept after a response was cut (timeout, bad event)",
        "the socket reused for the next response.create while the cut answer's remaining "
        "events are still in it: the next response starts with the last one's events",
    ),
    Mutant(
        "ws-socket-any-key",
        "proxy/ws_bridge.py",
        "if self.socket is not None and self.socket.open and key is self.key:",
        "if self.socket is not None and self.socket.open:",
        "the open upstream socket is reused whatever key the pool handed out",
        "the socket outlives its key: a response goes upstream on the key the socket was "
        "opened with (cooling, or disabled) while the pool counts another",
    ),
    Mutant(
        "ws-failed-reads-on",
        "proxy/ws_bridge.py",
        "                if conversation.failed or kind in TERMINAL:\n",
        "                if kind in TERMINAL:\n",
        "after an upstream error event the response keeps reading its socket",
        "a response that ended on an error is not taken as ended: the next messages on the "
        "socket (the next response's) are read as this one's",
        elsewhere=(
            (
                "                if conversation.failed:\n"
                "                    # An answer that failed may go on",
                "                if False:\n                    # An answer that failed may go on",
            ),
        ),
    ),
    Mutant(
        "ws-close-no-cancel",
        "proxy/ws_server.py",
        "                    scope.cancel()  # the client left: stop its response and its "
        "upstream\n",
        "",
        "a client's close does not stop its response",
        "the upstream socket and its answer run on after the client left (WebSocket's "
        "server-no-cancel)",
    ),
    # A shared MCP server's connection, across the calls of concurrent requests.
    Mutant(
        "mcp-late-failure-ends-new-connection",
        "mcp_tools/servers.py",
        "            if exc.error.code == mcp_types.CONNECTION_CLOSED:\n"
        "                lost.set()\n",
        "            if exc.error.code == mcp_types.CONNECTION_CLOSED:\n"
        "                self._lost.set()\n",
        "a call that fails on a closed connection marks the server's current connection lost",
        "a call from one request, started on a connection that died, ends as the server is "
        "restarted: the new connection another request is using is torn down",
    ),
    # -- server ----------------------------------------------------------------------------
    Mutant(
        "server-no-cancel",
        "proxy/server.py",
        "        self.peer_gone = True\n        handler_scope.cancel()\n",
        "        self.peer_gone = True\n",
        "a client that leaves does not cancel its handler",
        "the upstream request runs on (and costs) after the client hung up",
    ),
    Mutant(
        "server-no-finish",
        "proxy/server.py",
        "                await writer.finish()\n            finally:",
        "            finally:",
        "a streamed response is never ended",
        "the chunked body lacks its last chunk: clients wait for more",
    ),
)


def copy_package(source: Path, into: Path) -> Path:
    shutil.copytree(
        source / "aibridge_cli",
        into / "aibridge_cli",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return into


def apply(mutant: Mutant, root: Path) -> None:
    path = root / "aibridge_cli" / mutant.path
    text = path.read_text()
    for old, new in ((mutant.old, mutant.new), *mutant.elsewhere):
        if text.count(old) == 1:
            path.write_text(text.replace(old, new))
            return
    raise SystemExit(f"{mutant.id}: the text to change is not in {mutant.path} exactly once")


def campaign(root: Path, args: argparse.Namespace) -> tuple[int, float]:
    """Exit status and wall seconds of one fuzz campaign of the package copy at ``root``,
    shard by shard, stopping at the first that does not pass."""
    started = time.perf_counter()
    status = 0
    for k in range(1, args.shards + 1):
        status = shard(root, args, f"{k}/{args.shards}")
        if status != 0:
            break
    return status, time.perf_counter() - started


def shard(root: Path, args: argparse.Namespace, which: str) -> int:
    argv = [
        "nice",
        sys.executable,
        "-m",
        "aibridge_cli",
        "fuzz",
        "--iterations",
        str(args.iterations),
        "--jobs",
        str(args.jobs),
        "--seed",
        str(args.seed),
        "--shard",
        which,
        "--json",
        "--out",
        str(root / "out"),
    ]
    if "max-findings" in (root / "aibridge_cli/fuzz/command.py").read_text():
        argv += ["--max-findings", "1"]  # an older fuzzer (main before #15) shrinks them all
    # cwd first on sys.path (python -m): the copy, not the installed package, is imported.
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(argv, cwd=root, env=env, capture_output=True, timeout=args.timeout)
    if done.returncode == 1:
        # A crash exits 1 too: killed means the report lists a failing iteration.
        try:
            failures = json.loads(done.stdout).get("failures")
        except ValueError:
            failures = None
        return 1 if failures else 3
    return done.returncode


def run_one(source: Path, mutant: Mutant | None, args: argparse.Namespace) -> tuple[int, float]:
    with tempfile.TemporaryDirectory(prefix="mutant-") as tmp:
        root = copy_package(source, Path(tmp))
        if mutant is not None:
            apply(mutant, root)
        try:
            return campaign(root, args)
        except subprocess.TimeoutExpired:
            return -1, args.timeout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=ROOT)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--no-control", action="store_true", help="skip the unmutated run")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--only", action="append", default=[])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if not args.only or m.id in args.only]
    if args.list:
        for m in chosen:
            tag = " (equivalent)" if m.equivalent else ""
            print(f"{m.id}{tag}: {m.change}. Stands for: {m.bug}")
        return
    unknown = set(args.only) - {m.id for m in MUTANTS}
    if unknown:
        raise SystemExit(f"no such mutant: {', '.join(sorted(unknown))}")
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(f"load average at start: {' '.join(load)}; {len(chosen)} mutants", flush=True)
    if not args.no_control:
        status, seconds = run_one(args.source, None, args)
        print(f"unmutated: exit {status} in {seconds:.0f} s", flush=True)
        if status != 0:
            raise SystemExit("the unmutated package is not clean: the kill rate means nothing")
    results = []
    started = time.perf_counter()
    for m in chosen:
        status, seconds = run_one(args.source, m, args)
        verdict = {0: "survived", 1: "killed"}.get(status, f"broken (exit {status})")
        results.append({"id": m.id, "verdict": verdict, "seconds": round(seconds, 1)})
        print(f"{m.id:30} {verdict:10} {seconds:6.0f} s", flush=True)
    wall = time.perf_counter() - started
    counted = [r for r, m in zip(results, chosen, strict=True) if not m.equivalent]
    killed = sum(r["verdict"] == "killed" for r in counted)
    survivors = [r["id"] for r in counted if r["verdict"] != "killed"]
    equivalent = [m.id for m in chosen if m.equivalent]
    print(
        f"\nkilled {killed} of {len(counted)} non-equivalent mutants "
        f"({100 * killed / max(1, len(counted)):.0f}%) in {wall / 60:.1f} min"
    )
    print(f"survivors: {', '.join(survivors) or 'none'}")
    print(f"equivalent (not counted): {', '.join(equivalent) or 'none'}")
    if args.json:
        summary = {"killed": killed, "counted": len(counted), "wall_seconds": round(wall)}
        args.json.write_text(json.dumps({"results": results, **summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
