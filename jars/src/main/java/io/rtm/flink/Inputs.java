package io.rtm.flink;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.OffsetDateTime;
import java.time.format.DateTimeParseException;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.typeutils.RowTypeInfo;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonProcessingException;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.StreamReadFeature;
import org.apache.flink.types.Row;

/**
 * The records the campaign engine receives, and the little the JVM reads of them.
 *
 * <p>Every input record becomes {@code INPUT = Row(kind, ts, key, value, topic, partition,
 * offset)}: its kind, its event time, and the Kafka record unchanged (message key, value
 * bytes or null, where it came from), so the engine can parse it once and dead-letter it
 * with the original bytes. Before keying it travels as {@code READ = Row(user_key, reason,
 * input)}: the user key by which it is keyed, or the reason it cannot be keyed. Keyed, it
 * travels as {@code KEYED = Row(user_key, frame)}: the same fields in one byte array
 * ({@link #frame}), because PyFlink turns each Row into a Python Row field by field, and
 * for the nested INPUT row that cost more than the rest of an event's way into Python.
 *
 * <p>Of an event the JVM reads only what keying and watermarks need: {@code user_id} /
 * {@code anonymous_id} (the user key, docs/CONTRACTS.md "Event") and {@code ts}. Whether the
 * event is otherwise valid is the engine's call (rtm.events), so there is one home for the
 * contract.
 */
public final class Inputs {
    public static final String EVENT = "event";
    public static final String PROFILE = "profile";
    public static final String CAMPAIGN = "campaign";
    /** The end of a bounded input; {@code ts} holds the largest event time it carried. */
    public static final String END = "end";

    /** Event time of records that have none (bad ones, profiles read before events): never moves the watermark. */
    public static final long NO_TIME = Long.MIN_VALUE;

    public static final RowTypeInfo INPUT = new RowTypeInfo(
            new TypeInformation<?>[] {Types.STRING, Types.LONG, Types.STRING,
                Types.PRIMITIVE_ARRAY(Types.BYTE), Types.STRING, Types.INT, Types.LONG},
            new String[] {"kind", "ts", "key", "value", "topic", "partition", "offset"});
    public static final int KIND = 0, TS = 1, KEY = 2, VALUE = 3, TOPIC = 4, PARTITION = 5, OFFSET = 6;

    /** Keyed records: field 0 is the key, the shape PyFlink's keyed operators expect; field 1 the framed INPUT. */
    public static final RowTypeInfo KEYED = new RowTypeInfo(Types.STRING, Types.PRIMITIVE_ARRAY(Types.BYTE));
    /** Kinds in a frame, by code: the code is the index (udfs/rows.py reads them in this order). */
    private static final String[] KIND_CODES = {EVENT, PROFILE, CAMPAIGN, END};
    /** The fixed part of a frame: kind, ts, partition, offset and the lengths of key, topic and value. */
    private static final int FRAME_HEADER = 1 + 8 + 4 + 8 + 4 + 4 + 4;
    public static final RowTypeInfo READ = new RowTypeInfo(
            new TypeInformation<?>[] {Types.STRING, Types.STRING, INPUT},
            new String[] {"user_key", "reason", "input"});

    // Repeated fields are refused: the engine's decoder could read another user key than this one.
    private static final JsonFactory JSON =
            JsonFactory.builder().enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION).build();

    private Inputs() {}

    /**
     * One Kafka record of the given kind as a READ row. {@code wallClock}: stamp it with the
     * wall clock (a live slow input, whose watermark must not hold the events' back)
     * instead of no time at all.
     */
    public static Row read(String kind, boolean wallClock, String key, byte[] value, String topic, int partition,
            long offset) {
        Row input = Row.of(kind, NO_TIME, key, value, topic, partition, offset);
        switch (kind) {
            case EVENT:
                return readEvent(input, value);
            case PROFILE:
                stampSlow(input, wallClock);
                return key == null || key.isEmpty()
                        ? Row.of(null, "profile without a message key: the key must be the user_id", input)
                        : Row.of(key, null, input);
            case CAMPAIGN:
                // Broadcast, never keyed: the engine checks the key against the campaign id.
                stampSlow(input, wallClock);
                return Row.of(key, null, input);
            default:
                throw new IllegalArgumentException("unknown input kind " + kind + "; use event, profile or campaign");
        }
    }

    /** The marker a bounded input sends when it ends, with the largest event time it held. */
    public static Row endOfInput(long newestEventTime) {
        return keyed(null, Row.of(END, newestEventTime, null, null, null, null, null));
    }

    /** The KEYED row of an INPUT row. */
    public static Row keyed(String userKey, Row input) {
        return Row.of(userKey, frame(input));
    }

    /**
     * An INPUT row as one byte array, big-endian: kind code (1 byte: event, profile,
     * campaign, end), ts (8), partition (4), offset (8), then the byte lengths of key
     * (UTF-8), topic (UTF-8) and value (4 each; -1 for null) and those bytes in that order.
     * A missing partition or offset (the end marker's) is -1.
     */
    static byte[] frame(Row input) {
        byte[] key = utf8((String) input.getField(KEY));
        byte[] topic = utf8((String) input.getField(TOPIC));
        byte[] value = (byte[]) input.getField(VALUE);
        ByteBuffer frame = ByteBuffer.allocate(FRAME_HEADER + length(key) + length(topic) + length(value));
        frame.put(kindCode((String) input.getField(KIND)));
        frame.putLong((Long) input.getField(TS));
        Integer partition = (Integer) input.getField(PARTITION);
        Long offset = (Long) input.getField(OFFSET);
        frame.putInt(partition == null ? -1 : partition);
        frame.putLong(offset == null ? -1 : offset);
        frame.putInt(key == null ? -1 : key.length);
        frame.putInt(topic == null ? -1 : topic.length);
        frame.putInt(value == null ? -1 : value.length);
        for (byte[] part : new byte[][] {key, topic, value}) {
            if (part != null) {
                frame.put(part);
            }
        }
        return frame.array();
    }

    private static byte kindCode(String kind) {
        for (byte code = 0; code < KIND_CODES.length; code++) {
            if (KIND_CODES[code].equals(kind)) {
                return code;
            }
        }
        throw new IllegalArgumentException("unknown input kind " + kind);
    }

    private static byte[] utf8(String text) {
        return text == null ? null : text.getBytes(StandardCharsets.UTF_8);
    }

    private static int length(byte[] bytes) {
        return bytes == null ? 0 : bytes.length;
    }

    private static void stampSlow(Row input, boolean wallClock) {
        if (wallClock) {
            input.setField(TS, System.currentTimeMillis());
        }
    }

    private static Row readEvent(Row input, byte[] value) {
        if (value == null) {
            return Row.of(null, "tombstone (null value) on the events topic: events always carry a value", input);
        }
        String userId = null, anonymousId = null;
        long ts = NO_TIME;
        try (JsonParser parser = JSON.createParser(value)) {
            if (parser.nextToken() != JsonToken.START_OBJECT) {
                return Row.of(null, "event does not match the contract: an event is a JSON object", input);
            }
            while (parser.nextToken() == JsonToken.FIELD_NAME) {
                String field = parser.currentName();
                JsonToken token = parser.nextToken();
                switch (field) {
                    case "user_id":
                        userId = token == JsonToken.VALUE_STRING ? parser.getText() : null;
                        break;
                    case "anonymous_id":
                        anonymousId = token == JsonToken.VALUE_STRING ? parser.getText() : null;
                        break;
                    case "ts":
                        ts = eventTime(parser, token);
                        break;
                    default:
                        parser.skipChildren();
                }
            }
            if (parser.nextToken() != null) {
                return Row.of(null, "not JSON: trailing data after the event object", input);
            }
        } catch (JsonProcessingException err) {
            return Row.of(null, "not JSON: " + err.getOriginalMessage(), input);
        } catch (java.io.IOException err) {
            return Row.of(null, "not JSON: " + err.getMessage(), input);
        }
        // The rule of rtm.events.user_key, which the engine applies to the same event; a test
        // (tests/integration/test_kafka_io.py) fails if the two ever key an event differently.
        String userKey = userId != null && !userId.isEmpty() ? userId : anonymousId;
        if (userKey == null || userKey.isEmpty()) {
            return Row.of(null, "neither user_id nor anonymous_id is set: one is required (it is the user key)", input);
        }
        input.setField(TS, ts);
        return Row.of(userKey, null, input);
    }

    /** Epoch millis, or an ISO-8601 time with an offset; NO_TIME for anything else (the engine says why). */
    private static long eventTime(JsonParser parser, JsonToken token) throws java.io.IOException {
        if (token == JsonToken.VALUE_NUMBER_INT) {
            return parser.getNumberType() == JsonParser.NumberType.BIG_INTEGER ? NO_TIME : parser.getLongValue();
        }
        if (token == JsonToken.VALUE_STRING) {
            try {
                return OffsetDateTime.parse(parser.getText()).toInstant().toEpochMilli();
            } catch (DateTimeParseException | ArithmeticException err) {
                return NO_TIME;
            }
        }
        parser.skipChildren();
        return NO_TIME;
    }

    /**
     * The clock-skew rule (docs/CONTRACTS.md, "Time"; rtm.time_rules.too_far_ahead words it
     * the same): an event whose {@code ts} is more than {@code maxFutureMs} ahead of
     * {@code reference} (the record's Kafka timestamp; over files the largest event time so
     * far) cannot be keyed: its time would move the watermark, and every user's deadlines,
     * into the future. Refused in place, before any timestamp assigner reads it; true if so.
     * No reference (a negative one): nothing to compare with.
     */
    static boolean refuseIfAhead(Row read, long reference, long maxFutureMs, String referenceName) {
        Row input = (Row) read.getField(2);
        long ts = (Long) input.getField(TS);
        // Compared only when ts > reference >= 0, so ts - reference cannot overflow.
        if (reference < 0 || ts <= reference || ts - reference <= maxFutureMs || read.getField(1) != null) {
            return false;
        }
        read.setField(0, null);
        read.setField(1, "ts " + ts + " is " + (ts - reference) + " ms ahead of " + referenceName + " " + reference
                + ", more than --max-future (" + maxFutureMs + " ms): fix the clock of the event's producer, "
                + "or raise --max-future");
        input.setField(TS, NO_TIME);
        return true;
    }

    static String text(byte[] bytes) {
        return bytes == null ? null : new String(bytes, StandardCharsets.UTF_8);
    }
}
