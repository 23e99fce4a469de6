"""Per-session CURVE credentials for the control channel.

A runner makes a fresh server key pair and a fresh client key pair for each session and writes the client's
half (its key pair and the server's public key) to a 0600 file in the private lock directory
(rig.runner.lock). Whoever can read that file (the user who started the session, or root) can watch and
command the session; nobody else can even complete a handshake: the server accepts only the client key
it made (a ZAP handler checks it), on every socket, telemetry included.
"""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import zmq
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rig.errors import BadInput

Z85_KEY_CHARS = 40


class CredentialError(BadInput):
    """A credential file that cannot be used (missing, open to others, damaged)."""


class _KeyFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    server_public: str = Field(min_length=Z85_KEY_CHARS, max_length=Z85_KEY_CHARS)
    client_public: str = Field(min_length=Z85_KEY_CHARS, max_length=Z85_KEY_CHARS)
    client_secret: str = Field(min_length=Z85_KEY_CHARS, max_length=Z85_KEY_CHARS)


@dataclass(frozen=True)
class ClientCredential:
    """What a client needs: its key pair and the server's public key (Z85 bytes)."""

    server_public: bytes
    client_public: bytes
    client_secret: bytes

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_serverkey = self.server_public
        sock.curve_publickey = self.client_public
        sock.curve_secretkey = self.client_secret

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ClientCredential:
        p = Path(path)
        try:
            st = os.lstat(p)
        except OSError as e:
            raise CredentialError(f"{p}: cannot read the session credential: {e}") from None
        if not stat.S_ISREG(st.st_mode) or st.st_size > 4096:
            raise CredentialError(f"{p}: not a credential file")
        if sys.platform != "win32" and (st.st_mode & 0o077 or st.st_uid != os.geteuid()):
            raise CredentialError(f"{p}: the credential file must be yours and closed to others (0600)")
        try:
            keys = _KeyFile.model_validate_json(p.read_bytes())
        except (OSError, ValidationError) as e:
            raise CredentialError(f"{p}: damaged credential file: {type(e).__name__}") from None
        return cls(keys.server_public.encode(), keys.client_public.encode(), keys.client_secret.encode())


@dataclass(frozen=True)
class SessionKeys:
    """Both key pairs of one session; the server keeps the secret ones in memory only."""

    server_public: bytes
    server_secret: bytes
    client: ClientCredential

    @classmethod
    def generate(cls) -> SessionKeys:
        if not zmq.has("curve"):
            raise CredentialError("this libzmq has no CURVE support; reinstall pyzmq (its wheels include it)")
        spub, ssec = zmq.curve_keypair()
        cpub, csec = zmq.curve_keypair()
        return cls(spub, ssec, ClientCredential(spub, cpub, csec))

    def apply_server(self, sock: zmq.Socket) -> None:
        sock.curve_server = True
        sock.curve_publickey = self.server_public
        sock.curve_secretkey = self.server_secret
        sock.zap_domain = b"corridor-rig"

    def write_client(self, path: Path) -> Path:
        """The client's half, to a new 0600 file (atomically: a reader sees all of it or nothing)."""
        doc = _KeyFile(server_public=self.client.server_public.decode(),
                       client_public=self.client.client_public.decode(),
                       client_secret=self.client.client_secret.decode()).model_dump_json()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(doc)
        os.replace(tmp, path)
        return path
