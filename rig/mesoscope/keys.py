"""CURVE key pairs for remote mesoscope links: generation (`rig keys`), loading, endpoint policy.

The bridge is the CURVE server: it holds its own secret key and a directory of the public keys of the
rigs it trusts. The rig is a CURVE client: it holds its own key pair and the bridge's public key. Key
files are ZeroMQ certificate files (``NAME.key`` public, ``NAME.key_secret`` secret, mode 0600).
"""

from __future__ import annotations

import ipaddress
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import zmq
import zmq.auth


@dataclass(frozen=True)
class KeyPair:
    public: bytes
    secret: bytes


@dataclass(frozen=True)
class ClientKeys:
    """What the rig needs to connect to a CURVE bridge."""

    own: KeyPair
    server_public: bytes

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_secretkey = self.own.secret
        sock.curve_publickey = self.own.public
        sock.curve_serverkey = self.server_public


@dataclass(frozen=True)
class ServerKeys:
    """What the bridge needs: its own key pair and the directory of trusted client public keys."""

    own: KeyPair
    trusted_dir: Path

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_secretkey = self.own.secret
        sock.curve_publickey = self.own.public
        sock.curve_server = True


def generate_keypair(directory: str | Path, name: str) -> tuple[Path, Path]:
    """Write NAME.key and NAME.key_secret into directory; refuses to overwrite an existing pair."""
    if not zmq.has("curve"):
        raise RuntimeError("this libzmq was built without CURVE support; reinstall pyzmq from its wheels")
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"key name {name!r} must be a plain file name")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    for suffix in (".key", ".key_secret"):
        if (d / f"{name}{suffix}").exists():
            raise FileExistsError(f"{d / (name + suffix)} exists; keys are never overwritten")
    public_file, secret_file = zmq.auth.create_certificates(str(d), name)
    os.chmod(secret_file, stat.S_IRUSR | stat.S_IWUSR)
    return Path(public_file), Path(secret_file)


def load_keypair(secret_file: str | Path) -> KeyPair:
    """Load a key pair from a NAME.key_secret file (it holds both keys)."""
    path = Path(secret_file)
    if not path.is_file():
        raise FileNotFoundError(f"CURVE secret key file {path} not found; create it with `rig keys`")
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (ValueError, OSError) as e:
        raise ValueError(f"{path}: not a ZeroMQ certificate: {e}") from None
    if secret is None:
        raise ValueError(f"{path}: holds no secret key; pass the NAME.key_secret file")
    return KeyPair(public, secret)


def load_public(public_file: str | Path) -> bytes:
    path = Path(public_file)
    if not path.is_file():
        raise FileNotFoundError(f"CURVE public key file {path} not found")
    try:
        public, _ = zmq.auth.load_certificate(str(path))
    except (ValueError, OSError) as e:
        raise ValueError(f"{path}: not a ZeroMQ certificate: {e}") from None
    return public


def client_keys(secret_file: str | Path, server_public_file: str | Path) -> ClientKeys:
    return ClientKeys(load_keypair(secret_file), load_public(server_public_file))


def server_keys(secret_file: str | Path, trusted_dir: str | Path) -> ServerKeys:
    d = Path(trusted_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"trusted client key directory {d} not found")
    return ServerKeys(load_keypair(secret_file), d)


def is_loopback(endpoint: str) -> bool:
    """True for ipc://, inproc:// and tcp:// endpoints on 127.0.0.0/8, ::1 or localhost."""
    parts = urlsplit(endpoint)
    if parts.scheme in ("ipc", "inproc"):
        return True
    if parts.scheme != "tcp":
        raise ValueError(f"endpoint {endpoint!r}: expected tcp://HOST:PORT, ipc:// or inproc://")
    host = (parts.hostname or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name or an interface name such as "*": treat as remote


def require_keys_for(endpoint: str, keys: object | None) -> None:
    """Refuse a non-loopback endpoint without CURVE keys: remote peers must authenticate."""
    if keys is None and not is_loopback(endpoint):
        raise ValueError(
            f"endpoint {endpoint!r} is not loopback; remote mesoscope links need CURVE keys "
            "(generate them with `rig keys` and pass keys=...)"
        )
