"""Mosquitto configuration for the dealer protocol: config, password file and ACL file.

``rfq broker-config --config rfq.toml --out DIR`` calls ``write_broker_files``. The
templates are package data (``templates/``; deploy/mosquitto/ holds the same files for
operators to read). What the generated broker enforces:

- a password for everybody (no anonymous access); passwords are hashed by the
  ``mosquitto_passwd`` tool of the installed Mosquitto (``-U`` on a file written with
  mode 0600, so no password ever appears on a command line);
- the ACL of docs/dealer-protocol.md: dealer ``X`` reads only ``{prefix}/dealers/X/rfq``
  and ``.../X/award`` and writes only ``.../X/quote``, ``.../X/execution`` and
  ``.../X/status``; the engine reads and writes everything under the prefix;
- ``use_username_as_clientid``: nobody can take over another client's session;
- ``set_tcp_nodelay true``;
- persistence as a snapshot every ``autosave_s`` seconds (default 60) and on a clean
  shutdown, not on every change: Mosquitto rewrites and fsyncs its whole store on its only
  thread at each save, and saving on every change held every message behind the disk
  (issue 14: 7-9x the raw round trip, publishes timing out at 64 RFQs in flight).
  ``autosave_s=None`` restores saving on every change (``autosave_on_changes true``,
  ``autosave_interval 1``) for an operator who wants it at that price;
- ``max_inflight_messages`` (QoS 1 messages in flight to one client) 1000, so 64 RFQs to
  10 dealers (640 quotes) are not held back at the broker; the clients allow as many
  (``MqttBrokerConfig.max_inflight``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from dealer_adapters.mqtt.config import DEFAULT_ENGINE_USER, MqttBrokerConfig, check_name
from rfq_engine.domain.errors import SetupError

__all__ = [
    "DEFAULT_AUTOSAVE_S",
    "TEMPLATES",
    "BrokerConfigError",
    "BrokerFiles",
    "BrokerTls",
    "find_tool",
    "render_acl",
    "render_config",
    "template_text",
    "write_broker_files",
]

TEMPLATES = ("mosquitto.conf.tmpl", "acl.tmpl", "acl-dealer.tmpl")
DEFAULT_AUTOSAVE_S = 60
"""Seconds between two snapshots of the broker's store (and one on a clean shutdown)."""
DEFAULT_BROKER_INFLIGHT = 1000
INSTALL_HINT = (
    "install Mosquitto: `sudo apt-get install mosquitto` (Debian/Ubuntu), "
    "`sudo dnf install mosquitto` (Fedora), `brew install mosquitto` (macOS)"
)


class BrokerConfigError(SetupError):
    """The broker files cannot be written (a missing tool, password or directory)."""


@dataclass(frozen=True, slots=True)
class BrokerTls:
    """The broker's own TLS certificate (the listener then speaks MQTT over TLS)."""

    certfile: Path
    keyfile: Path
    cafile: Path | None = None


@dataclass(frozen=True, slots=True)
class BrokerFiles:
    directory: Path
    config: Path
    password_file: Path
    acl_file: Path
    persistence_dir: Path


def template_text(name: str) -> str:
    return resources.files("dealer_tools").joinpath("templates", name).read_text(encoding="utf-8")


def find_tool(name: str) -> str | None:
    """A Mosquitto executable on PATH or in the usual sbin directories (Debian installs the
    broker in /usr/sbin, which a non-root PATH often lacks)."""
    extra = os.pathsep.join(("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin"))
    return shutil.which(name, path=os.pathsep.join(filter(None, (os.environ.get("PATH"), extra))))


def render_acl(prefix: str, engine_user: str, dealers: list[str]) -> str:
    dealer = Template(template_text("acl-dealer.tmpl"))
    blocks = "".join(dealer.substitute(prefix=prefix, dealer=check_name(d, "dealer id")) for d in dealers)
    return Template(template_text("acl.tmpl")).substitute(
        prefix=prefix, engine_user=check_name(engine_user, "user"), dealers=blocks
    )


def render_config(
    *,
    port: int,
    bind: str | None,
    password_file: Path,
    acl_file: Path,
    persistence_dir: Path,
    max_packet_size: int,
    log_file: Path | None = None,
    run_as: str | None = None,
    tls: BrokerTls | None = None,
    source: str = "rfq.toml",
    autosave_s: int | None = DEFAULT_AUTOSAVE_S,
    max_inflight: int = DEFAULT_BROKER_INFLIGHT,
) -> str:
    """The ``mosquitto.conf`` text. Paths should be absolute (Mosquitto resolves relative
    ones against its working directory). ``autosave_s``: seconds between snapshots of the
    store; None saves on every change (see the module doc for the cost)."""
    if autosave_s is None:
        autosave = "after every change"
        autosave_lines = "autosave_on_changes true\nautosave_interval 1"
    elif autosave_s >= 1:
        autosave = f"every {autosave_s} s"
        autosave_lines = f"autosave_on_changes false\nautosave_interval {autosave_s}"
    else:
        raise ValueError(f"autosave_s must be at least 1 second (or None: on every change), got {autosave_s}")
    if max_inflight < 1:
        raise ValueError(f"max_inflight must be at least 1, got {max_inflight}")
    tls_lines = ""
    if tls is not None:
        tls_lines = f"certfile {tls.certfile}\nkeyfile {tls.keyfile}\n"
        if tls.cafile is not None:
            tls_lines += f"cafile {tls.cafile}\n"
    user = ""
    if run_as is not None:
        user = (f"# Started as root, Mosquitto switches to this user (it must read the files above).\n"
                f"user {run_as}\n")
    return Template(template_text("mosquitto.conf.tmpl")).substitute(
        source=source,
        port=port,
        bind="" if bind is None else f" {bind}",
        tls=tls_lines,
        password_file=password_file,
        acl_file=acl_file,
        persistence_dir=persistence_dir,
        max_packet_size=max_packet_size,
        autosave=autosave,
        autosave_lines=autosave_lines,
        max_inflight=max_inflight,
        log_dest="stderr" if log_file is None else f"file {log_file}",
        user=user,
    )


def _hash_passwords(path: Path, users: Mapping[str, str], tool: str) -> None:
    for name, password in users.items():
        if not password or "\n" in password:
            raise BrokerConfigError(f"the password of {name!r} must be one non-empty line")
    text = "".join(f"{name}:{password}\n" for name, password in users.items())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
    done = subprocess.run([tool, "-U", str(path)], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        path.unlink(missing_ok=True)
        raise BrokerConfigError(f"{tool} -U failed: {(done.stderr or done.stdout).strip()}")


def write_broker_files(
    out_dir: Path,
    *,
    broker: MqttBrokerConfig,
    engine_password: str,
    dealer_passwords: Mapping[str, str],
    bind: str | None = None,
    run_as: str | None = None,
    tls: BrokerTls | None = None,
    log_file: Path | None = None,
    source: str = "rfq.toml",
    mosquitto_passwd: str | None = None,
    autosave_s: int | None = DEFAULT_AUTOSAVE_S,
) -> BrokerFiles:
    """Write ``mosquitto.conf``, ``passwd`` (hashed) and ``acl`` into ``out_dir``.

    ``dealer_passwords`` maps each MQTT dealer id to its broker password. The
    persistence directory ``out_dir/data`` is created. Raises ``BrokerConfigError``.
    """
    tool = mosquitto_passwd or find_tool("mosquitto_passwd")
    if tool is None:
        raise BrokerConfigError(f"mosquitto_passwd was not found; {INSTALL_HINT}")
    directory = out_dir.resolve()
    engine_user = broker.username or DEFAULT_ENGINE_USER
    if engine_user in dealer_passwords:
        raise BrokerConfigError(f"the engine's user name {engine_user!r} is also a dealer id")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        persistence = directory / "data"
        persistence.mkdir(exist_ok=True)
        files = BrokerFiles(directory, directory / "mosquitto.conf", directory / "passwd", directory / "acl",
                            persistence)
        _hash_passwords(files.password_file, {engine_user: engine_password, **dealer_passwords}, tool)
        files.acl_file.write_text(render_acl(broker.prefix, engine_user, list(dealer_passwords)),
                                  encoding="utf-8")
        files.config.write_text(
            render_config(port=broker.port, bind=bind, password_file=files.password_file,
                          acl_file=files.acl_file, persistence_dir=persistence,
                          max_packet_size=broker.max_message_bytes + 1024, log_file=log_file,
                          run_as=run_as, tls=tls, source=source, autosave_s=autosave_s,
                          max_inflight=broker.max_inflight),
            encoding="utf-8",
        )
    except OSError as exc:
        raise BrokerConfigError(f"cannot write the broker files in {directory}: {exc}") from None
    return files
