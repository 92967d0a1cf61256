"""paho's socket I/O, made cheaper on the event loop's thread (aiomqtt exposes none of it).

- ``write_soon``: what paho queues is written on the next loop turn, in one ``send``
  (``coalesce`` joins the waiting packets), instead of aiomqtt's writer callback per burst.
- ``read_buffered``: paho reads every packet with three or four ``recv`` calls (the
  command byte, each byte of the remaining length, then the rest): a 4-byte PUBACK cost
  three system calls. Reads now take what the kernel holds (up to 64 KiB) in one ``recv``
  and paho's reads are served from that buffer; what is left once paho stops reading is
  handed to it on the next loop turn, so no packet waits for more bytes to arrive.

Both reach into paho's internals (``_out_packet``, ``_sock``, ``_sock_recv``); the
versions are pinned (constraints.txt) and tests/mqtt/test_pipelining.py checks them.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt_client

__all__ = ["coalesce", "read_buffered", "write_soon"]

_READ_CHUNK = 65536

_MERGE_NEVER = (mqtt_client.DISCONNECT,)


def coalesce(paho: mqtt_client.Client) -> None:
    """Join the packets waiting in paho's queue into one write (one ``send``, one segment
    with TCP_NODELAY, one wake-up of the broker) instead of one per packet: the ten
    ``rfq.new`` of an RFQ, the PUBACKs of a batch of quotes. Only when every waiting packet
    is whole and needs nothing done once written (not a QoS 0 PUBLISH, whose on_publish
    paho calls then, nor a DISCONNECT); otherwise paho writes them one by one, as usual."""
    out = paho._out_packet
    if len(out) < 2:
        return
    for packet in out:
        command = packet["command"] & 0xF0
        if packet["pos"] or command in _MERGE_NEVER:
            return
        if command == mqtt_client.PUBLISH and packet["qos"] == 0:
            return
    first = out[0]
    data = b"".join(bytes(p["packet"]) for p in out)
    out.clear()
    out.append({"command": first["command"], "mid": first["mid"], "qos": first["qos"], "pos": 0,
                "to_process": len(data), "packet": data, "info": first["info"]})


def write_soon(client: aiomqtt.Client, loop: asyncio.AbstractEventLoop) -> None:
    """Write what paho queues on the next loop turn, straight away, in one ``send``.

    aiomqtt registers a writer callback for every burst of packets from any thread
    (``call_soon_threadsafe``: a wake-up write, an epoll registration and removal, and an
    extra turn of the loop before the bytes leave). On the loop's thread this schedules
    one flush with ``call_soon``; the socket is watched for writability only when the
    kernel's buffer is full."""
    paho = client._client
    owner = threading.get_ident()
    scheduled = False
    watched: int | None = None  # the fd watched for writability while the kernel's buffer is full

    def flush() -> None:
        nonlocal scheduled, watched
        scheduled = False
        sock = paho.socket()
        if sock is None:
            return
        coalesce(paho)
        try:
            paho.loop_write()
        except Exception as exc:  # as aiomqtt's own writer: a broken pipe ends the connection
            if not client._disconnected.done():
                client._disconnected.set_exception(exc)
            return
        if paho.want_write() and watched is None:
            watched = sock.fileno()
            loop.add_writer(watched, flush)

    def register(_client: Any, _userdata: Any, _sock: Any) -> None:
        nonlocal scheduled
        if scheduled:
            return
        scheduled = True
        if threading.get_ident() == owner:
            loop.call_soon(flush)
        else:  # paho connects on an executor thread
            loop.call_soon_threadsafe(flush)

    def unregister(_client: Any, _userdata: Any, _sock: Any) -> None:
        nonlocal watched
        if watched is not None:
            loop.remove_writer(watched)
            watched = None

    paho.on_socket_register_write = register
    paho.on_socket_unregister_write = unregister


def read_buffered(client: aiomqtt.Client, loop: asyncio.AbstractEventLoop) -> None:
    """Serve paho's ``_sock_recv`` from one large ``recv`` per readable event (module doc).

    Only plain TCP sockets: a TLS socket keeps its own buffer of decrypted bytes, which
    aiomqtt's reader drains (``pending()``), and reads through it unchanged."""
    paho = client._client
    plain_recv = paho._sock_recv
    buffer = bytearray()
    state: dict[str, Any] = {"sock": None, "scheduled": False}

    def drain() -> None:
        state["scheduled"] = False
        if not buffer or paho._sock is None:
            return
        try:
            while buffer and paho._sock is not None:
                before = len(buffer)
                paho.loop_read()
                if len(buffer) == before:  # paho took nothing: a partial packet waits for more
                    break
        except Exception as exc:  # as aiomqtt's reader: a broken connection ends the session
            if not client._disconnected.done():
                client._disconnected.set_exception(exc)

    def recv(bufsize: int) -> bytes:
        sock = paho._sock
        if sock is None or isinstance(sock, ssl.SSLSocket):
            buffer.clear()
            return bytes(plain_recv(bufsize))
        if state["sock"] is not sock:  # a new connection: nothing of the old one is kept
            state["sock"] = sock
            buffer.clear()
        if not buffer:
            data = sock.recv(_READ_CHUNK)  # BlockingIOError when there is nothing: paho's "again"
            if not data:
                return b""  # the broker closed the connection
            buffer.extend(data)
        chunk = bytes(buffer[:bufsize])
        del buffer[:bufsize]
        if buffer and not state["scheduled"]:
            state["scheduled"] = True
            loop.call_soon(drain)
        return chunk

    paho._sock_recv = recv  # type: ignore[method-assign]
