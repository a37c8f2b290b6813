package io.rtm.flink;

import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.typeutils.RowTypeInfo;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.flink.types.Row;

/**
 * Writes {@code ROUTED = Row(output, key, value)} rows each to the topic of its output, with
 * the key as message key and a null value as a tombstone. One sink serves every output of
 * a job, and the routing costs no Python operator.
 */
public final class RoutedRecords implements KafkaRecordSerializationSchema<Row> {
    private static final long serialVersionUID = 1L;
    public static final RowTypeInfo ROUTED = new RowTypeInfo(
            new TypeInformation<?>[] {Types.STRING, Types.STRING, Types.PRIMITIVE_ARRAY(Types.BYTE)},
            new String[] {"output", "key", "value"});

    private final HashMap<String, String> topics;

    /** {@code topics}: output name to topic. */
    public RoutedRecords(Map<String, String> topics) {
        this.topics = new HashMap<>(topics);
    }

    @Override
    public ProducerRecord<byte[], byte[]> serialize(Row row, KafkaSinkContext context, Long timestamp) {
        String output = (String) row.getField(0);
        String topic = topics.get(output);
        if (topic == null) {
            throw new IllegalArgumentException(
                    "a record for output " + output + ", which has no topic; outputs: " + topics.keySet());
        }
        String key = (String) row.getField(1);
        // No timestamp: the broker stamps the write time. Event time as record time would let
        // retention delete the outputs of a replay of old events at once.
        return new ProducerRecord<>(topic, null, null, key == null ? null : key.getBytes(StandardCharsets.UTF_8),
                (byte[]) row.getField(2));
    }
}
