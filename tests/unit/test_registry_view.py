"""streams/registry_view.py: the indexes kept record by record (no broker needed)."""

from __future__ import annotations

import orjson

from app.config import Settings
from streams.registry_view import COMMAND_HEADER, RegistryView
from tables.subscriptions import Action, Content, Delivery, Endpoint, Subscription


def sub(sid: str, url: str, rid: str = "r1", actions: dict | None = None) -> Subscription:
    return Subscription(sid, rid, Endpoint(url, "POST", {}, actions or {}), Delivery([200], [500]),
                        Content(), None, None, 0)


def view_with(*subs: Subscription) -> RegistryView:
    view = RegistryView(Settings())
    for s in subs:
        write(view, s)
    return view


def write(view: RegistryView, s: Subscription) -> None:
    view._apply(view.subscriptions_topic, s.id.encode(), orjson.dumps(s.to_record()))


def test_subscriptions_by_resource_in_creation_order() -> None:
    view = view_with(sub("a", "http://c/1"), sub("b", "http://c/2", rid="r2"), sub("c", "http://c/3"))
    assert [s.id for s in view.subscriptions_of("r1")] == ["a", "c"]
    assert view.subscription_count("r2") == 1 and view.subscriptions_of("r9") == []


def test_url_index_follows_writes_and_deletes() -> None:
    d = {"delete": Action("http://c/d")}
    view = view_with(sub("a", "http://c/1", actions=d))
    assert set(view.subscription_urls("r1")) == {"http://c/1", "http://c/d"}
    view._apply(view.subscriptions_topic, b"a", None, [(COMMAND_HEADER, b"cmd-1")])
    assert view.subscription_urls("r1") == {} and view.subscriptions_of("r1") == []
    assert view.deleted_by("a") == "cmd-1" and view.deleted_by("b") is None


def test_rewritten_subscription_keeps_its_place_and_changes_its_urls() -> None:
    view = view_with(sub("a", "http://c/1"), sub("b", "http://c/2"))
    assert view.subscriptions_of("r1")[0].urls == ["http://c/1"]  # a cached list is dropped
    write(view, sub("a", "http://c/9"))
    assert [s.id for s in view.subscriptions_of("r1")] == ["a", "b"]
    assert view.subscriptions_of("r1")[0].urls == ["http://c/9"]
    assert set(view.subscription_urls("r1")) == {"http://c/9", "http://c/2"}


def test_unreadable_record_changes_nothing() -> None:
    view = view_with(sub("a", "http://c/1"))
    view._apply(view.subscriptions_topic, b"a", b"{not json")
    assert [s.id for s in view.subscriptions_of("r1")] == ["a"]
