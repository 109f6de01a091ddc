"""Separate "hosts" on this machine: network namespaces on a bridge, each with its own address.

The root namespace is the services' host (10.77.0.1): what the roles share is reached over
the links, never over loopback or a folder. `forward` relays a port on the bridge to a
service that listens on loopback only (this machine's PostgreSQL).
"""

import os
import socket
import subprocess
import threading
from contextlib import contextmanager

BRIDGE_IP = "10.77.0.1"


def _ip(*args: str, ns: str | None = None) -> None:
    argv = ["ip", "netns", "exec", ns, "ip", *args] if ns else ["ip", *args]
    subprocess.run(argv, check=True, capture_output=True, text=True)


def can_make_namespaces() -> str | None:
    """None when namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    probe = f"sgprobe{os.getpid() % 10000}"
    try:
        _ip("netns", "add", probe)
        _ip("netns", "del", probe)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        return f"`ip netns add` failed here: {getattr(exc, 'stderr', exc)}"
    return None


@contextmanager
def hosts(names: list[str]):
    """Yields {name: (namespace, address)}; everything is removed after."""
    tag = f"{os.getpid() % 10000}"
    bridge = f"sgbr{tag}"
    made, out = [], {}
    try:
        _ip("link", "add", bridge, "type", "bridge")
        _ip("addr", "add", f"{BRIDGE_IP}/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for i, name in enumerate(names, start=2):
            ns, outer, inner = f"sg{tag}{name[:6]}", f"sgv{tag}{i}", f"sgp{tag}{i}"
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            _ip("link", "set", inner, "netns", ns)
            _ip("link", "set", outer, "master", bridge, "up")
            _ip("addr", "add", f"10.77.0.{i}/24", "dev", inner, ns=ns)
            _ip("link", "set", inner, "up", ns=ns)
            _ip("link", "set", "lo", "up", ns=ns)
            out[name] = (ns, f"10.77.0.{i}")
        yield out
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)


def forward(listen_port: int, target: tuple[str, int]) -> socket.socket:
    """Relay BRIDGE_IP:listen_port to `target` (threads; closes with the returned socket)."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((BRIDGE_IP, listen_port))
    server.listen(64)

    def pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def accept() -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return server
