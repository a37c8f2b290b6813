"""docker/ and docker/k8s/ agree with the rest of the repo.

No container engine runs here, so these checks are static: the files validate against
the upstream schemas kept in docker/schemas (the Compose specification, the operator's
FlinkDeployment CRD), and the images, versions, ports, paths, config keys and commands
they use are the ones that pyproject.toml, jars/pom.xml, flink-conf/config.yaml, the
`rtm` CLI and the pinned Flink itself define (Flink's own classes answer through the
PyFlink gateway where a file cannot: deprecated keys, memory sizes).
"""

import ast
import functools
import hashlib
import importlib
import json
import re
import shlex
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import jsonschema
import pyflink
import pytest
import yaml
from jsonschema.protocols import Validator
from pyflink.java_gateway import get_gateway

from rtm.cli import main as rtm_cli

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE = ROOT / "docker" / "compose.yaml"
FLINK_DEPLOYMENT = ROOT / "docker" / "k8s" / "flinkdeployment.yaml"
SCHEMAS = ROOT / "docker" / "schemas"
# The FlinkDeployment CRD of operator 1.15.0, and the one of its main branch that README
# installs over it (docker/schemas/README.md).
RELEASE_CRD = "flinkdeployments.flink.apache.org-v1.release-1.15.0.yml"
MAIN_CRD = "flinkdeployments.flink.apache.org-v1.bdd2ff37.yml"
# Peak RSS of the job's Python client while it plans the job, as measured for the
# JobManager's size in docker/k8s/flinkdeployment.yaml.
PYTHON_CLIENT_RSS_MB = 184

DOCKERFILE_INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
    "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}
# Operator keys (not Flink's, so not in the pinned jars), as defined in
# flink-kubernetes-operator's AutoScalerOptions and KubernetesOperatorConfigOptions.
OPERATOR_KEYS = {
    "kubernetes.operator.job.restart.failed",
    "job.autoscaler.enabled",
    "job.autoscaler.stabilization.interval",
    "job.autoscaler.metrics.window",
    "job.autoscaler.utilization.target",
    "job.autoscaler.utilization.max",
    "job.autoscaler.utilization.min",
    "job.autoscaler.catch-up.duration",
    "job.autoscaler.restart.time",
}


# --- The sources of truth --------------------------------------------------------------

def pyproject() -> dict:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def flink_version() -> str:
    """The apache-flink pin, e.g. '2.3.0'."""
    pins = [d for d in pyproject()["project"]["dependencies"] if d.startswith("apache-flink")]
    assert len(pins) == 1 and "==" in pins[0], pins
    return pins[0].split("==")[1]


def flink_conf() -> dict[str, str]:
    tree = yaml.safe_load((ROOT / "flink-conf" / "config.yaml").read_text())
    return {key: str(value).lower() if isinstance(value, bool) else str(value) for key, value in tree.items()}


def pom() -> ET.Element:
    return ET.parse(ROOT / "jars" / "pom.xml").getroot()


def _pom_find(element: ET.Element, path: str) -> list[ET.Element]:
    return element.findall("/".join(f"{{*}}{part}" for part in path.split("/")))


def pom_property(name: str) -> str:
    return _pom_find(pom(), f"properties/{name}")[0].text


def _option_class_files() -> list[tuple[Path, list[str]]]:
    """(jar, class file names) of the packages that define Flink's and PyFlink's config
    options, in the pinned wheel."""
    home, version = Path(pyflink.__file__).parent, flink_version()
    sources = [
        (home / "lib" / f"flink-dist-{version}.jar", "org/apache/flink/configuration/"),
        (home / "opt" / f"flink-python-{version}.jar", "org/apache/flink/python/"),
    ]
    found = []
    for jar, package in sources:
        with zipfile.ZipFile(jar) as archive:
            found.append((jar, [n for n in archive.namelist() if n.startswith(package) and n.endswith(".class")]))
    return found


@functools.cache
def _flink_class_constants() -> bytes:
    """Those class files, concatenated."""
    chunks = []
    for jar, names in _option_class_files():
        with zipfile.ZipFile(jar) as archive:
            chunks += [archive.read(n) for n in names]
    return b"".join(chunks)


def is_flink_key(key: str) -> bool:
    """Whether Flink 2.x defines this option (as a whole string constant in a class file).
    `metrics.reporter.<name>.<option>` is a reporter's option: Flink's own
    (factory.class, ...) or the Prometheus reporter's (port)."""
    reporter = re.fullmatch(r"metrics\.reporter\.[^.]+\.(.+)", key)
    constants = _flink_class_constants() + (_reporter_class_constants() if reporter else b"")
    encoded = (reporter.group(1) if reporter else key).encode()
    return b"\x01" + len(encoded).to_bytes(2, "big") + encoded in constants


@functools.cache
def _reporter_class_constants() -> bytes:
    """The class files of the Prometheus reporter that the wheel ships in plugins/."""
    jar = (Path(pyflink.__file__).parent / "plugins" / "metrics-prometheus"
           / f"flink-metrics-prometheus-{flink_version()}.jar")
    with zipfile.ZipFile(jar) as archive:
        return b"".join(archive.read(n) for n in archive.namelist() if n.endswith(".class"))


@functools.cache
def deprecated_flink_keys() -> dict[str, str]:
    """Deprecated key -> what Flink reads instead, from the ConfigOption constants of the
    pinned Flink's *Options classes: keys of @Deprecated options, and the deprecated
    fallback keys an option still reads (state.checkpoints.dir -> execution.checkpointing.dir)."""
    jvm = get_gateway().jvm
    config_option = jvm.java.lang.Class.forName("org.apache.flink.configuration.ConfigOption")
    deprecated_annotation = jvm.java.lang.Class.forName("java.lang.Deprecated")
    loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
    found = {}
    for _, names in _option_class_files():
        for name in names:
            if not name.endswith("Options.class") or "$" in name:
                continue
            cls = jvm.java.lang.Class.forName(name.removesuffix(".class").replace("/", "."), False, loader)
            for field in cls.getFields():
                if not config_option.isAssignableFrom(field.getType()):
                    continue
                option = field.get(None)
                if field.isAnnotationPresent(deprecated_annotation):
                    found[option.key()] = "nothing: the option itself is deprecated"
                found.update((fallback.getKey(), option.key()) for fallback in option.fallbackKeys()
                             if fallback.isDeprecated())
    return found


def jobmanager_memory(settings: dict[str, str]) -> dict[str, int]:
    """The JobManager's memory in MiB as Flink's own JobManagerProcessUtils derives it
    from these settings (it raises on sizes that contradict each other)."""
    jvm = get_gateway().jvm
    conf = jvm.org.apache.flink.configuration.Configuration()
    for key, value in settings.items():
        conf.setString(key, value)
    spec = jvm.org.apache.flink.runtime.jobmanager.JobManagerProcessUtils.processSpecFromConfig(conf)
    return {
        "process": spec.getTotalProcessMemorySize().getMebiBytes(),
        "heap": spec.getJvmHeapMemorySize().getMebiBytes(),
        "off-heap": spec.getJvmDirectMemorySize().getMebiBytes(),
        "metaspace": spec.getJvmMetaspaceSize().getMebiBytes(),
        "overhead": spec.getJvmOverheadSize().getMebiBytes(),
    }


# --- The upstream schemas (docker/schemas) ---------------------------------------------

def schema_digests() -> dict[str, str]:
    """file -> SHA-256, from the table in docker/schemas/README.md."""
    rows = re.findall(r"^\| (\S+) \| \S+ \| \S+ \| [0-9a-f]{40} \| ([0-9a-f]{64}) \|$",
                      (SCHEMAS / "README.md").read_text(), re.MULTILINE)
    return dict(rows)


def _rejecting_unknown_fields(schema: dict) -> dict:
    """A CRD schema as `kubectl apply` enforces it: a structural schema names every field it
    keeps, and kubectl's default strict field validation rejects any other, where JSON
    Schema would let it pass unless told `additionalProperties: false`."""
    strict = dict(schema)
    if "properties" in schema:
        strict["properties"] = {name: _rejecting_unknown_fields(s) for name, s in schema["properties"].items()}
        if not schema.get("x-kubernetes-preserve-unknown-fields"):
            strict.setdefault("additionalProperties", False)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            strict[key] = _rejecting_unknown_fields(schema[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            strict[key] = [_rejecting_unknown_fields(s) for s in schema[key]]
    return strict


@functools.cache
def crd_validator(crd_file: str) -> Validator:
    """A validator for the CRD's openAPIV3Schema of the manifest's apiVersion (OpenAPI 3.0
    schema objects: JSON Schema draft 4 plus Kubernetes extensions)."""
    crd = yaml.load((SCHEMAS / crd_file).read_text(), Loader=yaml.CSafeLoader)  # 0.5 MB: libyaml
    group, version = deployment()["apiVersion"].split("/")
    assert crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == deployment()["kind"]
    served = next(v for v in crd["spec"]["versions"] if v["name"] == version and v["served"])
    schema = served["schema"]["openAPIV3Schema"]
    # The API server itself adds apiVersion, kind and metadata (ObjectMeta) at the root.
    implicit = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
    schema = {**schema, "properties": {**implicit, **schema["properties"]}}
    return jsonschema.Draft4Validator(_rejecting_unknown_fields(schema))


@functools.cache
def compose_validator() -> Validator:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    assert schema["$schema"] == "https://json-schema.org/draft-07/schema"  # a URI jsonschema does not map
    return jsonschema.Draft7Validator(schema)


def schema_errors(validator: Validator, document: dict) -> list[str]:
    """Every violation as `dotted.path: message`, sorted."""
    return sorted(f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
                  for error in validator.iter_errors(document))


# --- The deploy files, parsed ----------------------------------------------------------

def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction: comments dropped, continuations joined."""
    instructions, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def from_platform_and_image(arguments: str) -> tuple[str | None, str]:
    """`--platform=P IMAGE [AS NAME]` of a FROM -> (P or None, IMAGE)."""
    words = arguments.split()
    platform = words.pop(0).removeprefix("--platform=") if words[0].startswith("--platform=") else None
    return platform, words[0]


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def dockerfile_runs() -> str:
    return "\n".join(arguments for keyword, arguments in dockerfile() if keyword == "RUN")


def dockerfile_env() -> dict[str, str]:
    env = {}
    for keyword, arguments in final_stage():
        if keyword == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(arguments))
    return env


def image_copies() -> dict[str, str]:
    """Destination in the image -> source in the repo, for the final stage's plain COPYs."""
    copies = {}
    for keyword, arguments in final_stage():
        if keyword != "COPY":
            continue
        words = shlex.split(arguments)
        if any(w.startswith("--from=") for w in words):
            continue  # from a build stage, not from the repo
        *sources, destination = [w for w in words if not w.startswith("--")]
        for source in sources:
            copies[destination + Path(source).name if destination.endswith("/") else destination] = source
    return copies


def repo_path(image_path: str) -> Path:
    """The repo file that an absolute path in the image comes from."""
    for destination, source in image_copies().items():
        if image_path == destination or image_path.startswith(destination.rstrip("/") + "/"):
            return ROOT / source / image_path[len(destination):].lstrip("/")
    raise AssertionError(f"{image_path} is not copied into the image by docker/Dockerfile")


def parser_flags(flag: str) -> list[str]:
    """The values of one flag (-repKV, -rmKV, -D...) given to config-parser-utils.sh."""
    call = next(run for _, run in dockerfile() if "config-parser-utils.sh" in run)
    words = shlex.split(call)
    if flag == "-D":
        return [w[2:] for w in words if w.startswith("-D")]
    return [words[i + 1] for i, w in enumerate(words) if w == flag]


def image_flink_settings() -> dict[str, str]:
    return dict(item.split("=", 1) for item in parser_flags("-D"))


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def flink_services() -> dict[str, dict]:
    return {name: s for name, s in compose()["services"].items() if s.get("image", "").startswith("rtm-flink")}


def flink_properties() -> dict[str, str]:
    """FLINK_PROPERTIES as the image's entrypoint reads it: `key: value` lines."""
    texts = {s["environment"]["FLINK_PROPERTIES"] for s in flink_services().values()}
    assert len(texts) == 1, "every Flink container needs the same addresses"
    pairs = [line.split(":", 1) for line in texts.pop().splitlines() if line.strip()]
    return {key.strip(): value.strip() for key, value in pairs}


def submit_commands() -> list[list[str]]:
    """The argv of each `rtm`, `flink` and `python` command in the submit service's script."""
    command = compose()["services"]["submit"]["command"]
    assert command[:2] == ["bash", "-euc"], command
    commands = []
    for line in command[2].splitlines():
        line = line.strip()
        if line.startswith("if "):
            line = line[3:].split("|")[0]
        words = shlex.split(line, comments=True)
        if words and words[0] in {"rtm", "flink", "python"}:
            commands.append(words)
    return commands


def flink_run(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """`flink run` options (flag -> value) and the job's own arguments after `--`."""
    assert argv[:2] == ["flink", "run"], argv
    own = argv.index("--")
    options, words = {}, argv[2:own]
    while words:
        flag = words.pop(0)
        options[flag] = "" if flag == "-d" else words.pop(0)
    return options, argv[own + 1:]


def deployment() -> dict:
    return yaml.safe_load(FLINK_DEPLOYMENT.read_text())


def deployment_conf() -> dict[str, str]:
    return {key: str(value) for key, value in deployment()["spec"]["flinkConfiguration"].items()}


def rtm_command(*names: str):
    command = rtm_cli
    for name in names:
        found = command.get_command(None, name)
        assert found is not None, f"`rtm {' '.join(names)}`: no command {name!r}"
        command = found
    return command


def option_names(command) -> set[str]:
    return {opt for param in command.params for opt in param.opts if opt.startswith("--")}


def assert_job_arguments_are_rtm_run_options(arguments: list[str]) -> None:
    flags = {a for a in arguments if a.startswith("--")}
    assert flags <= option_names(rtm_command("run")), flags - option_names(rtm_command("run"))


# --- Dockerfile ------------------------------------------------------------------------

def test_dockerfile_is_made_of_known_instructions_in_two_stages():
    instructions = dockerfile()

    assert {keyword for keyword, _ in instructions} <= DOCKERFILE_INSTRUCTIONS
    assert [arguments for keyword, arguments in instructions if keyword == "FROM"][0].endswith(" AS jars")
    assert sum(keyword == "FROM" for keyword, _ in instructions) == 2


def test_flink_image_is_the_release_of_the_pinned_pyflink_on_java_17():
    _, base = from_platform_and_image(final_stage()[0][1])

    assert base == f"flink:{flink_version()}-scala_2.12-java17"


def test_image_is_built_and_run_for_linux_amd64_the_only_platform_with_a_pyflink_wheel():
    first_stage = next(arguments for keyword, arguments in dockerfile() if keyword == "FROM")

    assert from_platform_and_image(final_stage()[0][1])[0] == "linux/amd64"
    assert {s.get("platform") for s in flink_services().values()} == {"linux/amd64"}
    # The Maven stage only downloads jars: native on the build host, whatever the target.
    assert from_platform_and_image(first_stage)[0] == "$BUILDPLATFORM"


def test_python_in_the_image_is_the_version_pyproject_requires():
    required = pyproject()["project"]["requires-python"]  # >=3.11,<3.12
    minor = re.fullmatch(r">=3\.(\d+),<3\.(\d+)", required)
    assert minor and int(minor[2]) == int(minor[1]) + 1, required
    python = f"python3.{minor[1]}"

    assert re.search(rf"apt-get install .*\b{python}\b.*\blib{python}\b", dockerfile_runs())
    assert f"{python} -m venv /opt/venv" in dockerfile_runs()
    # Thread mode's embedded interpreter sees the venv only through PYTHONPATH.
    assert dockerfile_env()["PYTHONPATH"] == f"/opt/venv/lib/{python}/site-packages"
    assert "pip install --no-cache-dir /opt/rtm" in dockerfile_runs()  # the project, with its pins


def test_connector_jar_is_fetched_by_the_poms_own_execution_into_flink_lib():
    execution = re.search(r"mvn .*-f jars/pom.xml .*dependency:copy@(\S+)", dockerfile_runs())
    assert execution, "the connector must come from jars/pom.xml through Maven"
    executions = {e.findtext("{*}id"): e for e in _pom_find(pom(), "build/plugins/plugin/executions/execution")}
    copied = executions[execution[1]]
    artifact = copied.find(".//{*}artifactItem/{*}artifactId").text
    output = copied.find(".//{*}outputDirectory").text.replace("${jars.dir}", "/build/.jars")

    assert artifact == "flink-sql-connector-kafka"
    assert pom_property("jars.dir") == "${project.basedir}/../.jars"  # /build/jars/../.jars in the stage
    assert ("WORKDIR", "/build") in dockerfile()
    assert ("COPY", f"--from=jars {output}/{artifact}-*.jar /opt/flink/lib/") in final_stage()


def test_rtm_flink_jar_is_built_by_the_pom_into_flink_lib():
    assert re.search(r"mvn .*-f jars/pom.xml .*\bjar:jar\b", dockerfile_runs())
    assert ("COPY", "jars/src jars/src") in dockerfile()
    assert _pom_find(pom(), "build/finalName")[0].text == "rtm-flink"
    assert ("COPY", "--from=jars /build/.jars/flink/rtm-flink.jar /opt/flink/lib/") in final_stage()


def test_flink_python_jar_is_in_lib_and_stays_in_opt():
    assert "cp /opt/flink/opt/flink-python-*.jar /opt/flink/lib/" in dockerfile_runs()


def test_project_files_copied_into_the_image_exist_in_the_repo():
    copies = image_copies()

    assert {"/opt/rtm/rtm", "/opt/rtm/jobs", "/opt/rtm/campaigns", "/opt/flink/conf/config.yaml"} <= set(copies)
    for source in copies.values():
        assert (ROOT / source).exists(), source
    assert copies["/opt/flink/conf/config.yaml"] == "flink-conf/config.yaml"
    assert dockerfile_env()["RTM_PROJECT_ROOT"] == "/opt/rtm"
    assert dockerfile_env()["PATH"].startswith("/opt/venv/bin:")


def test_image_points_python_workers_and_client_at_its_venv():
    settings = image_flink_settings()

    assert settings == {"python.executable": "/opt/venv/bin/python", "python.client.executable": "/opt/venv/bin/python"}
    assert all(is_flink_key(key) for key in settings)


def test_every_loopback_address_of_flink_conf_is_replaced_in_containers():
    rewritten = {spec.split(",")[0] for spec in parser_flags("-repKV") if spec.split(",")[1] == "localhost"}
    removed = {spec.split("=")[0] for spec in parser_flags("-rmKV") if spec.endswith("=localhost")}
    set_at_start = set(flink_properties())
    loopback = {key for key, value in flink_conf().items() if value in {"localhost", "127.0.0.1"}}

    assert loopback, "flink-conf/config.yaml binds the standalone cluster to loopback"
    assert loopback <= rewritten | removed | set_at_start, loopback - (rewritten | removed | set_at_start)
    assert "taskmanager.host" in removed  # each TaskManager container has an address of its own
    assert all(is_flink_key(key) for key in rewritten | removed)


# --- docker/compose.yaml ---------------------------------------------------------------

def test_compose_runs_kafka_in_kraft_mode_at_the_poms_broker_version():
    kafka = compose()["services"]["kafka"]
    env = kafka["environment"]

    assert kafka["image"] == f"apache/kafka:{pom_property('kafka.version')}"
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == 1  # one broker
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1


def test_compose_flink_services_share_the_image_built_from_the_dockerfile():
    services = flink_services()

    assert set(services) == {"jobmanager", "taskmanager", "submit"}
    assert {s["build"]["dockerfile"] for s in services.values()} == {"docker/Dockerfile"}
    assert {(COMPOSE.parent / s["build"]["context"]).resolve() for s in services.values()} == {ROOT}
    assert services["jobmanager"]["command"] == "jobmanager"
    assert services["taskmanager"]["command"] == "taskmanager"
    assert services["taskmanager"]["deploy"]["replicas"] >= 2


def test_compose_publishes_the_rest_port_of_flink_conf():
    port = flink_conf()["rest.port"]

    assert f"{port}:{port}" in compose()["services"]["jobmanager"]["ports"]
    assert f"localhost:{port}/" in " ".join(compose()["services"]["jobmanager"]["healthcheck"]["test"])


def test_compose_flink_properties_are_flink_keys_the_entrypoint_can_read():
    properties = flink_properties()

    assert properties["jobmanager.rpc.address"] == "jobmanager"
    assert properties["rest.address"] == "jobmanager"
    for key, value in properties.items():
        assert is_flink_key(key), key
        assert not re.search(r"\s", value), f"{key}: the entrypoint strips whitespace from values"
    assert properties["execution.checkpointing.savepoint-dir"].startswith("file:///opt/flink/state/")
    assert all("flink-state:/opt/flink/state" in s["volumes"] for s in flink_services().values())


def test_submit_creates_topics_and_publishes_campaigns_with_rtm_code_that_exists():
    commands = submit_commands()
    code = next(argv[2] for argv in commands if argv[:2] == ["python", "-c"])
    publish = next(argv for argv in commands if argv[0] == "rtm")

    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module)
            assert all(hasattr(module, alias.name) for alias in node.names), node.module
    assert publish[1:3] == ["campaigns", "publish"]
    assert option_names(rtm_command("campaigns", "publish")) >= {"--bootstrap"}
    assert repo_path(publish[3]).is_dir()
    assert publish[publish.index("--bootstrap") + 1] == "kafka:9092"


def test_submit_runs_the_cluster_entry_point_with_the_images_paths():
    options, arguments = flink_run(next(argv for argv in submit_commands() if argv[:2] == ["flink", "run"]))

    assert "-d" in options
    assert options["-pyfs"] == dockerfile_env()["RTM_PROJECT_ROOT"]
    assert options["-pyexec"] == image_flink_settings()["python.executable"]
    assert options["-m"] == f"jobmanager:{flink_conf()['rest.port']}"
    assert repo_path(options["-py"]) == ROOT / "jobs" / "entry.py"
    assert (ROOT / "jobs" / "entry.py").is_file(), "jobs/entry.py, the cluster entry point, is missing"
    assert_job_arguments_are_rtm_run_options(arguments)
    assert arguments[arguments.index("--bootstrap") + 1] == "kafka:9092"
    assert repo_path(arguments[arguments.index("--campaigns") + 1]).is_dir()


# --- docker/k8s/flinkdeployment.yaml ---------------------------------------------------

def test_flink_deployment_is_an_operator_resource_for_the_pinned_flink():
    resource = deployment()
    major, minor, _ = flink_version().split(".")

    assert resource["apiVersion"] == "flink.apache.org/v1beta1"
    assert resource["kind"] == "FlinkDeployment"
    assert resource["spec"]["flinkVersion"] == f"v{major}_{minor}"
    assert resource["spec"]["image"] == flink_services()["jobmanager"]["image"]


def test_flink_deployment_runs_the_entry_point_through_pythondriver():
    job = deployment()["spec"]["job"]
    args = job["args"]
    own = args.index("--")
    flink_args = dict(zip(args[:own:2], args[1:own:2]))

    assert job["jarURI"] == f"local:///opt/flink/opt/flink-python-{flink_version()}.jar"
    assert job["entryClass"] == "org.apache.flink.client.python.PythonDriver"
    assert flink_args == {"-py": "/opt/rtm/jobs/entry.py", "-pyfs": dockerfile_env()["RTM_PROJECT_ROOT"]}
    assert repo_path(flink_args["-py"]) == ROOT / "jobs" / "entry.py"
    assert (ROOT / "jobs" / "entry.py").is_file(), "jobs/entry.py, the cluster entry point, is missing"
    assert_job_arguments_are_rtm_run_options(args[own + 1:])
    assert repo_path(args[args.index("--campaigns") + 1]).is_dir()


def test_flink_deployment_repeats_flink_conf_where_the_operator_replaces_it():
    conf, spec = flink_conf(), deployment()["spec"]
    deployed = deployment_conf()
    # Set by the operator or the resource's own fields instead of the file.
    from_spec = {
        "taskmanager.memory.process.size": spec["taskManager"]["resource"]["memory"],
        "parallelism.default": str(spec["job"]["parallelism"]),
    }
    # Addresses and ports are the operator's; it adds the Java 17 module flags itself
    # (env.java.default-opts.all, from its Helm defaults for Flink 1.19+).
    operator_owned = {key for key in conf if key.startswith(("rest.", "env.java."))
                      or key.endswith((".bind-host", ".rpc.address", "taskmanager.host"))}
    # The JobManager's container is larger, for the Python client: a test of its own.
    resized = {"jobmanager.memory.process.size"}

    for key, value in conf.items():
        if key in operator_owned | resized:
            continue
        assert from_spec.get(key, deployed.get(key)) == value, f"{key}: {value} in flink-conf/config.yaml"


def test_jobmanager_container_holds_the_python_client_beside_the_jvm_of_flink_conf():
    def memory_keys(settings: dict[str, str]) -> dict[str, str]:
        return {key: value for key, value in settings.items() if key.startswith("jobmanager.memory.")}

    # The operator sets the process size from the resource section (FlinkConfigBuilder).
    size = deployment()["spec"]["jobManager"]["resource"]["memory"]
    container = jobmanager_memory({**memory_keys(deployment_conf()), "jobmanager.memory.process.size": size})
    standalone = jobmanager_memory(memory_keys(flink_conf()))
    jvm = ("heap", "off-heap", "metaspace")

    assert {k: container[k] for k in jvm} == {k: standalone[k] for k in jvm}  # the JVM does not grow into it
    assert container["overhead"] - standalone["overhead"] >= 2 * PYTHON_CLIENT_RSS_MB
    assert container["process"] - standalone["process"] == container["overhead"] - standalone["overhead"]


def test_flink_deployment_keys_are_flink_or_operator_keys():
    unknown = {key for key in deployment_conf() if not is_flink_key(key) and key not in OPERATOR_KEYS}

    assert not unknown


def test_flink_deployment_points_python_at_the_images_venv():
    deployed = deployment_conf()

    for key, value in image_flink_settings().items():
        assert deployed[key] == value


def test_flink_deployment_keeps_state_on_durable_storage_and_upgrades_by_savepoint():
    deployed, spec = deployment_conf(), deployment()["spec"]
    plugins = [env["value"] for c in spec["podTemplate"]["spec"]["containers"] for env in c.get("env", [])
               if env["name"] == "ENABLE_BUILT_IN_PLUGINS"]

    assert spec["job"]["upgradeMode"] == "savepoint"
    for key in ("execution.checkpointing.dir", "execution.checkpointing.savepoint-dir", "high-availability.storageDir"):
        assert deployed[key].startswith("s3://"), key
    assert plugins == [f"flink-s3-fs-presto-{flink_version()}.jar"]  # what serves s3://
    assert deployed["execution.checkpointing.interval"] == flink_conf()["execution.checkpointing.interval"]


def test_flink_deployment_autoscales_with_a_fixed_max_parallelism():
    deployed = deployment_conf()
    max_parallelism = int(deployed["pipeline.max-parallelism"])

    assert deployed["job.autoscaler.enabled"] == "true"
    assert deployed["jobmanager.scheduler"] == "adaptive"
    assert sum(max_parallelism % n == 0 for n in range(1, max_parallelism + 1)) >= 12  # many divisors
    assert float(deployed["job.autoscaler.utilization.min"]) < float(deployed["job.autoscaler.utilization.target"]) \
        < float(deployed["job.autoscaler.utilization.max"])


# --- Across the files -----------------------------------------------------------------

def test_every_taskmanager_has_one_slot_as_its_slots_would_share_one_python():
    # Thread mode: the Python functions of all slots of a TaskManager run in its one
    # embedded CPython, under one GIL; parallelism comes from TaskManagers.
    assert flink_conf()["python.execution-mode"] == "thread"
    assert flink_conf()["taskmanager.numberOfTaskSlots"] == "1"  # rtm cluster start; the image's config.yaml
    assert "taskmanager.numberOfTaskSlots" not in flink_properties()  # compose keeps the image's
    assert deployment_conf()["taskmanager.numberOfTaskSlots"] == "1"


def test_flink_settings_use_current_keys_not_deprecated_ones():
    deprecated = deprecated_flink_keys()
    settings = {
        "flink-conf/config.yaml": flink_conf(),
        "docker/Dockerfile": image_flink_settings(),
        "docker/compose.yaml": flink_properties(),
        "docker/k8s/flinkdeployment.yaml": deployment_conf(),
    }

    assert deprecated["state.checkpoints.dir"] == "execution.checkpointing.dir"  # the scan sees Flink's deprecations
    assert {f"{file}: {key}, read instead: {deprecated[key]}" for file, keys in settings.items() for key in keys
            if key in deprecated} == set()


def test_kept_schemas_are_the_upstream_files_their_readme_names():
    digests = schema_digests()

    assert set(digests) == {path.name for path in SCHEMAS.iterdir()} - {"README.md"}
    for name, digest in digests.items():
        assert hashlib.sha256((SCHEMAS / name).read_bytes()).hexdigest() == digest, f"{name} was edited"


def test_compose_file_is_valid_under_the_compose_specification():
    misspelt = compose()
    misspelt["services"]["taskmanager"]["replicas"] = 2  # belongs under deploy:

    assert schema_errors(compose_validator(), compose()) == []
    assert schema_errors(compose_validator(), misspelt) == [
        "services.taskmanager: 'replicas' does not match any of the regexes: '^x-'"]


def test_flink_deployment_is_valid_under_the_crd_of_the_operators_main_branch():
    wrong = deployment()
    wrong["spec"]["job"]["entrypoint"] = "jobs/entry.py"  # no such field
    wrong["spec"]["taskManager"]["replicas"] = "2"  # an integer field

    assert schema_errors(crd_validator(MAIN_CRD), deployment()) == []
    assert schema_errors(crd_validator(MAIN_CRD), wrong) == [
        "spec.job: Additional properties are not allowed ('entrypoint' was unexpected)",
        "spec.taskManager.replicas: '2' is not of type 'integer'",
    ]


def test_operator_1_15_0_crd_rejects_flink_version_v2_3_and_nothing_else():
    # Why README installs the main branch's CRD over the one of operator 1.15.0's chart.
    errors = schema_errors(crd_validator(RELEASE_CRD), deployment())

    assert len(errors) == 1, errors
    assert errors[0].startswith("spec.flinkVersion: 'v2_3' is not one of [")
    assert "'v2_2']" in errors[0]


@pytest.mark.parametrize("path, command", [
    (DOCKERFILE, "docker build -f docker/Dockerfile -t rtm-flink:0.1.0 ."),
    (COMPOSE, "docker compose -f docker/compose.yaml up -d --build"),
    (FLINK_DEPLOYMENT, "kubectl apply -f docker/k8s/flinkdeployment.yaml"),
])
def test_deploy_files_say_in_their_header_how_to_run_them(path, command):
    header = path.read_text().split("\n\n# ---")[0].split("\napiVersion:")[0]

    assert command in header
