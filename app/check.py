"""`alertbridge check`: everything wrong with a config file, at once, without starting anything (like
`amtool check-config`).

1. every error of the file (and of the ALERTBRIDGE_<SECTION>_<KEY> environment overrides), each naming its key;
2. every integration's template compiled: a missing built-in gets a "did you mean", a syntax error names the
   template file and line;
3. every integration that uses a built-in template renders that template's sample payload (shipped in the
   package, ``alertbridge/templates/samples/<name>.json``) through the same steps as a webhook (render, field
   limits, the plan) with the integration's own settings: priorities, defaults, render limits.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from alertbridge.config import Config, ConfigError, TemplateRef, inspect_config_file
from alertbridge.core.plan import plan
from alertbridge.ingest import Inbound, Route, prepare
from alertbridge.models import InboundStatus
from alertbridge.rendering import (
    BUILTIN_TEMPLATE_DIR,
    TemplateError,
    builtin_template_names,
    compile_template,
    load_template_source,
)

SAMPLES_DIR = BUILTIN_TEMPLATE_DIR / "samples"


@dataclass
class CheckResult:
    problems: list[str] = field(default_factory=list)
    integrations: int = 0
    templates: int = 0  # compiled without error
    samples: int = 0  # built-in samples rendered without error

    def summary(self, path: str | Path) -> str:
        counts = (
            f"{self.integrations} integration(s), {self.templates} template(s) compiled, "
            f"{self.samples} built-in sample(s) rendered"
        )
        if self.problems:
            return f"{path}: FAILED: {len(self.problems)} problem(s); {counts}"
        return f"{path}: OK: {counts}"


def sample(template: str) -> tuple[bytes, dict[str, str]] | None:
    """The sample webhook of a built-in template: its body and, for sources whose templates read headers, the
    (lower-case) headers it came with."""
    body = SAMPLES_DIR / f"{template}.json"
    if not body.is_file():
        return None
    headers_file = SAMPLES_DIR / f"{template}.headers.json"
    headers = json.loads(headers_file.read_text("utf-8")) if headers_file.is_file() else {}
    return body.read_bytes(), {str(k).lower(): str(v) for k, v in headers.items()}


def _where(ref: str, base_dir: Path, line: int | None) -> str:
    """The template, as a user finds it: `path/to/file.j2:LINE`, or `built-in template 'x', line N`."""
    if ref in builtin_template_names():
        return f"built-in template {ref!r}" + (f", line {line}" if line else "")
    path = Path(ref).expanduser()
    path = path if path.is_absolute() else base_dir / path
    return f"{path}:{line}" if line else str(path)


def _compile(ref: TemplateRef, config: Config, result: CheckResult) -> bool:
    try:
        name, source = load_template_source(ref.ref, config.base_dir)
    except TemplateError as exc:
        result.problems.append(f"{config.source}: {ref.path}: {exc.message}")
        return False
    try:
        compile_template(source, name)
    except TemplateError as exc:
        where = _where(ref.ref, config.base_dir, exc.line)
        result.problems.append(f"{config.source}: {ref.path}: {where}: {exc.kind} error: {exc.message}")
        return False
    result.templates += 1
    return True


def _render_samples(config: Config, usable: dict[str, str], result: CheckResult) -> None:
    """`usable`: integration name -> its key path ("integrations[3]"), for integrations whose template compiled."""
    from alertbridge.main import build_bridge  # composition: kept out of the import of this module

    builtins = set(builtin_template_names())
    chosen = tuple(i for i in config.integrations if i.name in usable and i.template in builtins)
    if not chosen:
        return

    async def build() -> dict[str, Route]:
        import httpx

        async with httpx.AsyncClient() as http:  # SNS integrations want one; nothing is fetched here
            return build_bridge(replace(config, integrations=chosen), http=http).routes

    routes = asyncio.run(build())
    for integration in chosen:
        found = sample(integration.template)
        if found is None:
            continue
        body, headers = found
        route: Route = routes[integration.name]
        prepared = prepare(route, Inbound(body=body, content_type="application/json", headers=headers))
        where = f"{config.source}: {usable[integration.name]} ({integration.name})"
        if prepared.status != InboundStatus.PROCESSED:
            error = prepared.error or {}
            line = f" (template line {error['line']})" if error.get("line") else ""
            result.problems.append(
                f"{where}: the sample payload of built-in template {integration.template!r} "
                f"({SAMPLES_DIR / (integration.template + '.json')}) gives {prepared.status.value}: "
                f"{error.get('message', '')}{line}"
            )
            continue
        plan(prepared.events, {}, route.spec, datetime.now(UTC))
        result.samples += 1


def check_file(path: str | Path, env: Mapping[str, str]) -> CheckResult:
    result = CheckResult()
    try:
        report = inspect_config_file(path, env)
    except ConfigError as exc:  # the file cannot be read
        result.problems.extend(exc.errors)
        return result
    result.problems.extend(report.errors)
    result.integrations = report.integration_tables
    usable = {
        ref.integration: ref.path.removesuffix(".template")
        for ref in report.templates
        if _compile(ref, report.config, result) and ref.integration
    }
    _render_samples(report.config, usable, result)
    return result
