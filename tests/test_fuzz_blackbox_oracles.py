"""The black-box-only oracles on plain data: what the upstream got against what the client
sent and got (the campaigns that reach them are in test_fuzz_blackbox.py)."""

from __future__ import annotations

import json
from typing import Any

from aibridge_cli.fakes.scripted_upstream import Reply, SeenRequest
from aibridge_cli.fuzz.blackbox_oracles import Observed, blackbox_violations
from aibridge_cli.fuzz.blackbox_upstream import UpstreamRequest
from aibridge_cli.fuzz.grammar import Response
from aibridge_cli.fuzz.oracles import Profile, profile_oracles

ORACLES = profile_oracles(Profile.GENERIC, black_box=True)
CLIENT = {"model": "claude-x", "max_tokens": 9, "tools": [{"name": "t"}], "messages": []}
JSON = [("content-type", "application/json")]


def observed(
    sent: dict[str, Any] | None = None,
    got: dict[str, Any] | None = None,
    headers: list[tuple[str, str]] | None = None,
    reply: Reply | None = None,
    response: Response | None = None,
    hung_up_at_once: bool = False,
) -> Observed:
    reply = reply or Reply.json({"ok": 1})
    requests = []
    if got is not None:
        seen = SeenRequest("POST", "/v1/messages", headers or JSON, json.dumps(got).encode(), "/")
        requests.append(UpstreamRequest(1.0, seen, reply, repeat=False))
    return Observed(
        requests=requests,
        response=response or Response(200, JSON, b'{"ok":1}', complete=True),
        first_byte=2.0,
        left=3.0,
        hung_up_at_once=hung_up_at_once,
        hung_up=hung_up_at_once,
        leak_probe=False,
        read_on=False,
        client_body=json.dumps(sent or CLIENT).encode(),
        client_headers=(("content-type", "application/json"), ("anthropic-beta", "b1")),
        served=(reply,),
    )


def failed(o: Observed) -> list[tuple[str, str]]:
    return [(v.oracle, v.shape) for v in blackbox_violations(o, ORACLES)]


def test_an_iteration_the_upstream_never_saw_fails_upstream_reached() -> None:
    refused = Response(401, JSON, b'{"error":{"type":"auth"}}', complete=True)
    assert failed(observed(response=refused)) == [("upstream-reached", "not called: JSON 401")]
    # a client that hung up as soon as its request was out may rightly cost nothing
    assert failed(observed(response=Response(None, [], b"", False), hung_up_at_once=True)) == []


def test_request_fidelity_allows_a_mapped_model_added_fields_and_added_tools() -> None:
    beta = [*JSON, ("anthropic-beta", "b1"), ("x-api-key", "the gateway's own")]
    got = {**CLIENT, "model": "mapped", "metadata": {}, "tools": [{"name": "t"}, {"name": "own"}]}
    assert failed(observed(got=got, headers=beta)) == []
    # a field at the API's default may be left out: the same request
    plain = {**CLIENT, "stream": False}
    assert failed(observed(sent=plain, got=CLIENT, headers=beta)) == []


def test_request_fidelity_finds_a_dropped_or_changed_field_and_a_lost_header() -> None:
    beta = [*JSON, ("anthropic-beta", "b1")]
    dropped = {k: v for k, v in CLIENT.items() if k != "max_tokens"}
    assert failed(observed(got=dropped, headers=beta)) == [
        ("request-fidelity", "request field dropped")
    ]
    changed = {**CLIENT, "max_tokens": 10}
    assert failed(observed(got=changed, headers=beta)) == [
        ("request-fidelity", "request field changed")
    ]
    assert failed(observed(got=CLIENT, headers=JSON)) == [
        ("request-fidelity", "request header changed")
    ]


def test_status_mapping_keeps_the_class_and_the_kind_a_client_acts_on() -> None:
    beta = [*JSON, ("anthropic-beta", "b1")]
    overloaded = Reply.json({"type": "error", "error": {"type": "overloaded_error"}}, 529)

    def answered(status: int, body: bytes) -> list[tuple[str, str]]:
        response = Response(status, JSON, body, complete=True)
        return failed(observed(got=CLIENT, headers=beta, reply=overloaded, response=response))

    assert answered(529, b'{"error":{"type":"anything"}}') == []
    assert answered(503, b'{"error":{"type":"overloaded_error","message":"wrapped"}}') == []
    assert answered(500, b'{"error":{"type":"api_error"}}') == [
        ("status-mapping", "529 became 500, kind lost")
    ]
    assert answered(400, b'{"error":{"type":"overloaded_error"}}') == [
        ("status-mapping", "5xx became 4xx")
    ]


def test_an_answer_goes_out_chunked_with_a_content_length_or_gzipped_when_accepted() -> None:
    import gzip

    from aibridge_cli.fuzz.blackbox_upstream import framed

    reply = Reply(200, [("content-type", "text/event-stream")], [b"data: 1\n\n", b"data: 2\n\n"])
    assert framed(reply, "chunked", True) is reply
    sized = framed(reply, "length", True)
    assert ("content-length", "18") in sized.headers
    assert sized.chunks == reply.chunks
    packed = framed(reply, "gzip", True)
    assert ("content-encoding", "gzip") in packed.headers
    assert gzip.decompress(b"".join(packed.chunks)) == b"data: 1\n\ndata: 2\n\n"
    assert len(packed.chunks) == 2  # in as many writes as scripted
    # not to a request that does not accept it, nor an answer the upstream breaks off
    assert ("content-encoding", "gzip") not in framed(reply, "gzip", False).headers
    cut = Reply(200, reply.headers, reply.chunks, fault="reset-in-body", fault_at=1)
    assert ("content-length", "18") in framed(cut, "gzip", True).headers
    # a reset after the last byte would leave a sized body whole: it stays chunked
    after = Reply(200, reply.headers, reply.chunks, fault="reset-in-body", fault_at=2)
    assert framed(after, "length", True) is after
