"""Live output: new output of running executions, sent to the server while they run."""

from __future__ import annotations

import asyncio
import logging

from octopus.agent.client import AgentClient
from octopus.errors import OctopusError
from octopus.schemas.agents import MAX_OUTPUT_CHUNK, OutputChunk

logger = logging.getLogger(__name__)


class OutputStreamer:
    """Best-effort delivery of live output, one sender per execution, in order.

    Nothing here may slow an execution down or be retried for long: the final report carries
    the whole bounded log, so a chunk the server refuses (the execution already reported, its
    lease lost) or cannot take (server away) is dropped.
    """

    def __init__(self, client: AgentClient) -> None:
        self._client = client
        self._pending: dict[int, list[str]] = {}
        self._senders: dict[int, asyncio.Task[None]] = {}

    def add(self, execution_id: int, text: str) -> None:
        """Queue ``text`` for ``execution_id`` and make sure a sender is on it."""
        self._pending.setdefault(execution_id, []).append(text)
        if execution_id not in self._senders:
            self._senders[execution_id] = asyncio.create_task(self._send(execution_id))

    def forget(self, execution_id: int) -> None:
        """The execution ended: drop what is not sent yet (the report has it all)."""
        self._pending.pop(execution_id, None)

    async def close(self) -> None:
        """Stop every sender."""
        for sender in self._senders.values():
            sender.cancel()
        await asyncio.gather(*self._senders.values(), return_exceptions=True)

    async def _send(self, execution_id: int) -> None:
        try:
            while chunks := self._pending.pop(execution_id, None):
                text = "".join(chunks)
                for start in range(0, len(text), MAX_OUTPUT_CHUNK):
                    chunk = OutputChunk(text=text[start : start + MAX_OUTPUT_CHUNK])
                    await self._client.send_output(execution_id, chunk)
        except OctopusError as exc:
            self._pending.pop(execution_id, None)
            logger.debug("Live output dropped: %s", exc, extra={"execution": execution_id})
        finally:
            del self._senders[execution_id]
