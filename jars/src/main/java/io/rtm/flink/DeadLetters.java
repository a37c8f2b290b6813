package io.rtm.flink;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Base64;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonGenerator;
import org.apache.flink.types.Row;

/**
 * Dead letters of records refused in the JVM, in the same JSON as rtm.dlq.dead_letter
 * writes for those the engine refuses: reason, where the record came from, its key and
 * its value exactly (base64), plus the start of the value as text.
 */
final class DeadLetters {
    static final String OUTPUT = "dlq";
    private static final int PREVIEW_BYTES = 500; // rtm.dlq.PREVIEW_CHARS
    private static final JsonFactory JSON = new JsonFactory();

    private DeadLetters() {}

    static byte[] route(Row input, String reason) {
        return RoutedRecords.frame(OUTPUT, (String) input.getField(Inputs.KEY), json(input, reason));
    }

    private static byte[] json(Row input, String reason) {
        byte[] value = (byte[]) input.getField(Inputs.VALUE);
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(256);
        try (JsonGenerator out = JSON.createGenerator(bytes)) {
            out.writeStartObject();
            out.writeStringField("reason", reason);
            out.writeStringField("topic", (String) input.getField(Inputs.TOPIC));
            out.writeNumberField("partition", (Integer) input.getField(Inputs.PARTITION));
            out.writeNumberField("offset", (Long) input.getField(Inputs.OFFSET));
            out.writeStringField("key", (String) input.getField(Inputs.KEY));
            if (value == null) {
                out.writeNullField("value_base64");
            } else {
                out.writeStringField("value_base64", Base64.getEncoder().encodeToString(value));
                out.writeStringField("value_preview",
                        new String(Arrays.copyOf(value, Math.min(value.length, PREVIEW_BYTES)), StandardCharsets.UTF_8));
            }
            out.writeEndObject();
        } catch (IOException err) {
            throw new UncheckedIOException(err);
        }
        return bytes.toByteArray();
    }
}
