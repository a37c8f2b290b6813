"""One Kafka client settings file for both kinds of client rtm has: librdkafka (the
commands) and the Java clients of the Flink connector (rtm.kafka_config)."""

import pytest

from rtm import kafka_config
from rtm.errors import RtmError

PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"
SHADED_PLAIN = f"org.apache.flink.kafka.shaded.{PLAIN}"


@pytest.fixture
def settings_file(tmp_path, monkeypatch):
    monkeypatch.delenv(kafka_config.ENV_VAR, raising=False)
    monkeypatch.setattr(kafka_config, "_chosen", None)

    def write(text: str):
        path = tmp_path / "client.properties"
        path.write_text(text)
        kafka_config.use(path)
        return path

    return write


def _librdkafka() -> dict:
    settings = kafka_config.librdkafka({"bootstrap.servers": "from-the-command:9092", "group.id": "g"})
    assert settings.pop("error_cb") is not None
    return settings


def test_the_java_jaas_line_gives_librdkafka_its_username_and_password(settings_file):
    settings_file("# Confluent Cloud\nbootstrap.servers=cloud:9092\nsecurity.protocol=SASL_SSL\nsasl.mechanism=PLAIN\n"
                  f'sasl.jaas.config={PLAIN} required \\\n  username="KEY" password="SE\\"CRET";\n')

    assert _librdkafka() == {"bootstrap.servers": "from-the-command:9092", "group.id": "g",
                             "security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN",
                             "sasl.username": "KEY", "sasl.password": 'SE"CRET'}
    assert kafka_config.java() == {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN",
                                   "sasl.jaas.config": f'{SHADED_PLAIN} required username="KEY" password="SE\\"CRET";'}
    assert kafka_config.bootstrap() == "cloud:9092"


def test_librdkafka_names_give_the_java_clients_a_jaas_line_and_a_pem_truststore(settings_file):
    settings_file("security.protocol: SASL_SSL\n! SCRAM\nsasl.mechanism=SCRAM-SHA-512\nsasl.username=u\n"
                  'sasl.password=p"w\nssl.ca.location=/etc/ca.pem\n')

    assert kafka_config.java() == {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.jaas.config": 'org.apache.flink.kafka.shaded.org.apache.kafka.common.security.scram.ScramLoginModule '
                            'required username="u" password="p\\"w";',
        "ssl.truststore.type": "PEM", "ssl.truststore.location": "/etc/ca.pem",
    }
    assert _librdkafka()["ssl.ca.location"] == "/etc/ca.pem"


def test_a_pem_truststore_is_librdkafkas_ca_and_a_jks_one_is_refused_saying_what_to_give(settings_file):
    settings_file("security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location=/etc/ca.pem\n")
    assert _librdkafka() == {"bootstrap.servers": "from-the-command:9092", "group.id": "g",
                             "security.protocol": "SSL", "ssl.ca.location": "/etc/ca.pem"}

    settings_file("security.protocol=SSL\nssl.truststore.location=/etc/truststore.jks\nssl.truststore.password=x\n")
    with pytest.raises(RtmError, match="cannot read a JKS truststore: give ssl.truststore.type=PEM"):
        _librdkafka()


def test_without_a_file_clients_get_their_own_settings_only(settings_file, monkeypatch):
    kafka_config.use(None)

    assert _librdkafka() == {"bootstrap.servers": "from-the-command:9092", "group.id": "g"}
    assert kafka_config.java() == {} and kafka_config.bootstrap() is None


def test_the_environment_variable_names_the_file_when_no_option_does(settings_file, tmp_path, monkeypatch):
    (tmp_path / "env.properties").write_text("security.protocol=SSL\n")
    kafka_config.use(None)
    monkeypatch.setenv(kafka_config.ENV_VAR, str(tmp_path / "env.properties"))

    assert kafka_config.java() == {"security.protocol": "SSL"}


@pytest.mark.parametrize("text, message", [
    ("security.protocol=SSL\nnot a setting\n", r"client.properties:2: 'not a setting' is not key=value"),
    ("sasl.jaas.config=x \\\n", r"client.properties:1: the last line ends with a \\ continuation"),
])
def test_a_broken_file_is_refused_naming_file_and_line(settings_file, text, message):
    with pytest.raises(RtmError, match=message):
        settings_file(text)


def test_a_jaas_line_without_credentials_says_how_to_write_it(settings_file):
    settings_file(f"sasl.jaas.config={PLAIN} required;\n")

    with pytest.raises(RtmError, match='no username="..." and password="...": write it as'):
        _librdkafka()
