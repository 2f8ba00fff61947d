"""schemathesis against `/openapi.json` of a real `flare start` (issue 10): no 5xx.

Realistic data first, so that operations get past 404: a resource with documents and a
subscription, and a second resource that only ever gets subscriptions. Generated cases
are given those ids (and document URLs) half of the time. Two rules keep every request
Flare makes on this machine (SPEC §11a, and this workplace: loopback only):
- subscriptions that schemathesis creates go to the resource that never gets documents,
  so nothing is ever sent to a generated address;
- the one subscription that does get changes points at a receiver on 127.0.0.1.
The run is bounded: a few dozen examples per operation, no shrinking database.
"""

from __future__ import annotations

import random
import re

import orjson
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error

from api.openapi import DOCUMENT
from tests.flare_process import poll
from tests.integration.delivery_support import new_resource, put, subscribe
from tests.receiver import Receiver

pytestmark = pytest.mark.integration

EXAMPLES = 30
#: Which cases get real ids: seeded, so a run can be repeated.
RNG = random.Random(10)


@pytest.fixture(scope="module")
def receiver():
    r = Receiver().up()
    yield r
    r.down()


@pytest.fixture(scope="module")
def realistic(flare, receiver):
    """Ids and document URLs that exist, for the generated cases to use."""
    docs_rid, base = new_resource(flare)
    sub = subscribe(flare, docs_rid, f"{receiver.url}/feed/{{id}}")
    urls = [f"{base}/{n}" for n in range(3)]
    for url in urls:
        put(flare, url, 1)
    poll(lambda: all(flare.get(f"/documents/{u}").status_code == 200 for u in urls),
         timeout=30, message="documents stored")
    subs_rid, _ = new_resource(flare)  # never gets documents: generated subscriptions go here
    return {"docs_rid": docs_rid, "sid": sub["id"], "subs_rid": subs_rid, "urls": urls}


# The document the app serves, read at collection time (schemathesis' lazy fixture loader
# does not run under pytest 9); the first test checks `/openapi.json` serves exactly it.
schema = schemathesis.openapi.from_dict(orjson.loads(orjson.dumps(DOCUMENT)))
# Valid and invalid inputs alike: every malformed input must be a 4xx.
schema.config.generation.update(modes=["positive", "negative"], max_examples=EXAMPLES)


def test_the_served_document_is_the_one_tested(flare):
    assert flare.get("/openapi.json").json() == orjson.loads(orjson.dumps(DOCUMENT))


def _use_realistic(case, data: dict, rng: random.Random) -> None:
    params = case.path_parameters
    if params is None or rng.random() < 0.5:
        return
    path, method = case.operation.path, case.method.upper()
    if "url" in params:
        params["url"] = rng.choice(data["urls"])
        if method == "PUT" and rng.random() < 0.5:  # a body that has a revision
            extra = case.body if isinstance(case.body, dict) else {}
            case.body = {**extra, "version": rng.randint(-2**63, 2**63 - 1)}
    if "rid" in params:
        if path == "/resources/{rid}/subscriptions" and method == "POST":
            params["rid"] = data["subs_rid"]  # generated subscriptions never get changes
        elif method != "DELETE":
            params["rid"] = data["docs_rid"]
    if "sid" in params and method != "DELETE":
        params["sid"] = data["sid"]


class _RawDocumentPaths(requests.Session):
    """schemathesis joins the path with ``//`` collapsed; document URLs need theirs back
    (SPEC §8: the raw target after ``/documents/`` is the URL)."""

    def send(self, request, **kwargs):
        request.url = re.sub(r"/documents/(https?):/(?!/)", r"/documents/\1://", request.url, count=1)
        return super().send(request, **kwargs)


SESSION = _RawDocumentPaths()


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, realistic, flare):
    _use_realistic(case, realistic, RNG)
    response = case.call(base_url=flare.base_url, session=SESSION, timeout=30)
    case.validate_response(response, checks=[not_a_server_error])
