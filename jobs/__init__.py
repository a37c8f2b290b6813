"""rtm's Flink jobs: each module builds one pipeline; `kafka_io` connects them to Kafka."""
