"""Slow and excess clients (issue 20, defect 3: slowloris): half-open requests are closed after the
header or body timeout, connections over the per-address and total caps are refused at once, and
everyone else is served meanwhile. Raw sockets on loopback; every wait is bounded."""

from __future__ import annotations

import asyncio
import json
import time

from api.connections import client_key
from server import configure, parse_args
from tests.server.helpers import connect, events_until_done, next_json, sum_graph

HALF_HEAD = b"GET /queue HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


async def open_raw(server, first: bytes = b"") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    if first:
        writer.write(first)
        await writer.drain()
    return reader, writer


async def seconds_until_closed(reader: asyncio.StreamReader, limit: float) -> float:
    """How long until the server closes the connection (whatever it sent first is read and dropped)."""
    start = time.monotonic()
    try:
        async with asyncio.timeout(limit):
            while await reader.read(4096):
                pass
    except ConnectionResetError:
        pass
    return time.monotonic() - start


async def served(server) -> bool:
    async with connect(server) as api:
        status, body = await api.get("/queue")
        return status == 200 and "queue_running" in body


def close_all(writers) -> None:
    for writer in writers:
        writer.close()


async def test_half_sent_heads_are_closed_after_the_header_timeout_while_others_are_served(make_server):
    server = make_server(header_timeout=1.5, max_connections_per_address=500)
    started = time.monotonic()
    slow = [await open_raw(server, HALF_HEAD) for _ in range(150)]
    try:
        assert await served(server)  # a normal client, served while 150 heads hang
        assert not any(reader.at_eof() for reader, _ in slow)  # closed by the timeout, not at once
        waits = await asyncio.gather(*(seconds_until_closed(reader, 5.0) for reader, _ in slow))
        assert all(wait < 4.0 for wait in waits), max(waits)
        assert time.monotonic() - started >= 1.4
        assert await served(server)
    finally:
        close_all(writer for _, writer in slow)


async def test_trickling_a_head_does_not_extend_the_header_timeout(make_server):
    server = make_server(header_timeout=1.0)
    started = time.monotonic()
    reader, writer = await open_raw(server, HALF_HEAD)
    try:
        while not reader.at_eof() and time.monotonic() - started < 4.0:
            writer.write(b"x")  # a byte every 0.1 s, for longer than the timeout
            await asyncio.sleep(0.1)
        assert await seconds_until_closed(reader, 1.0) < 1.0
        assert time.monotonic() - started < 2.5
    finally:
        writer.close()


async def test_a_stalled_body_is_closed_after_the_body_timeout_a_slow_steady_one_is_served(make_server):
    server = make_server(body_timeout=1.0)
    body = json.dumps({"prompt": sum_graph()}).encode()
    head = (f"POST /prompt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    stalled_reader, stalled = await open_raw(server, head + body[:10])
    steady_reader, steady = await open_raw(server, head)
    try:
        piece = len(body) // 5 + 1
        for start in range(0, len(body), piece):  # five pieces, 0.3 s apart: 1.5 s in all
            await asyncio.sleep(0.3)
            steady.write(body[start:start + piece])
        async with asyncio.timeout(5):
            status_line = await steady_reader.readline()
        assert status_line.startswith(b"HTTP/1.1 200"), status_line
        assert await seconds_until_closed(stalled_reader, 5.0) < 4.0
        assert stalled_reader.at_eof()
    finally:
        close_all([stalled, steady])


async def test_an_idle_kept_alive_connection_is_not_cut_by_the_header_timeout(make_server):
    server = make_server(header_timeout=0.3)
    reader, writer = await open_raw(server)
    try:
        for _ in range(2):
            writer.write(b"GET /queue HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            async with asyncio.timeout(5):
                assert (await reader.readline()).startswith(b"HTTP/1.1 200")
                length = 0
                while (line := await reader.readline()) != b"\r\n":
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
            await asyncio.sleep(0.6)  # idle between requests, longer than the header timeout
    finally:
        writer.close()


async def test_connections_over_the_per_address_cap_are_refused_at_once(make_server):
    server = make_server(max_connections_per_address=5)
    held = [await open_raw(server) for _ in range(5)]
    try:
        await asyncio.sleep(0.1)
        reader, writer = await open_raw(server)
        async with asyncio.timeout(2):
            refused = await reader.read()
        writer.close()
        assert refused.startswith(b"HTTP/1.1 503"), refused
        held.pop()[1].close()
        for _ in range(50):  # the server frees the slot when it sees the close
            if await served(server):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("a freed slot was not given to a new client")
    finally:
        close_all(writer for _, writer in held)


async def test_connections_over_the_total_cap_are_refused_at_once(make_server):
    server = make_server(max_connections=3, max_connections_per_address=100)
    held = [await open_raw(server) for _ in range(3)]
    try:
        await asyncio.sleep(0.1)
        reader, writer = await open_raw(server)
        async with asyncio.timeout(2):
            assert (await reader.read()).startswith(b"HTTP/1.1 503")
        writer.close()
    finally:
        close_all(writer for _, writer in held)


async def test_websockets_outlive_the_header_and_body_timeouts(make_server):
    server = make_server(header_timeout=0.5, body_timeout=0.5)
    async with connect(server) as api:
        async with api.session.ws_connect(server.ws_url("?clientId=patient")) as ws:
            await next_json(ws)
            await asyncio.sleep(1.5)
            prompt_id = await api.queue_prompt(sum_graph(), client_id="patient")
            events = await events_until_done(ws, prompt_id)
            assert [event for event, _ in events][-2] == "execution_success"


def test_client_key_counts_ipv6_per_64_and_mapped_ipv4_as_ipv4():
    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:10.0.0.7") == client_key("10.0.0.7") == "10.0.0.7"
    assert client_key("fe80::1%eth0") == "fe80::/64"


def test_server_options_set_the_timeouts_and_caps():
    _, settings = configure(parse_args(["--header-timeout", "2.5", "--body-timeout", "7",
                                        "--max-connections-per-address", "9", "--max-connections", "90"]))
    assert (settings.header_timeout, settings.body_timeout) == (2.5, 7.0)
    assert (settings.max_connections_per_address, settings.max_connections) == (9, 90)
    _, defaults = configure(parse_args([]))
    assert (defaults.header_timeout, defaults.body_timeout, defaults.max_connections_per_address,
            defaults.max_connections) == (10.0, 60.0, 128, 1000)
