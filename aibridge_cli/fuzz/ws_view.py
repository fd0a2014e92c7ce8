"""A WebSocket answer as the HTTP event stream that carries the same events.

The world's client reads a socket's messages as their SSE view (``sse_view``: one frame
per message, named by its type), so the oracles that compare the client's answer with
what the upstream sent (differential, usage) read the upstream's messages the same way.
A refusal (an error status, at the upgrade or as an opening ``error`` event) is left as
the error answer it stands for: the differential treats it as the key failure or the end
it is, as over HTTP.
"""

from __future__ import annotations

from ..fakes.scripted_upstream import Reply
from ..fakes.scripted_websocket import reply_messages
from ..providers.openai_responses_ws import SSE_VIEW_HEADERS, message_frame


def as_event_stream(reply: Reply) -> Reply:
    """``reply`` (a socket's answer to one ``response.create``) as an SSE reply: each
    chunk's messages become frames, so delays and a fault's index still line up."""
    if reply.status >= 400:
        return reply
    chunks = [b"".join(map(message_frame, messages)) for messages in reply_messages(reply)]
    return Reply(
        200,
        list(SSE_VIEW_HEADERS),
        chunks,
        reply.delays,
        fault=reply.fault,
        fault_at=reply.fault_at,
    )
