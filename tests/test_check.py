"""`alertbridge check`: every problem of a config file at once, every template compiled, each built-in
template's sample payload rendered with the integration's settings; non-zero exit on any problem."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from alertbridge.check import SAMPLES_DIR, check_file, sample
from alertbridge.rendering import builtin_template_names
from tests.test_cli import cli_env

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def integration(name: str, template: str, auth: str = 'tokens = ["token-0123456789"]') -> str:
    return f"""
[[integrations]]
name = "{name}"
template = "{template}"
{auth}
[integrations.target]
region = "eu"
api_key = "key-1"
"""


AUTH = {
    "sentry": '[integrations.signature]\nkind = "sentry"\nsecret = "sentry-secret-123"',
    "sns_cloudwatch": '[integrations.signature]\nkind = "sns"',
}


def every_builtin() -> str:
    parts = []
    for name in builtin_template_names():
        auth = AUTH.get(name, 'tokens = ["token-0123456789"]')
        if auth.startswith("[integrations.signature]"):  # a sub-table goes after the keys, before [target]
            parts.append(integration(name, name, "").replace("[integrations.target]", auth + "\n[integrations.target]"))
        else:
            parts.append(integration(name, name, auth))
    return "\n".join(parts)


def test_every_builtin_template_ships_a_sample_that_renders(tmp_path: Path) -> None:
    names = builtin_template_names()
    assert len(names) == 8
    for name in names:
        found = sample(name)
        assert found is not None, name
    # The samples are the first fixture of each source (kept in step with the tests' copies).
    assert json.loads((SAMPLES_DIR / "alertmanager.json").read_bytes()) == json.loads(
        (FIXTURES / "alertmanager" / "01_firing_two_alerts.json").read_bytes()
    )
    config = tmp_path / "all.toml"
    config.write_text(every_builtin())
    result = check_file(config, {})
    assert result.problems == []
    assert (result.integrations, result.templates, result.samples) == (8, 8, 8)
    assert (
        result.summary(config)
        == f"{config}: OK: 8 integration(s), 8 template(s) compiled, 8 built-in sample(s) rendered"
    )


def test_every_problem_at_once(tmp_path: Path) -> None:
    (tmp_path / "broken.j2").write_text(
        '[\n  {"action": "create",\n   "alias": {{ payload.x | tojson }}\n{% if %}\n]\n'
    )
    (tmp_path / "fine.j2").write_text('{"action": "create", "alias": {{ payload.alias | tojson }}}')
    config = tmp_path / "alertbridge.toml"
    config.write_text(
        "[server]\nport = 0\n[rendering]\nmax_events = 1\n"
        + integration("am", "alertmanagr")
        + integration("gr", "templates/grafana.j2")
        + integration("own", "broken.j2")
        + integration("fine", "fine.j2")
        + integration("am2", "alertmanager")  # its sample has two alerts: more than max_events
        + integration("bad", "generic", 'tokens = ["short"]')
    )
    result = check_file(config, {"ALERTBRIDGE_DELIVERY_MAX_IN_FLIGHT": "many"})
    names = ", ".join(builtin_template_names())
    assert result.problems == [
        f"{config}: server.port: must be between 1 and 65535 (got 0)",
        "environment: ALERTBRIDGE_DELIVERY_MAX_IN_FLIGHT (delivery.max_in_flight): must be an integer (got 'many')",
        f"{config}: integrations[5].tokens[0]: must be at least 8 characters (got 5)",
        f"{config}: integrations[0].template: no built-in template named 'alertmanagr'; did you mean 'alertmanager'? "
        f"(built-in templates: {names})",
        f"{config}: integrations[1].template: template file '{tmp_path}/templates/grafana.j2' not found; did you mean "
        f"the built-in template 'grafana' (template = \"grafana\")? (built-in templates: {names})",
        f"{config}: integrations[2].template: {tmp_path}/broken.j2:4: syntax error: Expected an expression, got "
        "'end of statement block'",
        f"{config}: integrations[4] (am2): the sample payload of built-in template 'alertmanager' "
        f"({SAMPLES_DIR}/alertmanager.json) gives template_error: the template produced 2 events; the limit is 1",
    ]
    assert (result.integrations, result.templates, result.samples) == (6, 3, 0)  # "bad" compiles, is not rendered


def test_a_builtin_syntax_error_names_the_template_and_line(tmp_path: Path) -> None:
    """(Built-ins compile; a file template next to the config stands in for one with a broken line 2.)"""
    (tmp_path / "t.j2").write_text("{% for x in payload %}\n{{ x }\n{% endfor %}\n")
    config = tmp_path / "c.toml"
    config.write_text(integration("t", "t.j2"))
    [problem] = check_file(config, {}).problems
    assert problem.startswith(f"{config}: integrations[0].template: {tmp_path}/t.j2:2: syntax error: ")


def run_check(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alertbridge.cli", "check", *args],
        env=cli_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_command_exits_non_zero_on_any_problem(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(integration("am", "alertmanager"))
    r = run_check("--config", str(good), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == f"{good}: OK: 1 integration(s), 1 template(s) compiled, 1 built-in sample(s) rendered\n"

    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 0\n" + integration("am", "alertmanger"))
    r = run_check("-c", str(bad), cwd=tmp_path)
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert len(lines) == 3 and "Traceback" not in r.stderr
    assert lines[0] == f"{bad}: server.port: must be between 1 and 65535 (got 0)"
    assert "did you mean 'alertmanager'?" in lines[1]
    assert lines[2].startswith(f"{bad}: FAILED: 2 problem(s)")

    r = run_check(cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("alertbridge: name the config file to check")
    r = run_check("-c", str(tmp_path / "missing.toml"), cwd=tmp_path)
    assert r.returncode == 1 and r.stdout.startswith(f"{tmp_path / 'missing.toml'}: config file not found")
