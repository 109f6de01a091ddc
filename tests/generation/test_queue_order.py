"""A worker that serves several model types takes from all their queues, on the real Redis broker.

The network test caught it: with kombu's "priority" queue order a busy image queue kept
a multi-model worker from ever reading its video queue.
"""

import uuid

from kombu import Consumer, Producer
from kombu import Queue as KombuQueue

from app.celery_app import celery_app


def test_a_busy_queue_does_not_starve_the_next_one(redis_url):
    images, videos = (KombuQueue(f"test-order-{name}-{uuid.uuid4().hex[:8]}") for name in ("images", "videos"))
    received: list[str] = []
    with celery_app.connection_for_write() as conn:
        channel = conn.channel()
        try:
            producer = Producer(channel)
            for queue, count in ((images, 6), (videos, 3)):
                queue(channel).declare()
                for i in range(count):
                    producer.publish({"n": i}, routing_key=queue.name, serializer="json")

            def on_message(body, message):
                received.append(message.delivery_info["routing_key"])
                message.ack()

            with Consumer(channel, queues=[images, videos], callbacks=[on_message], prefetch_count=1):
                while len(received) < 6:
                    conn.drain_events(timeout=5)
        finally:
            for queue in (images, videos):
                queue(channel).delete()
            channel.close()
    first = received[:4]
    assert first.count(videos.name) >= 2, f"the second queue waited behind the first: {received}"
