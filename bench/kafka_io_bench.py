"""Kafka I/O throughput: rtm's Table-API route against PyFlink's value-only KafkaSource.

Both jobs copy the same N events from one topic to another through one Python map at
parallelism 1, in the same run, against the same local broker. Throughput excludes
start-up: the output topic stamps each record at append time (LogAppendTime), and the
rate is N over the span from the first to the last append.

    .venv/bin/python bench/kafka_io_bench.py [--events 200000] [--mode thread|process]
"""

import argparse
import json
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from pyflink.common import Types, WatermarkStrategy
from pyflink.common.serialization import SimpleStringSchema
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.connectors.kafka import (
    KafkaOffsetsInitializer,
    KafkaRecordSerializationSchema,
    KafkaSink,
    KafkaSource,
)

from jobs.kafka_io import RECORD_OUT, KafkaIO, record_out
from rtm import flink_config, kafka_broker


def create_topic(bootstrap, name, append_time=False):
    config = {"retention.ms": "-1"}
    if append_time:
        config["message.timestamp.type"] = "LogAppendTime"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, 1, 1, config=config)]).values():
        future.result()


def produce_events(bootstrap, topic, count):
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1 << 20})
    for i in range(count):
        user = f"u{i % 5000}"
        event = {"event_id": f"e{i}", "type": "page_view", "ts": 1_790_000_000_000 + i, "user_id": user,
                 "params": {"page": f"/p/{i % 50}"}}
        producer.produce(topic, key=user.encode(), value=json.dumps(event).encode())
        if i % 10000 == 0:
            producer.poll(0)
    producer.flush()


def append_span_s(bootstrap, topic, count):
    """Seconds between the first and the last append of `count` records on `topic`."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    first = last = None
    seen = 0
    while seen < count:
        batch = consumer.consume(10000, timeout=10)
        if not batch:
            raise RuntimeError(f"{topic} has only {seen} of {count} records")
        first = first or batch[0].timestamp()[1]
        last = batch[-1].timestamp()[1]
        seen += len(batch)
    consumer.close()
    return (last - first) / 1000


def table_route(env, bootstrap, source, sink):
    kafka = KafkaIO(env, bootstrap, group_id="bench-table", bounded=True)
    kafka.sink(sink, kafka.source(source).map(lambda r: record_out(r.key, r.value), output_type=RECORD_OUT))
    kafka.execute("bench-table-route")


def value_only_route(env, bootstrap, source, sink):
    kafka_source = (
        KafkaSource.builder()
        .set_bootstrap_servers(bootstrap)
        .set_topics(source)
        .set_group_id("bench-value-only")
        .set_starting_offsets(KafkaOffsetsInitializer.earliest())
        .set_bounded(KafkaOffsetsInitializer.latest())
        .set_value_only_deserializer(SimpleStringSchema())
        .build()
    )
    kafka_sink = (
        KafkaSink.builder()
        .set_bootstrap_servers(bootstrap)
        .set_record_serializer(
            KafkaRecordSerializationSchema.builder()
            .set_topic(sink)
            .set_value_serialization_schema(SimpleStringSchema())
            .build()
        )
        .build()
    )
    stream = env.from_source(kafka_source, WatermarkStrategy.no_watermarks(), "value-only source")
    stream.map(lambda value: value, output_type=Types.STRING()).sink_to(kafka_sink)
    env.execute("bench-value-only-route")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--mode", choices=["thread", "process"], default="thread")
    args = parser.parse_args()

    broker = kafka_broker.start()
    bootstrap = broker.bootstrap
    run_id = int(time.time())
    source = f"bench-io-{run_id}-in"
    create_topic(bootstrap, source)
    produce_events(bootstrap, source, args.events)

    results = {}
    for name, route in (("value-only KafkaSource", value_only_route), ("rtm Table route", table_route)):
        sink = f"bench-io-{run_id}-{route.__name__}"
        create_topic(bootstrap, sink, append_time=True)
        env = StreamExecutionEnvironment.get_execution_environment(
            flink_config.local_configuration({"python.execution-mode": args.mode, "parallelism.default": "1"})
        )
        started = time.monotonic()
        route(env, bootstrap, source, sink)
        wall = time.monotonic() - started
        span = append_span_s(bootstrap, sink, args.events)
        results[name] = args.events / span
        print(f"{name:24} {args.events / span:>9,.0f} events/s  (wall {wall:.1f} s incl. start-up)")
    baseline = results["value-only KafkaSource"]
    print(f"ratio Table route / value-only: {results['rtm Table route'] / baseline:.2f}")
    print(f"(broker {bootstrap}, {args.events} events, mode {args.mode}, parallelism 1)")


if __name__ == "__main__":
    main()
