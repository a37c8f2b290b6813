package io.rtm.flink;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/** Kafka records of one kind (event, profile, campaign) as Inputs.READ rows, with key, tombstones and offsets. */
public final class KafkaInputs implements KafkaRecordDeserializationSchema<Row> {
    private static final long serialVersionUID = 1L;
    private final String kind;
    private final boolean wallClock;
    private final boolean events;
    private final long maxFutureMs;

    /** {@code maxFutureMs}: how far an event's ts may be ahead of its record's Kafka timestamp (events only). */
    public KafkaInputs(String kind, boolean wallClock, long maxFutureMs) {
        this.kind = kind;
        this.wallClock = wallClock;
        this.events = Inputs.EVENT.equals(kind);
        this.maxFutureMs = maxFutureMs;
    }

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<Row> out) {
        Row read = Inputs.read(kind, wallClock, Inputs.text(record.key()), record.value(), record.topic(),
                record.partition(), record.offset());
        if (events) {
            // A record without a timestamp (-1, old message format) has nothing to compare with.
            Inputs.refuseIfAhead(read, record.timestamp(), maxFutureMs, "the record's Kafka timestamp");
        }
        out.collect(read);
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return Inputs.READ;
    }
}
