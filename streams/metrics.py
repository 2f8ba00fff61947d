"""What the stream side counts as it goes, for ``/metrics`` (SPEC §11; api/metrics.py).

Only what cannot be read from the runtime at scrape time lives here: changes rejected by
reason class and delivery attempts by outcome, with their latency. Each is one call from
the stage (a counter increment). Table sizes, pending and dead deliveries and consumer lag
are read from the stages when Prometheus asks (api/metrics.py).

The metrics belong to no registry of their own: each API app registers them in its own
:class:`~prometheus_client.CollectorRegistry` beside the collector over its runtime.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram

CHANGES_REJECTED = Counter(
    "flare_changes_rejected", "Changes read from the documents topic and parked on the"
    " rejected topic, by reason class.", ["reason"], registry=None)
DELIVERIES = Counter(
    "flare_deliveries", "Delivery attempts by outcome: delivered (a success status),"
    " discarded (a discard status) or retry (any other status, a timeout or a transport"
    " error).", ["outcome"], registry=None)
DELIVERY_LATENCY = Histogram(
    "flare_delivery_latency_seconds", "From the change's acceptance (its updatedAt, whole"
    " seconds) to the subscriber's success or discard answer.",
    buckets=(0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30, 60, 300, 1800, 3600, 6 * 3600, 24 * 3600),
    registry=None)

#: Reason prefixes of tables.documents.parse_message → the class shown in the label.
REASON_CLASSES = (
    ("empty value", "tombstone"),
    ("value is not JSON", "not_json"),
    ("value is not a JSON object", "not_object"),
    ("unknown action", "unknown_action"),
    ("missing 'id'", "missing_id"),
    ("missing key", "missing_key"),
    ("key ", "key_mismatch"),
    ("missing 'document'", "missing_document"),
    ("invalid id", "invalid_id"),
    ("error during resource search", "no_resource"),
    ("invalid body", "invalid_revision"),
    ("internal error", "internal"),
)


def reason_class(reason: str) -> str:
    """A few stable label values for the many reasons a change is rejected."""
    for prefix, name in REASON_CLASSES:
        if reason.startswith(prefix):
            return name
    return "other"


_REJECTED = {name: CHANGES_REJECTED.labels(name) for _, name in REASON_CLASSES}
_REJECTED["other"] = CHANGES_REJECTED.labels("other")
_OUTCOMES = {name: DELIVERIES.labels(name) for name in ("delivered", "discarded", "retry")}


def change_rejected(reason: str) -> None:
    _REJECTED[reason_class(reason)].inc()


def delivery_attempted(outcome: str, accepted_at: float, now: float | None = None) -> None:
    """One attempt's outcome (``Outcome.value``); a success or discard also records the
    latency from ``accepted_at`` (Unix seconds)."""
    _OUTCOMES[outcome].inc()
    if outcome != "retry":
        DELIVERY_LATENCY.observe(max(0.0, (time.time() if now is None else now) - accepted_at))
