#!/usr/bin/env python3
"""A ProxyCommand for tests: relays stdin/stdout to HOST:PORT and hands the
server's first bytes to the client in a chosen shape.

usage: chunk_relay.py MODE HOST PORT
  bytes     the server's first 300 bytes one byte per write, 2 ms apart
  together  the server's identification line held back until more of
            the stream has come, then written with it in one write
  plain     no change
"""
import os
import select
import socket
import sys
import time

mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
sock = socket.create_connection((host, port), timeout=10)
sock.setblocking(True)


class Out:
    def write(self, data):
        while data:
            data = data[os.write(1, data):]


out = Out()
inp = 0         # stdin's descriptor, None once it ended
sent = 0        # bytes of the server's stream written to the client
held = b""      # "together": the line and what followed it, not yet written
deadline = time.monotonic() + 120

while time.monotonic() < deadline:
    ready, _, _ = select.select([sock] + ([inp] if inp is not None else []), [], [], 1.0)
    if inp is not None and inp in ready:
        data = os.read(inp, 65536)
        if not data:
            sock.shutdown(socket.SHUT_WR)
            inp = None
        else:
            sock.sendall(data)
    if sock in ready:
        data = sock.recv(65536)
        if not data:
            break
        if mode == "bytes" and sent < 300:
            for i in range(len(data)):
                if sent >= 300:
                    out.write(data[i:])
                    sent += len(data) - i
                    break
                out.write(data[i:i + 1])
                sent += 1
                time.sleep(0.002)
            continue
        if mode == "together" and sent == 0:
            held += data
            if b"\n" in held and len(held) > held.index(b"\n") + 1:
                out.write(held)
                sent = len(held)
            continue
        out.write(data)
        sent += len(data)
