package io.rtm.flink;

import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.types.Row;

/**
 * Records that did not come from Kafka (a backtest's files) as Inputs.READ rows:
 * {@code Row(kind, key, value, topic, partition, offset)} in, read as KafkaInputs reads Kafka.
 * Files carry no record timestamps, so an event may be ahead of the largest event time
 * before it by at most {@code maxFutureMs} (as preview reads files: rtm.preview.read_events);
 * that needs one instance seeing the records in file order (parallelism 1).
 */
public final class RawRecords implements MapFunction<Row, Row> {
    private static final long serialVersionUID = 1L;
    private final long maxFutureMs;
    private long newestEventTime = Inputs.NO_TIME;

    public RawRecords(long maxFutureMs) {
        this.maxFutureMs = maxFutureMs;
    }

    @Override
    public Row map(Row raw) {
        String kind = (String) raw.getField(0);
        Row read = Inputs.read(kind, false, (String) raw.getField(1), (byte[]) raw.getField(2),
                (String) raw.getField(3), (Integer) raw.getField(4), (Long) raw.getField(5));
        if (Inputs.EVENT.equals(kind) && read.getField(1) == null
                && !Inputs.refuseIfAhead(read, newestEventTime, maxFutureMs, "the largest event time before it")) {
            newestEventTime = Math.max(newestEventTime, (Long) ((Row) read.getField(2)).getField(Inputs.TS));
        }
        return read;
    }
}
