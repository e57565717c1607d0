"""Ed25519 signatures of plugin versions: the server signs, agents verify before installing.

A signature covers the plugin's name, its version number (which the server raises whenever
the file changes) and the sha256 of its source, so a tampered file, a signature moved to
another plugin, and an old version replayed under a new claim are all refused. The server's
private key lives in its data dir; an agent pins the public key when it enrolls.
"""

from __future__ import annotations

import base64
import binascii
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from octopus.errors import PluginError

_DOMAIN = b"octopus-plugin-v1"
"""Keeps these signatures from ever being valid for anything else the key might sign."""


def signed_bytes(name: str, version: int, sha256: str) -> bytes:
    """The exact bytes a plugin signature covers."""
    return b"\n".join([_DOMAIN, name.encode(), str(version).encode(), sha256.encode()])


@dataclass(frozen=True, slots=True)
class PluginSigner:
    """The server's signing key."""

    key: Ed25519PrivateKey

    @classmethod
    def load_or_create(cls, path: Path) -> PluginSigner:
        """Read the key at ``path``, or create it there (mode 0600) on first start."""
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise PluginError(f"{path} does not hold an Ed25519 private key")
            return cls(key)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
        os.replace(temp, path)
        return cls(key)

    @property
    def public_key(self) -> str:
        """The public key, raw 32 bytes in base64: what agents pin."""
        raw = self.key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return base64.b64encode(raw).decode()

    def sign(self, name: str, version: int, sha256: str) -> str:
        """The base64 signature of one plugin version."""
        return base64.b64encode(self.key.sign(signed_bytes(name, version, sha256))).decode()


def verify(public_key: str, name: str, version: int, sha256: str, signature: str | None) -> None:
    """Check one plugin version's signature against a pinned public key.

    Raises:
        PluginError: The version is unsigned, or the signature does not match.
    """
    if not signature:
        raise PluginError(f"plugin {name} version {version} is not signed; refused")
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key, validate=True))
        key.verify(base64.b64decode(signature, validate=True), signed_bytes(name, version, sha256))
    except (InvalidSignature, ValueError, binascii.Error):
        raise PluginError(
            f"plugin {name} version {version}: the signature does not match the server's key; "
            "refused"
        ) from None


def main(argv: list[str]) -> int:
    """``python -m octopus.plugins.signing KEY NAME VERSION SHA256 [SIGNATURE]``: exit 0 if
    the signature is good, else 1 with the reason on stderr.

    Agents verify in this short-lived process so that the crypto library (about 9 MB) never
    stays in the long-running agent: a download is rare, the agent runs for months.
    """
    try:
        key, name, version, sha256, *signature = argv
        verify(key, name, int(version), sha256, signature[0] if signature else None)
    except (PluginError, ValueError) as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
