package io.rtm.flink;

import org.apache.flink.metrics.Counter;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.BoundedOneInput;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;
import org.apache.flink.util.OutputTag;

/**
 * Inputs.READ rows in; Inputs.KEYED rows out for the records that can be keyed, dead letters
 * (routed records of output "dlq") for those that cannot, and, when a bounded input
 * ends, one end-of-input marker with the largest event time it carried: the engine stops
 * event time there (the rules of time: deadlines after the input's last event do not fire).
 * A Java operator chained to the source, so bad records never cross into Python.
 */
public final class SplitInputs extends AbstractStreamOperator<Row>
        implements OneInputStreamOperator<Row, Row>, BoundedOneInput {
    private static final long serialVersionUID = 1L;
    public static final OutputTag<byte[]> DEAD_LETTERS = new OutputTag<>("dead-letters", RoutedRecords.ROUTED);
    public static final OutputTag<Row> END_OF_INPUT = new OutputTag<>("end-of-input", Inputs.KEYED);

    private transient Counter deadLetters;
    private long newestEventTime = Inputs.NO_TIME;
    private boolean sawEvents;
    private boolean endMarked;

    @Override
    public void open() throws Exception {
        super.open();
        deadLetters = getMetricGroup().counter("dead_letters");
    }

    @Override
    public void processElement(StreamRecord<Row> element) {
        Row read = element.getValue();
        Row input = (Row) read.getField(2);
        String reason = (String) read.getField(1);
        if (reason != null) {
            deadLetters.inc();
            output.collect(DEAD_LETTERS, new StreamRecord<>(DeadLetters.route(input, reason)));
            return;
        }
        if (Inputs.EVENT.equals(input.getField(Inputs.KIND))) {
            sawEvents = true;
            newestEventTime = Math.max(newestEventTime, (Long) input.getField(Inputs.TS));
        }
        output.collect(element.replace(Inputs.keyed((String) read.getField(0), input)));
    }

    /**
     * A bounded input's source emits the watermark that ends event time before its input
     * ends, and the engine fires every timer on it: the marker must reach the engine first,
     * on the same channel, or deadlines after the input's last event fire whenever the
     * engine reads its broadcast input before its keyed one.
     */
    @Override
    public void processWatermark(Watermark mark) throws Exception {
        if (mark.getTimestamp() == Long.MAX_VALUE) {
            markEndOfInput();
        }
        super.processWatermark(mark);
    }

    @Override
    public void endInput() {
        markEndOfInput();
    }

    private void markEndOfInput() {
        if (sawEvents && !endMarked) {
            endMarked = true;
            output.collect(END_OF_INPUT, new StreamRecord<>(Inputs.endOfInput(newestEventTime)));
        }
    }
}
