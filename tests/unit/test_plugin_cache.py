"""The agent's plugin cache: verified installs, refusals, built-in copies, forgetting."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from octopus.agent.plugin_cache import PluginCache, PluginDownload
from octopus.errors import PluginError
from octopus.plugins.loader import BUILTIN_DIR, sha256_of
from octopus.plugins.signing import PluginSigner

SOURCE = b"def hello():\n    return 'hi'\n"
SHA = sha256_of(SOURCE)


@pytest.fixture
def signer(tmp_path: Path) -> PluginSigner:
    return PluginSigner.load_or_create(tmp_path / "server" / "plugin-signing.key")


def signed(
    signer: PluginSigner, data: bytes, version: int = 1, name: str = "greet"
) -> PluginDownload:
    return PluginDownload(data, version, signer.sign(name, version, sha256_of(data)))


def pinned(root: Path, signer: PluginSigner) -> PluginCache:
    cache = PluginCache(root)
    cache.pin(signer.public_key)
    return cache


def test_install_verifies_and_places_the_file(tmp_path: Path) -> None:
    cache = PluginCache(tmp_path)
    path = cache.install("greet", SHA, SOURCE)
    assert path == tmp_path / SHA / "greet.py"
    assert path.read_bytes() == SOURCE
    assert cache.get("greet", SHA) == path
    assert cache.versions() == {"greet": SHA}
    assert [p.name for p in path.parent.iterdir()] == ["greet.py"]  # no temp file left


def test_install_refuses_a_bad_hash_and_writes_nothing(tmp_path: Path) -> None:
    cache = PluginCache(tmp_path)
    with pytest.raises(PluginError, match="expected"):
        cache.install("greet", SHA, SOURCE + b"# tampered\n")
    assert cache.get("greet", SHA) is None
    assert cache.versions() == {}


@pytest.mark.parametrize(("name", "sha"), [("../x", SHA), ("_p", SHA), ("ok", "../" + SHA[3:])])
def test_malformed_names_and_hashes_are_refused(tmp_path: Path, name: str, sha: str) -> None:
    with pytest.raises(PluginError):
        PluginCache(tmp_path).path_for(name, sha)


def test_ensure_downloads_once_and_reuses(tmp_path: Path, signer: PluginSigner) -> None:
    cache = pinned(tmp_path / "cache", signer)
    calls: list[str] = []

    async def fetch(name: str) -> PluginDownload:
        calls.append(name)
        await asyncio.sleep(0)
        return signed(signer, SOURCE)

    async def main() -> list[Path]:
        return await asyncio.gather(*(cache.ensure("greet", SHA, fetch) for _ in range(3)))

    paths = asyncio.run(main())
    assert set(paths) == {tmp_path / "cache" / SHA / "greet.py"}
    assert calls == ["greet"]


def test_ensure_refuses_a_download_that_does_not_match(
    tmp_path: Path, signer: PluginSigner
) -> None:
    async def fetch(name: str) -> PluginDownload:
        return signed(signer, b"something else")

    with pytest.raises(PluginError, match="refused"):
        asyncio.run(pinned(tmp_path / "cache", signer).ensure("greet", SHA, fetch))


def test_ensure_copies_a_matching_builtin_without_downloading(tmp_path: Path) -> None:
    source = (BUILTIN_DIR / "system.py").read_bytes()

    async def fetch(name: str) -> PluginDownload:
        raise AssertionError("should not download")

    path = asyncio.run(PluginCache(tmp_path).ensure("system", sha256_of(source), fetch))
    assert path.read_bytes() == source


def test_forget_drops_versions_the_server_no_longer_lists(tmp_path: Path) -> None:
    cache = PluginCache(tmp_path)
    old = b"def a():\n    pass\n"
    in_use = b"def b():\n    pass\n"
    cache.install("greet", SHA, SOURCE)
    cache.install("greet", sha256_of(old), old)
    cache.install("busy", sha256_of(in_use), in_use)
    (tmp_path / "not-a-hash").mkdir()
    removed = cache.forget({"greet": SHA}, keep={sha256_of(in_use)})
    assert removed == [sha256_of(old)]
    assert cache.versions() == {"busy": sha256_of(in_use), "greet": SHA}
    assert (tmp_path / "not-a-hash").is_dir()
    assert set(cache.forget({})) == {sha256_of(in_use), SHA}
    assert cache.versions() == {}


def test_installed_files_are_private(tmp_path: Path) -> None:
    path = PluginCache(tmp_path).install("greet", SHA, SOURCE)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


CANARY_SOURCE = b"""
import pathlib
pathlib.Path(__file__).with_name("CANARY").write_text("imported")
def hello():
    return "pwned"
"""


def refused(cache: PluginCache, download: PluginDownload, sha: str = "") -> str:
    """Try to install ``download`` as plugin greet; the refusal's message."""

    async def fetch(name: str) -> PluginDownload:
        return download

    with pytest.raises(PluginError) as caught:
        asyncio.run(cache.ensure("greet", sha or sha256_of(download.data), fetch))
    return str(caught.value)


def nothing_installed(root: Path) -> bool:
    return not list(root.rglob("*.py")) and not list(root.rglob("CANARY"))


def test_a_signed_download_is_installed_and_its_version_remembered(
    tmp_path: Path, signer: PluginSigner
) -> None:
    cache = pinned(tmp_path / "cache", signer)

    async def fetch(name: str) -> PluginDownload:
        return signed(signer, SOURCE, version=5)

    path = asyncio.run(cache.ensure("greet", SHA, fetch))
    assert path.read_bytes() == SOURCE
    assert path.with_suffix(".version").read_text() == "5"


def test_a_tampered_plugin_is_refused_before_anything_is_written(
    tmp_path: Path, signer: PluginSigner
) -> None:
    cache = pinned(tmp_path / "cache", signer)
    good = signed(signer, SOURCE)
    # The attacker swaps the file and claims its hash, but cannot sign it.
    tampered = PluginDownload(CANARY_SOURCE, good.version, good.signature)
    assert "signature does not match" in refused(cache, tampered)
    assert nothing_installed(tmp_path / "cache")


def test_an_unsigned_plugin_is_refused(tmp_path: Path, signer: PluginSigner) -> None:
    cache = pinned(tmp_path / "cache", signer)
    assert "not signed" in refused(cache, PluginDownload(CANARY_SOURCE, 1, None))
    assert nothing_installed(tmp_path / "cache")


def test_a_plugin_signed_by_another_key_is_refused(tmp_path: Path, signer: PluginSigner) -> None:
    other = PluginSigner.load_or_create(tmp_path / "other.key")
    cache = pinned(tmp_path / "cache", signer)
    assert "signature does not match" in refused(cache, signed(other, CANARY_SOURCE))
    assert nothing_installed(tmp_path / "cache")


def test_a_signature_of_another_version_number_is_refused(
    tmp_path: Path, signer: PluginSigner
) -> None:
    cache = pinned(tmp_path / "cache", signer)
    real = signed(signer, CANARY_SOURCE, version=3)
    assert "signature" in refused(cache, PluginDownload(real.data, 9, real.signature))
    assert nothing_installed(tmp_path / "cache")


def test_an_older_version_than_the_one_held_is_refused(
    tmp_path: Path, signer: PluginSigner
) -> None:
    cache = pinned(tmp_path / "cache", signer)
    newer = b"def hello():\n    return 'v2'\n"

    async def fetch_newer(name: str) -> PluginDownload:
        return signed(signer, newer, version=2)

    asyncio.run(cache.ensure("greet", sha256_of(newer), fetch_newer))
    # A validly signed but older version, replayed: refused, and nothing of it is written.
    message = refused(cache, signed(signer, CANARY_SOURCE, version=1))
    assert "older than version 2" in message
    assert not list((tmp_path / "cache").rglob("CANARY"))
    assert cache.get("greet", sha256_of(CANARY_SOURCE)) is None


def test_an_agent_without_a_pinned_key_refuses_downloads(
    tmp_path: Path, signer: PluginSigner
) -> None:
    message = refused(PluginCache(tmp_path / "cache"), signed(signer, SOURCE))
    assert "no server key pinned" in message


def test_the_signing_key_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "k" / "plugin-signing.key"
    first = PluginSigner.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert PluginSigner.load_or_create(path).public_key == first.public_key


def test_a_version_in_use_is_not_served_from_memory_once_a_newer_one_is_accepted(
    tmp_path: Path, signer: PluginSigner
) -> None:
    cache = pinned(tmp_path / "cache", signer)
    newer = b"def hello():\n    return 'v2'\n"

    async def fetch(name: str) -> PluginDownload:
        return signed(signer, SOURCE, version=1)

    async def fetch_newer(name: str) -> PluginDownload:
        return signed(signer, newer, version=2)

    asyncio.run(cache.ensure("greet", SHA, fetch))
    asyncio.run(cache.ensure("greet", sha256_of(newer), fetch_newer))
    assert cache.ready("greet", SHA) is None
    # Version 1 is still on disk, but below the new floor: asked again, it is fetched anew
    # (the server now signs version 2 for that name) and refused, not handed out remembered.
    with pytest.raises(PluginError, match="older than version 2"):
        asyncio.run(cache.ensure("greet", SHA, fetch))


def test_a_forgotten_version_is_fetched_again_not_served_from_memory_or_ready(
    tmp_path: Path, signer: PluginSigner
) -> None:
    cache = pinned(tmp_path / "cache", signer)
    calls: list[str] = []

    async def fetch(name: str) -> PluginDownload:
        calls.append(name)
        return signed(signer, SOURCE, version=1)

    assert cache.ready("greet", SHA) is None
    first = asyncio.run(cache.ensure("greet", SHA, fetch))
    assert cache.ready("greet", SHA) == first
    assert asyncio.run(cache.ensure("greet", SHA, fetch)) == first
    assert calls == ["greet"]
    cache.forget({"greet": "0" * 64})
    assert not first.exists()
    assert cache.ready("greet", SHA) is None
    assert asyncio.run(cache.ensure("greet", SHA, fetch)).read_bytes() == SOURCE
    assert calls == ["greet", "greet"]
