#!/usr/bin/env python3
# One connection of the guest to the lab's package repository: qemu's
# guestfwd starts this for each connection to 10.0.2.100:80, with the
# guest's socket on stdin and stdout, and it relays the bytes to the
# repository's HTTP server on the controller's 127.0.0.1:PORT (vm.sh).
# restrict=on keeps every other address out of the guest's reach.
import os
import select
import socket
import sys


def write_all(fd, data):
    while data:
        n = os.write(fd, data)
        data = data[n:]


def main():
    port = int(sys.argv[1])
    try:
        server = socket.create_connection(("127.0.0.1", port), timeout=10)
    except OSError:
        return 0  # no server: the guest sees the connection closed
    server.settimeout(None)
    guest_open = True
    while True:
        fds = [server] + ([0] if guest_open else [])
        ready, _, _ = select.select(fds, [], [], 600)
        if not ready:
            return 0
        if guest_open and 0 in ready:
            data = os.read(0, 65536)
            if data:
                server.sendall(data)
            else:
                guest_open = False
                server.shutdown(socket.SHUT_WR)
        if server in ready:
            data = server.recv(65536)
            if not data:
                return 0
            write_all(1, data)


if __name__ == "__main__":
    sys.exit(main())
