"""Creating the topics (docs/CONTRACTS.md, "Topics") with the Kafka admin client."""

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from rtm import kafka_config, settings
from rtm.errors import RtmError


def ensure_topics(
    bootstrap: str, topics=settings.ALL_TOPICS, partitions: int = 1, compacted=settings.COMPACTED_TOPICS
) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    The `compacted` ones (the campaigns and profiles topics) keep the latest value per
    key, the current definition or profile, and a tombstone removes it.
    """
    admin = AdminClient(kafka_config.librdkafka({"bootstrap.servers": bootstrap}))
    try:
        existing = set(admin.list_topics(timeout=10).topics)
    except KafkaException as err:
        unreachable = err.args[0].str()
    else:
        unreachable = None
    if unreachable is not None:
        # Raised outside the except block and with `admin` deleted, so that neither the error
        # nor its context holds the client (an AdminClient has no close()): one left alive
        # keeps reconnecting, and logging, until the interpreter exits.
        try:
            admin.poll(0)  # a refused login raises here, saying so (kafka_config's error_cb)
        finally:
            del admin
        raise RtmError(f"cannot reach Kafka at {bootstrap}: {unreachable}; is the broker up "
                       "(`rtm kafka status`), and is --bootstrap right?")
    wanted = [
        NewTopic(
            name,
            num_partitions=partitions,
            replication_factor=1,
            config={"cleanup.policy": "compact"} if name in compacted else {},
        )
        for name in topics
        if name not in existing
    ]
    if not wanted:
        return []
    for name, future in admin.create_topics(wanted, operation_timeout=30).items():
        try:
            future.result()
        except KafkaException as err:
            if err.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise RtmError(f"creating topic {name} on {bootstrap} failed: {err}") from err
    return [topic.topic for topic in wanted]
