"""Kafka I/O throughput: rtm's route (jobs.kafka_io) against PyFlink's value-only KafkaSource.

Both jobs copy the same N events from one topic to another through one Python map at
parallelism 1, in the same run, against the same local broker. rtm's route also keys the
events by user in the JVM (Java deserializer, source watermarks, JVM keyBy, routing
serializer): the shape of the campaign job, one Python operator per event. Throughput excludes
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

from jobs import kafka_io
from jobs.kafka_io import KafkaIO
from rtm import flink_config, kafka_broker
from udfs.rows import EVENT, read_input, routed_out


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


def rtm_route(env, bootstrap, source, sink):
    kafka = KafkaIO(env, bootstrap, group_id="bench-rtm", bounded=True)
    read = kafka.read(kafka.kafka_source(source, EVENT), kafka_io.watermarks(5_000, 5_000), "events", "events")
    keyed = kafka_io.key_by_user(kafka_io.split_inputs(read, "split", "split").keyable)
    def copy(frame):
        record = read_input(frame)
        return routed_out("out", record.key, record.value)

    copied = keyed.map(copy, output_type=kafka_io.routed_type())
    kafka.sink(copied, {"out": sink}, "out", "out")
    kafka.execute("bench-rtm-route")


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
    for name, route in (("value-only KafkaSource", value_only_route), ("rtm route", rtm_route)):
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
    print(f"ratio rtm route / value-only: {results['rtm route'] / baseline:.2f}")
    print(f"(broker {bootstrap}, {args.events} events, mode {args.mode}, parallelism 1)")


if __name__ == "__main__":
    main()
