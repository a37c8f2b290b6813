package io.rtm.flink;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;

import org.apache.flink.api.common.state.BroadcastState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.metrics.Counter;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.runtime.state.VoidNamespaceSerializer;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.operators.InternalTimer;
import org.apache.flink.streaming.api.operators.InternalTimerService;
import org.apache.flink.streaming.api.operators.Triggerable;
import org.apache.flink.streaming.api.operators.TwoInputStreamOperator;
import org.apache.flink.streaming.api.operators.python.embedded.AbstractEmbeddedPythonFunctionOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;

/**
 * The campaign engine's operator: keyed input {@code Inputs.KEYED} rows (events and
 * profiles, keyed by user key), broadcast input the campaign records and the end of a
 * bounded input; output routed records ({@link RoutedRecords#frame}).
 *
 * <p>The engine is Python (udfs/campaign_engine.py), run in this operator's embedded
 * interpreter. PyFlink's own keyed operators call into Python once per record and once per
 * state access and timer, and those crossings cost more than the engine itself (measured).
 * This operator keeps what it can in the JVM: the user's state (one byte array, read and
 * written here), the timers and the metrics. It hands Python a batch of records and fired
 * timers with each user's state in one byte array, and gets back one byte array: the routed
 * records, the users' new states and the timers to move.
 *
 * <p>A batch is a bundle of {@link org.apache.flink.streaming.api.operators.python.AbstractPythonFunctionOperator}:
 * it goes to Python when it holds {@link #BATCH_SIZE} items, {@link #BATCH_TIME_MS} after
 * the last one went, before a checkpoint barrier, before a campaign record (they apply
 * between events), and before a watermark passes (which waits for the batch, so the
 * timers it fires come after the events before it). Its own limits, not the
 * python.fn-execution.bundle options that every Python operator of a job shares (measured
 * at 5k events/s live: p50 105 ms event to trigger with 1000 items or 10 ms, 369 ms with
 * bundles of 1000 or 20 ms; at 2k events/s, 5 ms, with 5 ms network buffers and triggers
 * sent without linger, halved the 10 ms figures: p50 41 to 20 ms, p99 191 to 97 ms).
 */
public final class CampaignEngineOperator extends AbstractEmbeddedPythonFunctionOperator<byte[]>
        implements TwoInputStreamOperator<Row, Row, byte[]>, Triggerable<String, VoidNamespace> {
    private static final long serialVersionUID = 1L;

    /** Per user key: the engine's UserSlot (udfs/campaign_engine.py), msgpack. */
    static final ValueStateDescriptor<byte[]> USER_STATE =
            new ValueStateDescriptor<>("user", PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO);
    /** Campaign id (and the policy's key) to its definition as published (JSON text); "" marks a retired one. */
    static final MapStateDescriptor<String, String> CAMPAIGNS_STATE =
            new MapStateDescriptor<>("campaigns", Types.STRING, Types.STRING);

    /** Per Python call at most this many items (measured: batches of 1000 cost about half the
     * CPU per event of one call per record), held at most about this long (the latency a
     * batch may add). */
    public static final int BATCH_SIZE = 1000;
    public static final long BATCH_TIME_MS = 5;

    // Item tags of a request (udfs/campaign_engine.py reads the same).
    private static final byte INPUT = 0, EVENT_TIMER = 1, WALL_TIMER = 2;
    // State lengths of a request beyond a real one.
    private static final int NO_STATE = -1, STATE_SENT_BEFORE = -2;
    // Timer operations of a response.
    private static final byte DELETE_EVENT_TIMER = 0, REGISTER_EVENT_TIMER = 1, REGISTER_WALL_TIMER = 2;

    private final byte[] engineConfig;

    private transient ValueState<byte[]> users;
    private transient BroadcastState<String, String> campaigns;
    private transient InternalTimerService<VoidNamespace> timers;
    private transient Counter[] counters;
    private transient List<String> batchKeys;
    private transient List<Object> batchItems; // byte[] frames of inputs, Long timestamps of timers
    private transient byte[] batchTags;

    /** {@code engineConfig}: what udfs.campaign_engine.CampaignEngine is built from (opaque here). */
    public CampaignEngineOperator(byte[] engineConfig) {
        super(new Configuration());
        this.engineConfig = engineConfig;
    }

    /** The engine over {@code keyable} (Inputs.KEYED rows), keyed by user key in the JVM, with
     * {@code broadcast} (Inputs.KEYED rows) seen by every instance. */
    public static SingleOutputStreamOperator<byte[]> apply(DataStream<Row> keyable, DataStream<Row> broadcast,
                                                           byte[] engineConfig, String name, String uid) {
        return keyable.keyBy(new UserKey(), Types.STRING)
                .connect(broadcast.broadcast())
                .transform(name, RoutedRecords.ROUTED, new CampaignEngineOperator(engineConfig))
                .uid(uid);
    }

    /** The user key of a KEYED row. */
    public static final class UserKey implements KeySelector<Row, String> {
        private static final long serialVersionUID = 1L;

        @Override
        public String getKey(Row keyed) {
            return (String) keyed.getField(0);
        }
    }

    @Override
    public void open() throws Exception {
        super.open(); // which calls openPythonInterpreter
        maxBundleSize = BATCH_SIZE;
        getProcessingTimeService().scheduleWithFixedDelay(this::flushIfDue, BATCH_TIME_MS, BATCH_TIME_MS);
    }

    private void flushIfDue(long scheduledTime) throws Exception {
        if (elementCount > 0
                && getProcessingTimeService().getCurrentProcessingTime() - lastFinishBundleTime >= BATCH_TIME_MS) {
            invokeFinishBundle();
        }
    }

    @Override
    public void openPythonInterpreter() {
        try {
            users = getPartitionedState(USER_STATE);
            campaigns = getOperatorStateBackend().getBroadcastState(CAMPAIGNS_STATE);
            timers = getInternalTimerService("rtm-engine", VoidNamespaceSerializer.INSTANCE, this);
            ByteArrayOutputStream known = new ByteArrayOutputStream();
            DataOutputStream out = new DataOutputStream(known);
            for (Map.Entry<String, String> entry : campaigns.entries()) {
                writeString(out, entry.getKey());
                writeString(out, entry.getValue());
            }
            interpreter.set("engine_config", engineConfig);
            interpreter.set("campaigns_state", known.toByteArray());
            interpreter.exec("from udfs.campaign_engine import CampaignEngine");
            interpreter.exec("engine = CampaignEngine(engine_config, "
                    + getRuntimeContext().getTaskInfo().getIndexOfThisSubtask() + ", campaigns_state)");
            String[] names = ((String) interpreter.invokeMethod("engine", "counter_names")).split(",");
            counters = new Counter[names.length];
            for (int i = 0; i < names.length; i++) {
                counters[i] = getMetricGroup().counter(names[i]);
            }
        } catch (Exception e) {
            throw new RuntimeException("the campaign engine could not start: " + e, e);
        }
        batchKeys = new ArrayList<>();
        batchItems = new ArrayList<>();
        batchTags = new byte[16];
    }

    @Override
    public void processElement1(StreamRecord<Row> element) throws Exception {
        Row keyed = element.getValue();
        add(INPUT, (String) keyed.getField(0), keyed.getField(1));
    }

    @Override
    public void processElement2(StreamRecord<Row> element) throws Exception {
        invokeFinishBundle(); // a campaign update applies after the events before it
        byte[] frame = (byte[]) element.getValue().getField(1);
        apply((byte[]) interpreter.invokeMethod("engine", "broadcast", frame));
    }

    @Override
    public void onEventTime(InternalTimer<String, VoidNamespace> timer) throws Exception {
        add(EVENT_TIMER, timer.getKey(), timer.getTimestamp());
    }

    @Override
    public void onProcessingTime(InternalTimer<String, VoidNamespace> timer) throws Exception {
        add(WALL_TIMER, timer.getKey(), timer.getTimestamp());
    }

    private void add(byte tag, String key, Object item) throws Exception {
        int n = batchKeys.size();
        if (n == batchTags.length) {
            batchTags = Arrays.copyOf(batchTags, n * 2);
        }
        batchTags[n] = tag;
        batchKeys.add(key);
        batchItems.add(item);
        elementCount++;
        checkInvokeFinishBundleByCount();
    }

    /** Send the batch to Python and apply what comes back. */
    @Override
    protected void invokeFinishBundle() throws Exception {
        if (elementCount > 0) {
            byte[] request = request();
            batchKeys.clear();
            batchItems.clear();
            elementCount = 0;
            apply((byte[]) interpreter.invokeMethod("engine", "process", request));
        }
        lastFinishBundleTime = getProcessingTimeService().getCurrentProcessingTime();
        if (bundleFinishedCallback != null) {
            Runnable callback = bundleFinishedCallback; // a held watermark: it may fire timers into a new batch
            bundleFinishedCallback = null;
            callback.run();
        }
    }

    /**
     * Items in order: tag (1 byte), key, the user's state the first time the key occurs in
     * the batch (NO_STATE: none; later: STATE_SENT_BEFORE), then an input's frame or a timer's
     * timestamp (8 bytes). Strings and byte arrays are a 4-byte length and the bytes.
     */
    private byte[] request() throws Exception {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(256 * batchKeys.size());
        DataOutputStream out = new DataOutputStream(bytes);
        HashSet<String> sent = new HashSet<>();
        out.writeInt(batchKeys.size());
        for (int i = 0; i < batchKeys.size(); i++) {
            String key = batchKeys.get(i);
            out.writeByte(batchTags[i]);
            writeString(out, key);
            if (sent.add(key)) {
                setCurrentKey(key);
                byte[] state = users.value();
                writeBytes(out, state, NO_STATE);
            } else {
                out.writeInt(STATE_SENT_BEFORE);
            }
            Object item = batchItems.get(i);
            if (batchTags[i] == INPUT) {
                writeBytes(out, (byte[]) item, NO_STATE);
            } else {
                out.writeLong((Long) item);
            }
        }
        return bytes.toByteArray();
    }

    /**
     * A response: the routed records; the users' new states (-1: cleared); the timer
     * operations, in order (op, key, timestamp); the campaigns state to write (id,
     * definition); the counters' increments, in the order of counter_names.
     */
    private void apply(byte[] response) throws Exception {
        ByteBuffer in = ByteBuffer.wrap(response);
        StreamRecord<byte[]> record = new StreamRecord<>(null);
        for (int n = in.getInt(); n > 0; n--) {
            output.collect(record.replace(readBytes(in)));
        }
        for (int n = in.getInt(); n > 0; n--) {
            setCurrentKey(readString(in));
            byte[] state = readBytes(in);
            if (state == null) {
                users.clear();
            } else {
                users.update(state);
            }
        }
        for (int n = in.getInt(); n > 0; n--) {
            byte op = in.get();
            setCurrentKey(readString(in));
            long timestamp = in.getLong();
            if (op == DELETE_EVENT_TIMER) {
                timers.deleteEventTimeTimer(VoidNamespace.INSTANCE, timestamp);
            } else if (op == REGISTER_EVENT_TIMER) {
                timers.registerEventTimeTimer(VoidNamespace.INSTANCE, timestamp);
            } else if (op == REGISTER_WALL_TIMER) {
                timers.registerProcessingTimeTimer(VoidNamespace.INSTANCE, timestamp);
            } else {
                throw new IllegalStateException("unknown timer operation " + op + " from the campaign engine");
            }
        }
        for (int n = in.getInt(); n > 0; n--) {
            campaigns.put(readString(in), readString(in));
        }
        for (Counter counter : counters) {
            int increment = in.getInt();
            if (increment != 0) {
                counter.inc(increment);
            }
        }
    }

    private static void writeString(DataOutputStream out, String text) throws IOException {
        writeBytes(out, text.getBytes(StandardCharsets.UTF_8), NO_STATE);
    }

    private static void writeBytes(DataOutputStream out, byte[] bytes, int ifNull) throws IOException {
        if (bytes == null) {
            out.writeInt(ifNull);
        } else {
            out.writeInt(bytes.length);
            out.write(bytes);
        }
    }

    private static byte[] readBytes(ByteBuffer in) {
        int size = in.getInt();
        if (size < 0) {
            return null;
        }
        byte[] bytes = new byte[size];
        in.get(bytes);
        return bytes;
    }

    private static String readString(ByteBuffer in) {
        return new String(readBytes(in), StandardCharsets.UTF_8);
    }
}
