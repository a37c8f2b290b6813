"""docker/ and docker/k8s/ agree with the rest of the repo.

No container engine runs here, so these checks are static: the files parse, and the
images, versions, ports, paths, config keys and commands they use are the ones that
pyproject.toml, jars/pom.xml, flink-conf/config.yaml, the `rtm` CLI and the pinned Flink
itself define.
"""

import ast
import functools
import importlib
import re
import shlex
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pyflink
import pytest
import yaml

from rtm.cli import main as rtm_cli

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE = ROOT / "docker" / "compose.yaml"
FLINK_DEPLOYMENT = ROOT / "docker" / "k8s" / "flinkdeployment.yaml"

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
    return {key: str(value) for key, value in tree.items()}


def pom() -> ET.Element:
    return ET.parse(ROOT / "jars" / "pom.xml").getroot()


def _pom_find(element: ET.Element, path: str) -> list[ET.Element]:
    return element.findall("/".join(f"{{*}}{part}" for part in path.split("/")))


def pom_property(name: str) -> str:
    return _pom_find(pom(), f"properties/{name}")[0].text


@functools.cache
def _flink_class_constants() -> bytes:
    """The class files that define Flink's and PyFlink's config options, in the pinned wheel."""
    home, version = Path(pyflink.__file__).parent, flink_version()
    sources = [
        (home / "lib" / f"flink-dist-{version}.jar", "org/apache/flink/configuration/"),
        (home / "opt" / f"flink-python-{version}.jar", "org/apache/flink/python/"),
    ]
    chunks = []
    for jar, package in sources:
        with zipfile.ZipFile(jar) as archive:
            chunks += [archive.read(n) for n in archive.namelist() if n.startswith(package) and n.endswith(".class")]
    return b"".join(chunks)


def is_flink_key(key: str) -> bool:
    """Whether Flink 2.x defines this option (as a whole string constant in a class file)."""
    encoded = key.encode()
    return b"\x01" + len(encoded).to_bytes(2, "big") + encoded in _flink_class_constants()


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
        assert name in command.commands, f"`rtm {' '.join(names)}`: no command {name!r}"
        command = command.commands[name]
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
    base = final_stage()[0][1]

    assert base == f"flink:{flink_version()}-scala_2.12-java17"


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
    execution = re.search(r"mvn .*-f jars/pom.xml dependency:copy@(\S+)", dockerfile_runs())
    assert execution, "the connector must come from jars/pom.xml through Maven"
    executions = {e.findtext("{*}id"): e for e in _pom_find(pom(), "build/plugins/plugin/executions/execution")}
    copied = executions[execution[1]]
    artifact = copied.find(".//{*}artifactItem/{*}artifactId").text
    output = copied.find(".//{*}outputDirectory").text.replace("${jars.dir}", "/build/.jars")

    assert artifact == "flink-sql-connector-kafka"
    assert pom_property("jars.dir") == "${project.basedir}/../.jars"  # /build/jars/../.jars in the stage
    assert ("WORKDIR", "/build") in dockerfile()
    assert ("COPY", f"--from=jars {output}/{artifact}-*.jar /opt/flink/lib/") in final_stage()


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
    assert properties["state.savepoints.dir"].startswith("file:///opt/flink/state/")
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
        "jobmanager.memory.process.size": spec["jobManager"]["resource"]["memory"],
        "taskmanager.memory.process.size": spec["taskManager"]["resource"]["memory"],
        "parallelism.default": str(spec["job"]["parallelism"]),
    }
    # Addresses and ports are the operator's; it adds the Java 17 module flags itself
    # (env.java.default-opts.all, from its Helm defaults for Flink 1.19+).
    operator_owned = {key for key in conf if key.startswith(("rest.", "env.java."))
                      or key.endswith((".bind-host", ".rpc.address", "taskmanager.host"))}

    for key, value in conf.items():
        if key in operator_owned:
            continue
        assert from_spec.get(key, deployed.get(key)) == value, f"{key}: {value} in flink-conf/config.yaml"


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
    for key in ("state.checkpoints.dir", "state.savepoints.dir", "high-availability.storageDir"):
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


@pytest.mark.parametrize("path, command", [
    (DOCKERFILE, "docker build -f docker/Dockerfile -t rtm-flink:0.1.0 ."),
    (COMPOSE, "docker compose -f docker/compose.yaml up -d --build"),
    (FLINK_DEPLOYMENT, "kubectl apply -f docker/k8s/flinkdeployment.yaml"),
])
def test_deploy_files_say_in_their_header_how_to_run_them(path, command):
    header = path.read_text().split("\n\n# ---")[0].split("\napiVersion:")[0]

    assert command in header
