package io.rtm.flink;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.producer.ProducerRecord;

/**
 * Writes routed records, each to the topic of its output, with its key as message key and a
 * null value as a tombstone. One sink serves every output of a job, and the routing costs
 * no Python operator.
 *
 * <p>A routed record is {@code (output, key, value)} framed in one byte array ({@link
 * #frame}; udfs/rows.py writes the same): PyFlink turns a Python Row into a Java Row field
 * by field, and one array crosses for less.
 */
public final class RoutedRecords implements KafkaRecordSerializationSchema<byte[]> {
    private static final long serialVersionUID = 1L;
    public static final TypeInformation<byte[]> ROUTED = PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO;

    private final HashMap<String, String> topics;

    /** {@code topics}: output name to topic. */
    public RoutedRecords(Map<String, String> topics) {
        this.topics = new HashMap<>(topics);
    }

    /**
     * A routed record: the output name's byte length (1 byte) and UTF-8 bytes, then the byte
     * lengths of key (UTF-8) and value (4 bytes each, big-endian; -1 for null) and those bytes.
     */
    static byte[] frame(String output, String key, byte[] value) {
        byte[] name = output.getBytes(StandardCharsets.UTF_8);
        byte[] keyBytes = key == null ? null : key.getBytes(StandardCharsets.UTF_8);
        ByteBuffer frame = ByteBuffer.allocate(1 + name.length + 4 + (keyBytes == null ? 0 : keyBytes.length) + 4
                + (value == null ? 0 : value.length));
        frame.put((byte) name.length).put(name);
        frame.putInt(keyBytes == null ? -1 : keyBytes.length);
        if (keyBytes != null) {
            frame.put(keyBytes);
        }
        frame.putInt(value == null ? -1 : value.length);
        if (value != null) {
            frame.put(value);
        }
        return frame.array();
    }

    @Override
    public ProducerRecord<byte[], byte[]> serialize(byte[] routed, KafkaSinkContext context, Long timestamp) {
        ByteBuffer frame = ByteBuffer.wrap(routed);
        int nameSize = frame.get() & 0xff;
        String output = new String(routed, 1, nameSize, StandardCharsets.UTF_8);
        String topic = topics.get(output);
        if (topic == null) {
            throw new IllegalArgumentException(
                    "a record for output " + output + ", which has no topic; outputs: " + topics.keySet());
        }
        frame.position(1 + nameSize);
        byte[] key = next(frame);
        byte[] value = next(frame);
        // No timestamp: the broker stamps the write time. Event time as record time would let
        // retention delete the outputs of a replay of old events at once.
        return new ProducerRecord<>(topic, null, null, key, value);
    }

    private static byte[] next(ByteBuffer frame) {
        int size = frame.getInt();
        if (size < 0) {
            return null;
        }
        int start = frame.position();
        frame.position(start + size);
        return Arrays.copyOfRange(frame.array(), start, start + size);
    }
}
