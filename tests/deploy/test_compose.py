"""docker-compose.yml cannot run here (no Docker engine), so check its wiring: every INKLOOP_* it sets is a real,
valid setting, every service has a health check, and the pieces point at each other consistently."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from inkloop.settings import known_variables, load_settings

ROOT = Path(__file__).resolve().parents[2]
_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _interpolate(value: str) -> str:
    """Resolve ${X:-default} to its default and ${X:?message} to a placeholder, as with an .env of examples."""

    def replace(match: re.Match[str]) -> str:
        if match["op"] and match["op"].endswith("-"):
            return match["arg"]
        return f"example-{match['name'].lower()}"

    return _INTERPOLATION.sub(replace, value)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: _interpolate(str(v)) for k, v in env.items()}


def test_expected_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= {
        "postgres",
        "labelstudio",
        "prefect-server",
        "prefect-worker",
        "api",
        "flows",
        "drift-ui",
    }


def test_the_drift_ui_has_no_login_so_it_is_published_on_loopback_only(compose: dict[str, Any]) -> None:
    service = compose["services"]["drift-ui"]
    assert service["ports"] == ["127.0.0.1:8001:8001"]
    assert service["command"][:3] == ["inkloop", "drift", "ui"]
    assert "inkloop-data:/var/lib/inkloop" in service["volumes"]  # the workspace the drift flow writes


def test_every_service_has_a_health_check(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        check = service.get("healthcheck")
        assert check and check.get("test"), f"service {name} has no health check"
        assert not check.get("disable"), f"service {name} disables its health check"


def test_inkloop_variables_are_real_settings_with_valid_values(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = 0
    for name, service in compose["services"].items():
        env = {k: v for k, v in _environment(service).items() if k.startswith("INKLOOP_")}
        unknown = set(env) - known_variables()
        assert not unknown, f"service {name} sets variables that are not settings: {sorted(unknown)}"
        if not env:
            continue
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = load_settings()  # raises SettingsError on any malformed value
        assert not settings.is_sqlite, f"service {name} would use SQLite at scale"
        checked += 1
    assert checked >= 2  # the API and the worker at least


def test_label_studio_serves_files_from_the_store(compose: dict[str, Any]) -> None:
    services = compose["services"]
    store = _environment(services["api"])["INKLOOP_STORE_URL"]
    assert _environment(services["labelstudio"])["LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"] == store
    token = _environment(services["api"])["INKLOOP_LABEL_STUDIO_TOKEN"]
    assert _environment(services["labelstudio"])["LABEL_STUDIO_USER_TOKEN"] == token


def test_dependencies_exist_and_wait_for_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            assert condition == {"condition": "service_healthy"}, f"{name} does not wait for {dependency}"


def test_built_services_use_the_project_dockerfile(compose: dict[str, Any]) -> None:
    built = [s for s in compose["services"].values() if "build" in s]
    assert built
    assert (ROOT / "Dockerfile").is_file()
    for volume in compose["services"]["postgres"]["volumes"]:
        source = volume.split(":", 1)[0]
        if source.startswith("./"):
            assert (ROOT / source).is_file(), f"postgres mounts missing file {source}"


def test_label_studio_is_the_version_inkloop_pins(compose: dict[str, Any]) -> None:
    from devtools.labelstudio import LABEL_STUDIO_VERSION

    image = compose["services"]["labelstudio"]["image"]
    assert image == f"heartexlabs/label-studio:{LABEL_STUDIO_VERSION}"


# A published port is reachable by anyone who reaches the host: each one must ask for credentials from .env, or
# be bound to the host's loopback. `api` is the product's public endpoint (POST /v1/predict), open by design.
CREDENTIALS = {
    "labelstudio": ("LABEL_STUDIO_PASSWORD", "its own login"),
    "prefect-server": ("PREFECT_SERVER_API_AUTH_STRING", "basic authentication"),
}


def test_every_published_ui_asks_for_credentials_or_listens_on_loopback_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports") or []:
            if str(port).startswith("127.0.0.1:") or name == "api":
                continue
            assert name in CREDENTIALS, f"service {name} publishes {port} to everyone without credentials"
            variable, _ = CREDENTIALS[name]
            raw = service["environment"][variable]
            assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", raw), f"{name}: {variable} must come from .env, required"


def test_prefect_clients_send_the_servers_credentials(compose: dict[str, Any]) -> None:
    services = compose["services"]
    server_auth = services["prefect-server"]["environment"]["PREFECT_SERVER_API_AUTH_STRING"]
    for name, service in services.items():
        env = service.get("environment") or {}
        if "PREFECT_API_URL" in env:
            assert env.get("PREFECT_API_AUTH_STRING") == server_auth, f"{name} talks to Prefect without credentials"
    example = (ROOT / ".env.example").read_text()
    assert re.search(r"^PREFECT_AUTH=\w+:\S+$", example, re.MULTILINE)


def test_the_gpu_worker_takes_retraining_from_the_pool_the_env_example_names(compose: dict[str, Any]) -> None:
    worker = compose["services"]["prefect-worker-gpu"]
    assert worker["profiles"] == ["gpu"]
    command = worker["command"]
    pool = command[command.index("--pool") + 1]
    assert compose["services"]["prefect-worker"]["command"][command.index("--pool") + 1] != pool  # its own pool
    example = (ROOT / ".env.example").read_text()
    assert f"# INKLOOP_RETRAIN_POOL={pool}" in example.splitlines()
    # The flows service hands retrain to that pool when .env sets the variable.
    assert "INKLOOP_RETRAIN_POOL" in compose["services"]["flows"]["environment"]
    assert load_settings(retrain_pool=pool).retrain_pool == pool
