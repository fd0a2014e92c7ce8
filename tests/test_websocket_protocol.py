"""The WebSocket layer in memory: whole messages out of frames however they arrive, pings
answered, limits kept, close codes; and the sans-io pieces of the Responses WebSocket mode."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing
import wsproto
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    Pong,
    Request,
)

from aibridge_cli.providers.openai_responses_ws import (
    ClientEventError,
    frame_messages,
    message_frame,
    opening_status,
    parse_client_event,
    sse_view,
)
from aibridge_cli.proxy.websocket import (
    BinaryMessage,
    MessageTooBig,
    WebSocket,
    WebSocketClosed,
)


def handshake() -> tuple[wsproto.WSConnection, wsproto.WSConnection]:
    """A client and a server connection past their handshake (sans-io, no stream)."""
    client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    server = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    server.receive_data(client.send(Request(host="h", target="/openai/v1/responses")))
    assert isinstance(next(server.events()), Request)
    client.receive_data(server.send(AcceptConnection()))
    assert isinstance(next(client.events()), AcceptConnection)
    return client, server


async def socket_pair(limit: int = 1000) -> tuple[wsproto.WSConnection, WebSocket, trio.abc.Stream]:
    client, server = handshake()
    near, far = trio.testing.memory_stream_pair()
    return client, WebSocket(far, server, max_message_size=limit), near


def fragmented(client: wsproto.WSConnection, text: str, parts: int) -> bytes:
    size = max(1, len(text) // parts)
    pieces = [text[i : i + size] for i in range(0, len(text), size)]
    return b"".join(
        client.send(Message(data=piece, message_finished=i == len(pieces) - 1))
        for i, piece in enumerate(pieces)
    )


@pytest.mark.parametrize("step", [1, 7, 10_000], ids=["byte-by-byte", "7-bytes", "whole"])
async def test_a_fragmented_message_arrives_whole_however_it_is_read(step: int) -> None:
    client, socket, near = await socket_pair()
    text = json.dumps({"type": "response.create", "input": "héllo " * 20})
    data = fragmented(client, text, 5) + client.send(Message(data="next"))

    async def feed() -> None:
        for i in range(0, len(data), step):
            await near.send_all(data[i : i + step])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed)
        assert await socket.receive() == text
        assert await socket.receive() == "next"


async def test_pings_are_answered_and_pongs_counted() -> None:
    client, socket, near = await socket_pair()
    await near.send_all(
        client.send(Ping(b"hi")) + client.send(Pong(b"")) + client.send(Message(data="m"))
    )
    assert await socket.receive() == "m"
    client.receive_data(bytes(await near.receive_some()))
    assert [type(e) for e in client.events()] == [Pong]
    assert socket.pongs == 1


async def test_an_oversize_message_is_dropped_and_the_next_one_read() -> None:
    client, socket, near = await socket_pair(limit=100)
    await near.send_all(fragmented(client, "x" * 250, 3) + client.send(Message(data="ok")))
    with pytest.raises(MessageTooBig, match="250 bytes is larger than the limit of 100"):
        await socket.receive()
    assert await socket.receive() == "ok"


async def test_a_binary_message_is_refused_and_the_socket_kept() -> None:
    client, socket, near = await socket_pair()
    await near.send_all(
        client.send(BytesMessage(data=b"\x00\x01")) + client.send(Message(data="t"))
    )
    with pytest.raises(BinaryMessage):
        await socket.receive()
    assert await socket.receive() == "t"


async def test_the_peers_close_is_answered_with_its_code() -> None:
    client, socket, near = await socket_pair()
    await near.send_all(client.send(CloseConnection(code=1000, reason="bye")))
    with pytest.raises(WebSocketClosed) as closed:
        await socket.receive()
    assert (closed.value.code, closed.value.reason) == (1000, "bye")
    client.receive_data(bytes(await near.receive_some()))
    (answer,) = list(client.events())
    assert isinstance(answer, CloseConnection)
    assert answer.code == 1000


async def test_a_stream_that_ends_without_a_close_reads_as_1006() -> None:
    _, socket, near = await socket_pair()
    await near.aclose()
    with pytest.raises(WebSocketClosed) as closed:
        await socket.receive()
    assert closed.value.code == 1006


async def test_close_sends_its_code_and_waits_a_bounded_time(
    autojump_clock: trio.abc.Clock,
) -> None:
    client, socket, near = await socket_pair()
    start = trio.current_time()
    await socket.close(1001, wait=0.5)  # the peer never answers
    assert trio.current_time() - start == pytest.approx(0.5)
    client.receive_data(bytes(await near.receive_some()))
    (event,) = list(client.events())
    assert isinstance(event, CloseConnection)
    assert event.code == 1001
    with pytest.raises(WebSocketClosed):
        await socket.send("late")


# -- the Responses WebSocket mode, sans-io --------------------------------------------------
@pytest.mark.parametrize(
    ("text", "code", "param"),
    [
        ("{not json", "invalid_json", None),
        ("[1, 2]", "invalid_json", None),
        ('{"type": "session.update"}', "unknown_event_type", "type"),
        ('{"model": "gpt-x"}', "unknown_event_type", "type"),
    ],
)
def test_client_events_the_proxy_cannot_act_on(text: str, code: str, param: str | None) -> None:
    with pytest.raises(ClientEventError) as error:
        parse_client_event(text)
    assert (error.value.code, error.value.param, error.value.status) == (code, param, 400)


def test_a_response_create_is_its_body() -> None:
    body = parse_client_event('{"type": "response.create", "model": "m", "input": []}')
    assert body == {"type": "response.create", "model": "m", "input": []}


def test_messages_survive_their_sse_frames() -> None:
    messages = [
        '{"type":"response.created","response":{"id":"r"}}',
        '{\n  "type": "response.output_text.delta",\n  "delta": "a\\nb"\n}',
        '{"type":"error","status":429,"error":{"code":"rate_limit_exceeded"}}',
    ]
    frames = b"".join(message_frame(m) for m in messages) + b": ping\n\n"
    assert frame_messages(frames) == messages
    status, headers, view = sse_view(messages)
    assert (status, headers) == (200, [("content-type", "text/event-stream")])
    assert view.startswith(b"event: response.created\ndata: ")


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        ('{"type":"response.created"}', (101, None)),
        ('{"type":"error","code":"server_error","message":"x"}', (101, None)),
        ('{"type":"error","status":429,"error":{"headers":{"retry-after":"7"}}}', (429, "7")),
        ('{"type":"error","status":401,"error":{"type":"authentication_error"}}', (401, None)),
        ("{not json", (101, None)),
        (None, (101, None)),
    ],
)
def test_what_an_opening_message_answered(
    first: str | None, expected: tuple[int, str | None]
) -> None:
    assert opening_status(101, first) == expected
