"""A minimal RESP2 client for the bench tools that talk to redis-server themselves
(`redis_reward_replay.py`, `redis_aof_digest.sh`): the bench's Python has no redis-py, and the
replays send byte strings exactly as banditd packs them.
"""

import socket
import sys


def pack(items):
    """One command's request bytes; `items` are bytes, or anything `str` spells."""
    parts = [b"*%d\r\n" % len(items)]
    for item in items:
        item = item if isinstance(item, bytes) else str(item).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(item), item))
    return b"".join(parts)


class Resp:
    """One connection to redis-server on 127.0.0.1:`port`; an error reply exits."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.reader = self.sock.makefile("rb")

    def read(self):
        line = self.reader.readline()
        kind, rest = line[:1], line[1:-2]
        if kind in (b"+", b":"):
            return rest
        if kind == b"-":
            sys.exit("redis: " + rest.decode())
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self.reader.read(size + 2)[:-2]
        return [self.read() for _ in range(int(rest))]

    def cmd(self, *items):
        self.sock.sendall(pack(items))
        return self.read()

    def pipelined(self, commands):
        """Sends `commands` at once and reads their replies."""
        self.sock.sendall(b"".join(pack(items) for items in commands))
        return [self.read() for _ in commands]
