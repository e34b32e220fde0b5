"""docs/operations/ is checked, not just written: the alerting rules pass `promtool check rules` (and fire in
`promtool test rules`), every metric the rules and the dashboard name is scraped from a running bridge after
real traffic, and the systemd units pass `systemd-analyze verify` and a lint."""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.emulator_server import RunningEmulator, run_emulator
from tests.harness import API_KEY, TOKEN, fixture_bytes, make_config, run_bridge, wait_for

ROOT = Path(__file__).resolve().parent.parent
OPS = ROOT / "docs" / "operations"
RULES = OPS / "alerts.yml"
DASHBOARD = OPS / "dashboard.json"
UNITS = sorted((OPS / "systemd").glob("*.service"))
# Series Prometheus makes itself (not scraped from alertbridge).
PROMETHEUS_OWN = {"up"}
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "rate", "increase", "delta", "histogram_quantile",
    "and", "or", "unless", "on", "ignoring", "group_left", "group_right", "bool", "offset", "label_values",
}  # fmt: skip


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: `./dev test` installs Debian's prometheus package (apt-get) when run as root"
    return found


def test_alerting_rules_pass_promtool() -> None:
    r = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


RULE_TESTS = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'alertbridge_delivery_attempts_total{{integration="am",action="create",outcome="config_error",instance="a"}}'
        values: '0 0 0 1 2 3 4 5 6 7 8 9 10'
      - series: 'alertbridge_outbox_rows{{status="dead",instance="a"}}'
        values: '0 0 0 0 0 1 1 1 1 1 1 1 1'
      - series: 'alertbridge_outbox_rows{{status="dead",instance="b"}}'
        values: '0 0 0 0 0 1 1 1 1 1 1 1 1'
      - series: 'alertbridge_outbox_oldest_pending_seconds{{instance="a"}}'
        values: '0+120x12'
      - series: 'alertbridge_webhooks_received_total{{integration="am",status="template_error",instance="a"}}'
        values: '0 0 0 0 0 0 0 0 0 0 1 1 1'
      - series: 'up{{job="alertbridge",instance="a"}}'
        values: '1 1 1 1 1 0 0 0 0 0 0 0 0'
    alert_rule_test:
      - eval_time: 6m
        alertname: AlertbridgeOpsgenieUnauthorized
        exp_alerts:
          - exp_labels: {{severity: critical, integration: am}}
      - eval_time: 8m
        alertname: AlertbridgeDeadLetters
        exp_alerts:
          - exp_labels: {{severity: warning}}
      - eval_time: 2m
        alertname: AlertbridgeOldestPendingTooOld
        exp_alerts: []
      - eval_time: 12m
        alertname: AlertbridgeOldestPendingTooOld
        exp_alerts:
          - exp_labels: {{severity: critical}}
      - eval_time: 12m
        alertname: AlertbridgeTemplateErrorsRising
        exp_alerts:
          - exp_labels: {{severity: warning, integration: am}}
      - eval_time: 8m
        alertname: AlertbridgeDown
        exp_alerts:
          - exp_labels: {{severity: critical, job: alertbridge, instance: a}}
"""


def without_annotations(rules: str) -> str:
    """The rules file without its `annotations:` blocks (promtool's unit tests would compare them word for word;
    their templates are checked by `promtool check rules`)."""
    out: list[str] = []
    skip_deeper_than: int | None = None
    for line in rules.splitlines():
        indent = len(line) - len(line.lstrip())
        if skip_deeper_than is not None and (not line.strip() or indent > skip_deeper_than):
            continue
        skip_deeper_than = None
        if line.strip() == "annotations:":
            skip_deeper_than = indent
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def test_alerting_rules_fire_when_they_should(tmp_path: Path) -> None:
    rules = tmp_path / "alerts.yml"
    rules.write_text(without_annotations(RULES.read_text(encoding="utf-8")))
    assert "annotations" not in rules.read_text() and rules.read_text().count("- alert:") == RULES.read_text().count(
        "- alert:"
    )
    tests = tmp_path / "alerts_test.yml"
    tests.write_text(RULE_TESTS.format(rules=json.dumps(str(rules))))
    r = subprocess.run([promtool(), "test", "rules", str(tests)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def expressions() -> dict[str, list[str]]:
    rules = RULES.read_text(encoding="utf-8")
    # Every `expr:` of the rules file: one line, or a `|` block of more indented lines.
    found: list[str] = []
    lines = rules.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)expr:\s*(.*)$", line)
        if not m:
            continue
        if m.group(2).strip() in ("|", ">"):
            block = []
            for nxt in lines[i + 1 :]:
                if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= len(m.group(1)):
                    break
                block.append(nxt.strip())
            found.append(" ".join(block))
        else:
            found.append(m.group(2))
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v.get("definition")]
    return {"alerts.yml": found, "dashboard.json": exprs}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (not functions, keywords, label names or values, durations)."""
    text = re.sub(r"label_values\(\s*([^,)]+)(,[^)]*)?\)", r"\1", expr)  # Grafana's: metric, label
    text = re.sub(r'"[^"]*"', '""', text)  # label values
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)  # grouping labels
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text)) - PROMQL_WORDS
    return {n for n in names if not n.startswith("__") and not re.fullmatch(r"\d+\w*", n)}


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    with run_emulator(api_keys=[API_KEY], processing_delay=0.0) as emu:
        yield emu


def test_every_expression_names_a_metric_the_bridge_exposes(
    emulator: RunningEmulator, database_url: str, db: psycopg.Connection
) -> None:
    with run_bridge(make_config(emulator.base_url), database_url) as bridge:
        firing = fixture_bytes("alertmanager/01_firing_two_alerts.json")
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.post(f"{bridge.base_url}/webhooks/alertmanager", content=firing, headers=auth).status_code == 202
        wait_for(
            lambda: db.execute("SELECT count(*) FROM outbox WHERE status = 'delivered'").fetchone() == (2,),
            what="deliveries",
        )
        text = httpx.get(f"{bridge.base_url}/metrics").text
    exposed = set()
    for family in text_string_to_metric_families(text):
        exposed |= {s.name for s in family.samples}  # histograms: _bucket, _sum, _count; counters: _total
    checked = 0
    for where, exprs in expressions().items():
        assert exprs, where
        for expr in exprs:
            names = metric_names(expr)
            assert names, (where, expr)
            unknown = names - exposed - PROMETHEUS_OWN
            assert not unknown, f"{where}: {expr!r} names {sorted(unknown)}, which /metrics does not expose"
            checked += len(names)
    assert checked > 20
    rules = RULES.read_text()
    for must in (
        "up{",
        "alertbridge_outbox_rows",
        "alertbridge_outbox_oldest_pending_seconds",
        'outcome="config_error"',
    ):
        assert must in rules


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (status) (rate(alertbridge_webhooks_received_total{integration=~"$integration"}[$__rate_interval]))',
            {"alertbridge_webhooks_received_total"},
        ),
        (
            "histogram_quantile(0.95, sum by (le, action) (rate(alertbridge_delivery_seconds_bucket[5m])))",
            {"alertbridge_delivery_seconds_bucket"},
        ),
        ('up{job="alertbridge"} == 0', {"up"}),
        ("label_values(alertbridge_webhooks_received_total, integration)", {"alertbridge_webhooks_received_total"}),
        (
            "alertbridge_database_up == 0 or alertbridge_worker_loop_age_seconds > 120",
            {"alertbridge_database_up", "alertbridge_worker_loop_age_seconds"},
        ),
        ('delta(max(alertbridge_outbox_rows{status="dead"})[15m:1m]) > 0', {"alertbridge_outbox_rows"}),
    ],
)
def test_metric_names_of_an_expression(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_the_dashboard_is_grafana_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["title"] and dashboard["uid"] and dashboard["schemaVersion"] >= 30
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) >= 10
    for p in dashboard["panels"]:
        assert p["datasource"]["uid"] == "${datasource}" and p["targets"], p["title"]
        grid = p["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, p["title"]


# --- systemd units --------------------------------------------------------------------------------------------

KNOWN = {
    "Unit": {"Description", "Documentation", "Wants", "Requires", "After", "Before"},
    "Service": {
        "Type", "User", "Group", "EnvironmentFile", "Environment", "ExecStart", "ExecStartPre", "KillSignal",
        "TimeoutStopSec", "Restart", "RestartSec", "NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp",
        "PrivateDevices", "ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups",
        "RestrictAddressFamilies", "RestrictNamespaces", "LockPersonality", "SystemCallArchitectures",
        "RuntimeDirectory",
    },
    "Install": {"WantedBy"},
}  # fmt: skip


def read_unit(path: Path) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    unit.read_string(path.read_text(encoding="utf-8"))
    return unit


@pytest.mark.parametrize("path", UNITS, ids=[p.name for p in UNITS])
def test_unit_lint(path: Path) -> None:
    """What systemd would warn about, checked without systemd; and that the command line is one we accept."""
    unit = read_unit(path)
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    for section in unit.sections():
        unknown = set(unit[section]) - KNOWN[section]
        assert not unknown, f"{path.name} [{section}]: unknown keys {unknown}"
    service = unit["Service"]
    assert service["Type"] in ("exec", "simple", "notify")
    assert service["KillSignal"] == "SIGTERM" and service["Restart"] == "on-failure"
    assert service["User"] != "root" and service["NoNewPrivileges"] == "yes"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    command = service["ExecStart"].split()
    assert command[0].startswith("/") and command[0].endswith("/alertbridge")
    # The arguments parse with the real command line parser.
    from alertbridge.cli import parser

    args = parser().parse_args(command[1:])
    assert args.command in ("serve", "worker") and args.no_migrate
    if args.command == "worker":
        assert args.metrics_port and args.metrics_host == "127.0.0.1"


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` (systemd is installed by `./dev test` when missing) with the ExecStart binary
    pointed at this venv's `alertbridge` (verify insists that it exists)."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: `./dev test` installs Debian's systemd package (apt-get) as root"
    alertbridge = Path(sys.executable).parent / "alertbridge"
    assert alertbridge.exists()
    copies = []
    for path in UNITS:
        copy = tmp_path / path.name
        copy.write_text(path.read_text().replace("/opt/alertbridge/venv/bin/alertbridge", str(alertbridge)))
        copies.append(str(copy))
    r = subprocess.run([analyze, "verify", *copies], capture_output=True, text=True, timeout=120)
    problems = [line for line in (r.stdout + r.stderr).splitlines() if line.strip()]
    assert r.returncode == 0 and problems == [], "\n".join(problems)
