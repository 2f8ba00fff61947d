"""The registry's pure decisions in one import: resources (SPEC §5) and subscriptions (§7).

The code lives in ``tables.resources`` and ``tables.subscriptions``; this module only
gathers their public names.
"""

from tables.resources import Resource, parse_resource_body, resource_conflict, rfc3339
from tables.subscriptions import (
    Action,
    Content,
    Delivery,
    Endpoint,
    Retry,
    Subscription,
    parse_subscription_body,
    subscription_conflict,
    url_index,
)

__all__ = [
    "Action",
    "Content",
    "Delivery",
    "Endpoint",
    "Resource",
    "Retry",
    "Subscription",
    "parse_resource_body",
    "parse_subscription_body",
    "resource_conflict",
    "rfc3339",
    "subscription_conflict",
    "url_index",
]
