"""The agent's plugin cache: verified installs, refusals, built-in copies, forgetting."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from octopus.agent.plugin_cache import PluginCache
from octopus.errors import PluginError
from octopus.plugins.loader import BUILTIN_DIR, sha256_of

SOURCE = b"def hello():\n    return 'hi'\n"
SHA = sha256_of(SOURCE)


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


def test_ensure_downloads_once_and_reuses(tmp_path: Path) -> None:
    cache = PluginCache(tmp_path)
    calls: list[str] = []

    async def fetch(name: str) -> bytes:
        calls.append(name)
        await asyncio.sleep(0)
        return SOURCE

    async def main() -> list[Path]:
        return await asyncio.gather(*(cache.ensure("greet", SHA, fetch) for _ in range(3)))

    paths = asyncio.run(main())
    assert set(paths) == {tmp_path / SHA / "greet.py"}
    assert calls == ["greet"]


def test_ensure_refuses_a_download_that_does_not_match(tmp_path: Path) -> None:
    async def fetch(name: str) -> bytes:
        return b"something else"

    with pytest.raises(PluginError, match="refused"):
        asyncio.run(PluginCache(tmp_path).ensure("greet", SHA, fetch))


def test_ensure_copies_a_matching_builtin_without_downloading(tmp_path: Path) -> None:
    source = (BUILTIN_DIR / "system.py").read_bytes()

    async def fetch(name: str) -> bytes:
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
