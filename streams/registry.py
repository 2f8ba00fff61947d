"""Registry commands, serialised through one Kafka partition (DESIGN.md, State and keys).

The API validates a body (pure, tables/), then asks the registry agent to apply a command.
Exactly one process owns the one partition of ``<prefix>.registry.commands``, so commands
are decided one at a time against a caught-up view: two concurrent POSTs of one endpoint,
through one process or two, give exactly one 201.

For each command the agent:
  1. catches its view up with the end of the registry topics (whatever the last owner wrote);
  2. decides (exists? conflict? still has subscriptions?);
  3. writes the record or tombstone with acks=all and waits until its own view applied it;
  4. answers with the record and its offset, which the asking process waits for too
     (read-your-writes on that process).
Commands carry the new object's id and timestamp, so a command redelivered after a crash
finds its own record and answers the same success (idempotent).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import faust
import orjson
from aiokafka import AIOKafkaProducer

from app.config import Settings
from streams.registry_view import RegistryUnavailable, RegistryView
from tables.errors import FlareError
from tables.resources import Resource, resource_conflict
from tables.subscriptions import Subscription, subscription_conflict

log = logging.getLogger("flare.registry")

ASK_TIMEOUT = 30.0


def _error(status: int, title: str, detail: str) -> dict[str, Any]:
    return {"ok": False, "status": status, "title": title, "detail": detail}


@dataclass
class Registry:
    settings: Settings
    view: RegistryView
    producer: AIOKafkaProducer | None = None
    agent: Any = None

    # -- API side ------------------------------------------------------------------
    async def execute(self, command: dict[str, Any]) -> dict[str, Any]:
        """Ask the owning process to apply ``command``; wait for its record here; return it."""
        if self.producer is None or not self.view.caught_up.is_set():
            raise FlareError(503, "registry unavailable", "the stream processor is still starting")
        try:
            reply = await asyncio.wait_for(self.agent.ask(value=command), ASK_TIMEOUT)
        except asyncio.TimeoutError:
            raise FlareError(503, "registry unavailable", "no answer from the registry in time") from None
        if not reply.get("ok"):
            raise FlareError(reply["status"], reply["title"], reply["detail"])
        try:
            await self.view.wait_for(reply["topic"], reply["offset"])
        except RegistryUnavailable as exc:
            raise FlareError(503, "registry unavailable", str(exc)) from None
        return reply

    # -- agent side ----------------------------------------------------------------
    async def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        """Decide one command (steps 1-4 of the module docstring)."""
        # Step 1
        await self.view.catch_up()
        kind = command.get("kind")
        # Step 2 (and 3, 4 inside each)
        if kind == "create_resource":
            return await self._create_resource(Resource.from_record(command["resource"]))
        if kind == "delete_resource":
            return await self._delete_resource(command["id"])
        if kind == "create_subscription":
            return await self._create_subscription(Subscription.from_record(command["subscription"]))
        if kind == "delete_subscription":
            return await self._delete_subscription(command["resource_id"], command["id"])
        return _error(400, "invalid command", f"unknown registry command {kind!r}")

    async def _write(self, topic: str, key: str, record: dict | None) -> dict[str, Any]:
        # Step 3
        value = None if record is None else orjson.dumps(record)
        metadata = await self.producer.send_and_wait(topic, value, key=key.encode())
        await self.view.wait_for(topic, metadata.offset)
        # Step 4
        return {"ok": True, "topic": topic, "offset": metadata.offset, "record": record}

    async def _create_resource(self, resource: Resource) -> dict[str, Any]:
        if resource.id in self.view.resources:  # a redelivered command: same answer
            return {"ok": True, "topic": self.view.resources_topic, "offset": -1,
                    "record": self.view.resources[resource.id].to_record()}
        other = resource_conflict(resource.endpoint, self.view.resources.values())
        if other is not None:
            return _error(409, "error during resource create",
                          f"endpoint already associated to another resource '{other.id}'")
        return await self._write(self.view.resources_topic, resource.id, resource.to_record())

    async def _delete_resource(self, resource_id: str) -> dict[str, Any]:
        if resource_id not in self.view.resources:
            return _error(404, "error during resource delete", f"resource '{resource_id}' not found")
        if self.view.subscriptions_of(resource_id):
            return _error(409, "error during resource delete",
                          f"there are subscriptions associated with this resource '{resource_id}'")
        return await self._write(self.view.resources_topic, resource_id, None)

    async def _create_subscription(self, sub: Subscription) -> dict[str, Any]:
        if sub.id in self.view.subscriptions:
            return {"ok": True, "topic": self.view.subscriptions_topic, "offset": -1,
                    "record": self.view.subscriptions[sub.id].to_record()}
        if sub.resource_id not in self.view.resources:
            return _error(404, "error during resource search", f"resource '{sub.resource_id}' not found")
        clash = subscription_conflict(set(sub.urls), self.view.subscriptions_of(sub.resource_id))
        if clash is not None:
            other, url = clash
            return _error(409, "error during subscription create",
                          f"already exists a subscription '{other.id}' with the endpoint.URL '{url}'")
        return await self._write(self.view.subscriptions_topic, sub.id, sub.to_record())

    async def _delete_subscription(self, resource_id: str, sub_id: str) -> dict[str, Any]:
        sub = self.view.subscriptions.get(sub_id)
        if sub is None or sub.resource_id != resource_id:
            return _error(404, "error during subscription delete",
                          f"subscription '{sub_id}' at resource '{resource_id}', not found")
        return await self._write(self.view.subscriptions_topic, sub_id, None)


def register_registry_agent(app: faust.App, settings: Settings, registry: Registry) -> None:
    """Declare the command topic and the agent that answers ``Registry.execute``."""
    commands = app.topic(settings.topic("registry.commands"), value_serializer="json",
                         partitions=1)

    async def registry_agent(stream):
        async for command in stream:
            try:
                reply = await registry.handle(command)
            except RegistryUnavailable as exc:
                reply = _error(503, "registry unavailable", str(exc))
            except Exception as exc:  # never let one command kill the agent (STYLE.md §8)
                log.exception("registry command failed: %r", command.get("kind"))
                reply = _error(500, "internal error", f"registry command failed: {exc.__class__.__name__}")
            yield reply

    registry.agent = app.agent(commands, name="flare.registry")(registry_agent)
