"""Celery queue depth for Prometheus, read from the Redis broker at scrape time.

The Redis transport keeps a queue as a list named after it, plus one list per extra priority
level (``<queue>\\x06\\x16<priority>``); the depth is their sum. Read only when the broker is
Redis; a broker that does not answer within a second gives ``kbsearch_celery_broker_up 0``
instead of holding the scrape.
"""
import logging

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

QUEUES = ("sync", "embed", "train")
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)  # kombu's Redis transport default steps beyond 0


class QueueDepthCollector(Collector):
    def __init__(self, broker_url: str, queues: tuple[str, ...] = QUEUES) -> None:
        self.broker_url = broker_url
        self.queues = queues

    def collect(self):
        import redis

        up = GaugeMetricFamily("kbsearch_celery_broker_up", "Whether the Celery broker answered the scrape.")
        depth = GaugeMetricFamily("kbsearch_celery_queue_length", "Tasks waiting in a Celery queue.", labels=["queue"])
        try:
            client = redis.Redis.from_url(self.broker_url, socket_timeout=1, socket_connect_timeout=1)
            try:
                with client.pipeline(transaction=False) as pipe:
                    for queue in self.queues:
                        pipe.llen(queue)
                        for step in _PRIORITY_STEPS:
                            pipe.llen(f"{queue}{_PRIORITY_SEPARATOR}{step}")
                    lengths = pipe.execute()
            finally:
                client.close()
        except redis.RedisError as error:
            logger.warning("queue depth unavailable: %s", error)
            up.add_metric([], 0)
            yield up
            return
        per_queue = len(_PRIORITY_STEPS) + 1
        for position, queue in enumerate(self.queues):
            depth.add_metric([queue], sum(lengths[position * per_queue:(position + 1) * per_queue]))
        up.add_metric([], 1)
        yield up
        yield depth


def queue_collectors(broker_url: str) -> list[Collector]:
    """The queue collector when the broker is Redis; none otherwise (tasks run inline)."""
    if broker_url.startswith(("redis://", "rediss://", "unix://")):
        return [QueueDepthCollector(broker_url)]
    return []
