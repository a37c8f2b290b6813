package io.rtm.flink;

import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.types.Row;

/**
 * Records that did not come from Kafka (a backtest's files) as Inputs.READ rows:
 * {@code Row(kind, key, value, topic, partition, offset)} in, read as KafkaInputs reads Kafka.
 */
public final class RawRecords implements MapFunction<Row, Row> {
    private static final long serialVersionUID = 1L;

    @Override
    public Row map(Row raw) {
        return Inputs.read((String) raw.getField(0), false, (String) raw.getField(1), (byte[]) raw.getField(2),
                (String) raw.getField(3), (Integer) raw.getField(4), (Long) raw.getField(5));
    }
}
