"""tables/events.py: one event of ``<prefix>.deliveries`` applied to a key's record, as
the dispatcher and ``flare replay`` both do it."""

from __future__ import annotations

import orjson
import pytest

from tables.delivery import PendingChange
from tables.events import UnknownEvent, apply_event, offer_value, outcome_value
from tables.outcome import Outcome

OFFER = orjson.loads(offer_value("put", 3, {"version": 3}, 1))


def test_an_offer_on_nothing_waits_to_be_sent():
    state = apply_event(None, OFFER, 10.0, None, 0.5)
    assert state.pending.revision == 3 and state.received is None


def test_a_delivered_outcome_moves_the_record_once():
    waiting = apply_event(None, OFFER, 10.0, None, 0.5)
    outcome = orjson.loads(outcome_value(Outcome.DELIVERED, 200,
                                         PendingChange("put", 3, None, 1, waiting.pending.generation)))
    done = apply_event(waiting.to_record(), outcome, 11.0, None, 0.5)
    assert done.received == 3 and done.pending is None
    assert apply_event(done.to_record(), outcome, 12.0, None, 0.5) is None  # read again


@pytest.mark.parametrize("event", [{"type": "mark"}, {"type": "forget"}])
def test_retired_types_change_nothing(event):
    assert apply_event(None, event, 1.0, None, 0.5) is None


def test_an_unknown_type_is_said_so():
    with pytest.raises(UnknownEvent, match="'nope'"):
        apply_event(None, {"type": "nope"}, 1.0, None, 0.5)
