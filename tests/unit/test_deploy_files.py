"""The deployment files hang together: compose, .env.example, Procfile, Dockerfile, and the health check they use."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

import click
import fakeredis
import pytest
import yaml
from click.testing import CliRunner

from sp_scheduler import keys
from sp_scheduler.cli import _Root, cli
from sp_scheduler.cli.health_cmd import ProcessNotSeen, check_beat, check_worker, health_cmd
from sp_scheduler.cli.state import CliState
from sp_scheduler.errors import ExitCode
from sp_scheduler.redact import redis_where
from sp_scheduler.settings import Settings
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
PROCFILE = ROOT / "Procfile"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# `${VAR}`, `${VAR:-default}`, `${VAR:?message}`, `$VAR`; `$$` is compose's escape for a literal `$`.
INTERPOLATION = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def resolve(args: list[str]) -> click.Command:
    """The click command `sp-scheduler ARGS...` would run; AssertionError if there is none."""
    assert args and args[0] == "sp-scheduler", f"not an sp-scheduler command: {args}"
    command: click.Command = cli
    path = ["sp-scheduler"]
    for word in args[1:]:
        if not isinstance(command, click.Group) or word.startswith("-"):
            break
        with click.Context(command) as ctx:
            sub = command.get_command(ctx, word)
        assert sub is not None, f"`{' '.join([*path, word])}` is not an sp-scheduler command" + (
            " (register health_cmd in sp_scheduler/cli/__init__.py)" if word == "health" else ""
        )
        command, path = sub, [*path, word]
    assert not isinstance(command, click.Group), f"`{' '.join(path)}` is a group, not a command"
    return command


def image_command(service: dict[str, Any]) -> list[str]:
    """What a service built from our image runs: the ENTRYPOINT `sp-scheduler` plus its command."""
    return ["sp-scheduler", *argv(service["command"])]


def env_example_keys() -> dict[str, str]:
    pairs = {}
    for raw in ENV_EXAMPLE.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env.example: not KEY=value: {line!r}"
            pairs[key.strip()] = value.strip()
    return pairs


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for raw in joined.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            out.append((instruction.upper(), rest.strip()))
    return out


# -- docker-compose.yml ----------------------------------------------------------------------------------


def test_compose_has_every_service_and_flower_only_under_its_profile(services: dict[str, dict[str, Any]]) -> None:
    assert {"postgres", "redis", "migrate", "beat", "worker", "flower"} <= set(services)
    assert services["flower"]["profiles"] == ["flower"]
    for name in ("postgres", "redis", "migrate", "beat", "worker"):
        assert "profiles" not in services[name], f"{name} must start with a plain `docker compose up`"


def test_beat_and_worker_start_after_a_successful_migration(services: dict[str, dict[str, Any]]) -> None:
    for name in ("beat", "worker"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}
    migrate = services["migrate"]
    assert image_command(migrate) == ["sp-scheduler", "db", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"], f"{name} needs a healthcheck for service_healthy"


def test_beat_and_workers_scale_without_clashes(services: dict[str, dict[str, Any]]) -> None:
    for name in ("beat", "worker"):
        service = services[name]
        assert "container_name" not in service, f"{name}: a fixed name breaks --scale"
        assert "ports" not in service, f"{name}: host ports clash between replicas"
        assert service["restart"] == "unless-stopped"
        assert "./services:/app/services:ro" in service["volumes"], f"{name}: config edits must reach it"
    assert image_command(services["beat"]) == ["sp-scheduler", "beat"]
    assert image_command(services["worker"])[:2] == ["sp-scheduler", "worker"]


def test_redis_keeps_queues_and_schedule(services: dict[str, dict[str, Any]]) -> None:
    command = argv(services["redis"]["command"])
    assert command[0] == "redis-server"
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"


def test_data_lives_in_declared_named_volumes(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    declared = set(compose["volumes"])
    assert any(v.startswith("postgres-data:/var/lib/postgresql") for v in services["postgres"]["volumes"])
    assert any(v.startswith("redis-data:/data") for v in services["redis"]["volumes"])
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source!r} is not declared at the top level"


def test_every_variable_is_documented_and_no_secret_is_committed(services: dict[str, dict[str, Any]]) -> None:
    used = {a or b for a, b in INTERPOLATION.findall(COMPOSE.read_text())}
    documented = env_example_keys()
    assert used, "compose should take its settings from the environment"
    assert used <= set(documented), f"undocumented in .env.example: {sorted(used - set(documented))}"
    for key, value in documented.items():
        if any(word in key for word in ("PASSWORD", "AUTH", "SECRET", "TOKEN")):
            assert value == "", f".env.example must not carry a value for {key}"
    # The password is required (compose stops with the message) rather than defaulted.
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    for name in ("migrate", "beat", "worker"):
        env = services[name]["environment"]
        assert {"SP_DATABASE_URL", "SP_REDIS_URL", "SP_CONFIG", "SP_PROFILE", "SP_LOG_FORMAT"} <= set(env)
        # The URL is not a secret: no `user:password@` in its default; the password comes as PGPASSWORD.
        assert not re.search(r"//[^/@]*:[^/@]*@", env["SP_DATABASE_URL"])
        assert env["PGPASSWORD"].startswith("${POSTGRES_PASSWORD:?")


# Settings only `sp-scheduler dev` reads: they have no meaning in a container.
DEV_ONLY_VARIABLES = {"SP_DEV_DIR"}
# Settings only the dashboard (`sp-scheduler web`, compose service `web`) reads.
DASHBOARD_PREFIX = "SP_WEB_"


def test_compose_passes_every_setting_the_code_reads(services: dict[str, dict[str, Any]]) -> None:
    """A variable the code reads but compose does not pass (SP_DISCORD_WEBHOOK_URL was one) cannot be set there."""
    read = set()
    for path in [*ROOT.joinpath("sp_scheduler").rglob("*.py"), *ROOT.joinpath("workers").rglob("*.py")]:
        read |= set(re.findall(r"[\"'](SP_[A-Z0-9_]+)[\"']", path.read_text()))
    assert "SP_DISCORD_WEBHOOK_URL" in read, "the scan should find the settings the code reads"
    dashboard = {name for name in read if name.startswith(DASHBOARD_PREFIX)}
    for name in ("beat", "worker"):
        missing = read - DEV_ONLY_VARIABLES - dashboard - set(services[name]["environment"])
        assert not missing, f"compose service {name!r} does not pass {sorted(missing)}"
    missing = read - DEV_ONLY_VARIABLES - set(services["web"]["environment"])
    assert not missing, f"compose service 'web' does not pass {sorted(missing)}"


def test_the_dashboard_is_published_on_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    web = services["web"]
    assert image_command(web)[:2] == ["sp-scheduler", "web"]
    resolve(image_command(web))
    assert all(port.startswith("127.0.0.1:") for port in web["ports"])
    assert web["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


def test_compose_healthchecks_run_real_commands(services: dict[str, dict[str, Any]]) -> None:
    for name, role in (("beat", "beat"), ("worker", "worker")):
        test = services[name]["healthcheck"]["test"]
        assert test[0] == "CMD"
        assert test[1:] == ["sp-scheduler", "health", "--role", role]
        resolve(test[1:])
    assert services["migrate"]["healthcheck"] == {"disable": True}


def compose_command() -> list[str] | None:
    """`docker compose` (the v2 plugin) if installed, else the standalone `docker-compose`."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    """`docker compose config -q` (or `docker-compose config -q`): parses and interpolates, no daemon needed.

    scripts/setup installs Debian's docker-compose where it can; on a machine with neither, the
    structural checks above (PyYAML) are all the validation there is: say so instead of skipping.
    """
    command = compose_command()
    if command is None:
        warnings.warn("no docker compose: docker-compose.yml was validated with PyYAML only", stacklevel=1)
        return
    env = {
        "PATH": os.pathsep.join([str(Path(command[0]).parent), "/usr/bin", "/bin"]),
        "HOME": str(tmp_path),
        "POSTGRES_PASSWORD": "only-for-this-check",
    }
    result = subprocess.run(
        [*command, "-f", str(COMPOSE), "--profile", "flower", "config", "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# -- Procfile -----------------------------------------------------------------------------------------


def procfile() -> dict[str, str]:
    lines = [line for line in PROCFILE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return {name.strip(): command.strip() for name, _, command in (line.partition(":") for line in lines)}


def test_procfile_lines_are_real_sp_scheduler_commands() -> None:
    # `exec`: Procfile runners start `sh -c LINE`; exec makes the shell become the process, so the
    # runner's SIGTERM and exit-code tracking reach sp-scheduler itself (dash does not exec on its own).
    processes = procfile()
    assert processes["release"] == "exec sp-scheduler db migrate"
    assert processes["beat"] == "exec sp-scheduler beat"
    assert processes["worker"] == "exec sp-scheduler worker"
    assert processes["web"] == "exec sp-scheduler web"
    for command in processes.values():
        words = shlex.split(command)
        assert words[0] == "exec"
        resolve(words[1:])


def test_resolve_rejects_what_is_not_a_command() -> None:
    with pytest.raises(AssertionError, match="not an sp-scheduler command"):
        resolve(["sp-scheduler", "jobs", "explode"])
    with pytest.raises(AssertionError, match="is a group"):
        resolve(["sp-scheduler", "db"])


# -- Dockerfile -----------------------------------------------------------------------------------------


def test_dockerfile_runs_sp_scheduler_as_a_non_root_user_with_a_healthcheck() -> None:
    instructions = dockerfile_instructions()
    names = [name for name, _ in instructions]
    base = next(args for name, args in instructions if name == "FROM")
    arg_version = next(args for name, args in instructions if name == "ARG" and args.startswith("PYTHON_VERSION="))
    version = arg_version.split("=", 1)[1]
    assert base == "python:${PYTHON_VERSION}-slim" and tuple(map(int, version.split("."))) >= (3, 11)

    users = [args for name, args in instructions if name == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert names.index("USER") < names.index("ENTRYPOINT")

    (entrypoint,) = [args for name, args in instructions if name == "ENTRYPOINT"]
    assert yaml.safe_load(entrypoint) == ["sp-scheduler"]

    (healthcheck,) = [args for name, args in instructions if name == "HEALTHCHECK"]
    options, _, command = healthcheck.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    resolve(yaml.safe_load(command))


def test_dockerfile_installs_dependencies_before_the_source_for_layer_caching() -> None:
    instructions = dockerfile_instructions()
    steps = [f"{name} {args}" for name, args in instructions]
    deps = next(i for i, step in enumerate(steps) if step.startswith("COPY pyproject.toml"))
    installs = [i for i, step in enumerate(steps) if step.startswith("RUN") and "pip install" in step]
    assert len(installs) == 2
    assert deps < installs[0] < installs[1]
    assert "-r " in steps[installs[0]]  # the dependency list only
    assert "--no-deps" in steps[installs[1]]  # the project, on top
    # The source reaches the build only after the dependency layer.
    for i, step in enumerate(steps):
        if step.startswith("COPY") and ("sp_scheduler" in step or "workers" in step):
            assert i > installs[0]


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip()}
    assert {".env", ".venv", ".git", "tests"} <= ignored
    for needed in ("pyproject.toml", "README.md", "sp_scheduler", "workers", "services"):
        assert needed not in ignored


# -- sp-scheduler health (the check both use) --------------------------------------------------------


def test_health_fails_fast_with_exit_69_when_postgres_does_not_answer() -> None:
    # The root group maps errors to exit codes; a bare one keeps this test independent of registration.
    root = _Root("sp-scheduler", commands=[health_cmd])
    settings = Settings.from_env({}, database_url=f"postgresql://nobody@127.0.0.1:{free_port()}/x")
    result = CliRunner().invoke(root, ["health", "--role", "worker"], obj=CliState(settings))
    assert result.exit_code == ExitCode.UNAVAILABLE, result.output
    assert "cannot reach Postgres" in result.output


def test_redis_where_never_shows_the_password() -> None:
    assert redis_where("redis://:s3cret@cache.internal:6380/2") == "cache.internal:6380/2"
    assert redis_where("redis://redis") == "redis:6379/0"


@pytest.fixture
def redis_client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


def test_worker_health_needs_a_fresh_heartbeat_from_this_host(redis_client: fakeredis.FakeRedis) -> None:
    now = 1_000_000.0
    redis_client.zadd(keys.WORKERS_SEEN, {"celery@box-a": now - 5, "w1@box-b": now - 100, "celery@box-c": now})
    assert check_worker(redis_client, "box-a", 30, now) == "worker celery@box-a seen 5 s ago"
    with pytest.raises(ProcessNotSeen, match="no worker on host 'box-b' has reported in the last 30 s"):
        check_worker(redis_client, "box-b", 30, now)
    with pytest.raises(ProcessNotSeen):
        check_worker(redis_client, "box", 30, now)  # a prefix of another host is not this host


def test_beat_health_accepts_leader_and_standby(redis_client: fakeredis.FakeRedis) -> None:
    now = 1_000_000.0
    redis_client.zadd(keys.BEAT_INSTANCES, {"box-a:7:abc": now - 1, "box-b:9:def": now - 2, "box-c:3:x": now - 99})
    redis_client.hset(keys.BEAT_LEADER, mapping={"id": "box-a:7:abc"})
    assert check_beat(redis_client, "box-a", 30, now) == "beat box-a:7:abc leads, ticked 1 s ago"
    assert check_beat(redis_client, "box-b", 30, now) == "beat box-b:9:def stands by, ticked 2 s ago"
    with pytest.raises(ProcessNotSeen, match="no beat on host 'box-c'"):
        check_beat(redis_client, "box-c", 30, now)


def test_docs_stand_alone_every_cited_doc_exists() -> None:
    """The repository's own files cite only docs it contains (docs/configuration.md was once missing)."""
    sources = [
        ROOT / "README.md",
        *ROOT.joinpath("docs").glob("*.md"),
        *ROOT.joinpath("services").rglob("*.yaml"),
        *ROOT.joinpath("sp_scheduler").rglob("*.py"),
        *ROOT.joinpath("workers").rglob("*.py"),
    ]
    for path in sources:
        text = path.read_text()
        assert "DESIGN.md" not in text, f"{path.relative_to(ROOT)} cites DESIGN.md, which the repository lacks"
        for cited in re.findall(r"\bdocs/([a-z0-9_-]+\.md)", text):
            assert (ROOT / "docs" / cited).exists(), f"{path.relative_to(ROOT)} cites docs/{cited}, which is missing"
