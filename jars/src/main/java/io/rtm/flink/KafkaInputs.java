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

    public KafkaInputs(String kind, boolean wallClock) {
        this.kind = kind;
        this.wallClock = wallClock;
    }

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<Row> out) {
        out.collect(Inputs.read(kind, wallClock, Inputs.text(record.key()), record.value(), record.topic(),
                record.partition(), record.offset()));
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return Inputs.READ;
    }
}
