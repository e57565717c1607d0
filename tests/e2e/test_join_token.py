"""Join token rotation with real processes: the CLI rotates, a real agent enrolls with the new
token, one with the old token is refused, and a restart keeps the old one retired."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import ServerFactory
from tests.e2e.harness import AgentProcess, ServerProcess, run_cli


def _logs(process: ServerProcess) -> str:
    return process.stdout_path.read_text() + process.stderr_path.read_text()


def test_a_rotated_join_token_enrolls_and_the_old_one_stays_refused(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory.start()
    rotated = run_cli("join-token", "rotate", "--server", server.url, "--expires-in", "3600")
    assert rotated.returncode == 0, rotated.stderr
    token = rotated.stdout.strip().splitlines()[-1].strip()
    assert (server.data_dir / "join.token").read_text().strip() == token
    fresh = AgentProcess(server, "fresh-1", tmp_path, extra_env={"OCTOPUS_JOIN_TOKEN": token})
    stale = AgentProcess(server, "stale-1", tmp_path)  # the join token the server started with
    again = AgentProcess(server, "stale-2", tmp_path)
    later = AgentProcess(server, "fresh-2", tmp_path, extra_env={"OCTOPUS_JOIN_TOKEN": token})
    try:
        fresh.start()
        stale.spawn()
        assert stale.wait(timeout=30) != 0
        assert "refused the join token" in stale.tails()
        server.stop()  # a restart: OCTOPUS_JOIN_TOKEN still holds the retired token
        server.start()
        again.spawn()
        assert again.wait(timeout=30) != 0
        later.start()
    finally:
        for agent in (fresh, stale, again, later):
            agent.cleanup()
    assert token not in _logs(server)
    audit = run_cli("audit", "list", "--server", server.url, "--action", "join_token.rotated")
    assert audit.returncode == 0 and "join_token" in audit.stdout
    assert token not in audit.stdout
