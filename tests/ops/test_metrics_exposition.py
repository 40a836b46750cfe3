"""/metrics: refused unless allowed; request latency by route, search latency by leg, sync runs, queue depth."""
import os

import pytest
import redis
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from kbsearch.index.registry import get_index_backend
from kbsearch.ops.index_timing import legs_timed
from kbsearch.ops.queues import QueueDepthCollector
from kbsearch.search.services import search_run

LEGS = ("encode", "bm25", "vector", "fusion", "recheck")


def scrape(**headers) -> dict[tuple[str, tuple], float]:
    """Every sample of a /metrics answer by (name, sorted labels), fetched as Prometheus would."""
    response = Client().get("/metrics", HTTP_HOST="10.1.2.3:8000", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def leg_counts(samples) -> dict[str, float]:
    return {leg: samples.get(("kbsearch_search_leg_duration_seconds_count", (("leg", leg),)), 0.0) for leg in LEGS}


@pytest.fixture
def metrics_allowed(settings):
    settings.KBSEARCH_METRICS_ALLOWED_ADDRESSES = ["127.0.0.0/8"]


def test_metrics_are_refused_by_default():
    response = Client().get("/metrics", HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 403
    assert b"kbsearch_" not in response.content


def test_metrics_by_listed_address_or_bearer_token_only(settings):
    settings.KBSEARCH_METRICS_ALLOWED_ADDRESSES = ["10.0.0.0/8"]
    settings.KBSEARCH_METRICS_TOKEN = "scrape-secret"
    assert Client().get("/metrics", REMOTE_ADDR="10.4.5.6").status_code == 200
    assert Client().get("/metrics", REMOTE_ADDR="192.168.1.1").status_code == 403
    assert Client().get("/metrics", REMOTE_ADDR="192.168.1.1", HTTP_AUTHORIZATION="Bearer scrape-secret").status_code == 200
    assert Client().get("/metrics", REMOTE_ADDR="192.168.1.1", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert Client().get("/metrics", REMOTE_ADDR="192.168.1.1", HTTP_AUTHORIZATION="scrape-secret").status_code == 403


def test_an_api_search_records_its_route_and_every_leg(clients, metrics_allowed):
    before = scrape()
    assert clients["alice"].get("/api/v1/search", {"q": "vpn home"}).status_code == 200
    after = scrape()
    assert {leg: after_count - leg_counts(before)[leg] for leg, after_count in leg_counts(after).items()} == {
        leg: 1.0 for leg in LEGS
    }
    route = ("kbsearch_http_request_duration_seconds_count", (("method", "GET"), ("route", "api:search"), ("status", "200")))
    assert after[route] - before.get(route, 0.0) == 1.0
    bucket = ("kbsearch_search_leg_duration_seconds_bucket", (("le", "+Inf"), ("leg", "vector")))
    assert after[bucket] == after[("kbsearch_search_leg_duration_seconds_count", (("leg", "vector"),))]
    # Routes by name: an id in the path is not a label.
    assert not any("/api/v1" in str(labels) for _, labels in after)


def test_a_keyword_only_search_records_no_encoding_or_vector_leg(users, kb, metrics_allowed):
    before = leg_counts(scrape())
    search_run(user=users["alice"], query="vpn", mode="bm25")
    after = leg_counts(scrape())
    assert {leg: after[leg] - before[leg] for leg in LEGS} == {
        "encode": 0.0, "bm25": 1.0, "vector": 0.0, "fusion": 0.0, "recheck": 1.0,
    }


def test_searches_share_one_timing_twin_and_read_the_model_metadata_only_when_they_encode(users, kb, monkeypatch):
    index = get_index_backend()
    assert legs_timed(index) is legs_timed(index)
    reads = []
    serving_metadata = type(index).serving_metadata
    monkeypatch.setattr(type(index), "serving_metadata", lambda self: reads.append(self) or serving_metadata(self))
    assert search_run(user=users["alice"], query="vpn", mode="bm25").results
    assert reads == []
    assert search_run(user=users["alice"], query="vpn", mode="hybrid").results
    assert len(reads) == 2  # the model to encode with, then whether a switch happened meanwhile


def test_sync_runs_are_counted_by_status(db, add_source, metrics_allowed):
    key = ("kbsearch_sync_runs_total", (("status", "succeeded"),))
    before = scrape().get(key, 0.0)
    add_source("extra", {"_access.yaml": "principals: [public]\n", "a.en.md": "# A\n\nText.\n"})
    assert scrape()[key] - before == 1.0


@pytest.fixture
def broker_url():
    url = os.environ.get("KBSEARCH_TEST_REDIS_URL")
    if not url:
        pytest.fail("KBSEARCH_TEST_REDIS_URL is unset: run the tests through scripts/with-test-services.sh")
    client = redis.Redis.from_url(url)
    keys = ["sync", "embed", "train", "sync\x06\x163", "embed\x06\x169"]
    client.delete(*keys)
    yield url
    client.delete(*keys)
    client.close()


def test_queue_depth_sums_every_priority_list_of_each_queue(broker_url, settings, metrics_allowed):
    client = redis.Redis.from_url(broker_url)
    client.rpush("sync", "t1", "t2")
    client.rpush("sync\x06\x163", "t3")
    client.rpush("embed\x06\x169", "t4")
    settings.CELERY_BROKER_URL = broker_url
    samples = scrape()
    assert samples[("kbsearch_celery_broker_up", ())] == 1.0
    assert {queue: samples[("kbsearch_celery_queue_length", (("queue", queue),))] for queue in ("sync", "embed", "train")} == {
        "sync": 3.0, "embed": 1.0, "train": 0.0,
    }


def test_a_broker_that_does_not_answer_is_reported_not_raised():
    collected = {metric.name: metric.samples for metric in QueueDepthCollector("redis://127.0.0.1:9/0").collect()}
    assert list(collected) == ["kbsearch_celery_broker_up"]
    assert [sample.value for sample in collected["kbsearch_celery_broker_up"]] == [0.0]


def test_without_a_broker_there_is_no_queue_metric(settings, metrics_allowed):
    settings.CELERY_BROKER_URL = ""
    assert not any(name.startswith("kbsearch_celery") for name, _ in scrape())
