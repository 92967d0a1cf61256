"""A machine of its own for one engine: a network namespace joined to this host by a veth
pair, whose link can be cut with no FIN and no RST (``ip link set … down``), as when the
machine vanishes, and restored.

Needs root and ``ip`` (iproute2); ``available()`` says whether a namespace can be made
here. The namespace and the pair are named after this process, so parallel runs do not
collide, and are removed on ``close`` (deleting the namespace deletes the pair).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

__all__ = ["Netns", "available"]


def _ip(*args: str, netns: str | None = None) -> None:
    command = ["ip", *(["netns", "exec", netns, "ip"] if netns else []), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")


def available() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"rfqprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except RuntimeError:
        return False
    _ip("netns", "del", probe)
    return True


@dataclass
class Netns:
    """``name``: the namespace; ``host_ip`` on this side of the link, ``ns_ip`` inside."""

    name: str
    host_if: str
    ns_if: str
    host_ip: str
    ns_ip: str

    @classmethod
    def make(cls) -> Netns:
        tag = os.getpid() % 10_000
        subnet = f"10.213.{os.getpid() % 250}"
        made = cls(f"rfq-machine-{tag}", f"rfqh{tag}", f"rfqn{tag}", f"{subnet}.1",
                   f"{subnet}.2")
        _ip("netns", "add", made.name)
        try:
            _ip("link", "add", made.host_if, "type", "veth", "peer", "name", made.ns_if)
            _ip("link", "set", made.ns_if, "netns", made.name)
            _ip("addr", "add", f"{made.host_ip}/24", "dev", made.host_if)
            _ip("link", "set", made.host_if, "up")
            _ip("addr", "add", f"{made.ns_ip}/24", "dev", made.ns_if, netns=made.name)
            _ip("link", "set", made.ns_if, "up", netns=made.name)
            _ip("link", "set", "lo", "up", netns=made.name)
        except BaseException:
            made.close()
            raise
        return made

    @property
    def prefix(self) -> tuple[str, ...]:
        """Run a command inside the namespace."""
        return ("ip", "netns", "exec", self.name)

    def cut(self) -> None:
        """The link goes down: packets either way are lost, nothing is sent to say so."""
        _ip("link", "set", self.host_if, "down")

    def restore(self) -> None:
        _ip("link", "set", self.host_if, "up")

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30,
                       check=False)
