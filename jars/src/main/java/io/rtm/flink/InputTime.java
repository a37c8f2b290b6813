package io.rtm.flink;

import org.apache.flink.api.common.eventtime.SerializableTimestampAssigner;
import org.apache.flink.types.Row;

/** Event time of an Inputs.READ row: its {@code ts}, never the Kafka record's timestamp. */
public final class InputTime implements SerializableTimestampAssigner<Row> {
    private static final long serialVersionUID = 1L;

    @Override
    public long extractTimestamp(Row read, long recordTimestamp) {
        return (Long) ((Row) read.getField(2)).getField(Inputs.TS);
    }
}
