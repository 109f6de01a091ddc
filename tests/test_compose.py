"""docker-compose.yml only runs commands that exist, configured by environment."""

from pathlib import Path

import yaml
from click.testing import CliRunner

from app.cli import main

from .conftest import ROOT


def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def seedgrid_commands(command):
    """The `seedgrid ...` invocations in a service command (list form or `sh -c` string)."""
    if isinstance(command, list) and command[:1] == ["seedgrid"]:
        return [command[1:]]
    if isinstance(command, list) and command[:2] == ["sh", "-c"]:
        return [part.split()[1:] for part in command[2].split("&&") if part.split()[:1] == ["seedgrid"]]
    return []


def test_every_seedgrid_command_in_compose_exists():
    found = 0
    for name, service in compose()["services"].items():
        for args in seedgrid_commands(service.get("command")):
            words = [a for a in args if not a.startswith("-") and not a.startswith("$")]
            path = []
            for w in words:  # the subcommand path: stop at the first option value
                path.append(w)
                if CliRunner().invoke(main, [*path, "--help"]).exit_code != 0:
                    path.pop()
                    break
            result = CliRunner().invoke(main, [*path, "--help"])
            assert result.exit_code == 0 and path, f"{name}: `seedgrid {' '.join(args)}` is not a command"
            for opt in (a.split("=")[0] for a in args if a.startswith("--")):
                assert opt in result.output, f"{name}: {opt} is not an option of `seedgrid {' '.join(path)}`"
            found += 1
    assert found >= 2


def test_production_has_every_role():
    services = compose()["services"]
    expected = {"redis", "postgres", "migrate", "miner-api", "gpu-worker", "validator-io", "validator-gpu",
                "validator-default", "beat", "dashboard", "gateway", "flower"}
    assert expected <= set(services)
    for name in ("gpu-worker", "validator-gpu"):
        [device] = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "--replicas" in services["gpu-worker"]["command"]
    for name in expected - {"redis", "postgres", "migrate", "flower"}:
        assert "migrate" in services[name]["depends_on"], f"{name} must wait for the migrations"
        assert services[name]["environment"]["SEEDGRID_DATABASE_URL"].startswith("postgresql")


def test_services_take_their_settings_from_the_environment():
    services = compose()["services"]
    env = services["gpu-worker"]["environment"]
    assert env["SEEDGRID_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "SEEDGRID_REDIS_PASSWORD" in env["SEEDGRID_REDIS_URL"]
    assert "--requirepass" in services["redis"]["command"]
    assert any("--basic-auth" in a for a in services["flower"]["command"])
    assert Path(ROOT / "Dockerfile").exists()
