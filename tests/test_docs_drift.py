"""The partner and operator docs stay true to the code in what a machine can check: every relative link and
anchor between README.md and docs/*.md resolves, every ``apertur …`` command they show names a real command
with options it takes (a renamed flag in the code, or a typo in the docs, fails here), every error code in
the error tables of docs/api.md and docs/oauth.md is one the code can answer, docs/api.md's operations and scopes
are the API's, and the limits of docs/oauth-apps.md's field table are the ones enforced."""

from __future__ import annotations

import datetime as dt
import functools
import re
from pathlib import Path
from typing import Any

import pytest
import typer.main

from apertur.cli import app

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```.*?^```[ \t]*$", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: link texts and markup dropped, lower-cased, punctuation removed
    (``—`` included, so "Step 4 — exchange" is ``step-4--exchange``), spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[`*]", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    prose = FENCE.sub("", path.read_text())
    return {github_slug(m.group(1)) for m in re.finditer(r"^#{1,6}[ \t]+(.+?)[ \t]*$", prose, re.MULTILINE)}


def relative_links() -> list[tuple[Path, str]]:
    found = []
    for doc in DOCS:
        for link in LINK.findall(doc.read_text()):
            if not re.match(r"[a-z][a-z0-9+.-]*:", link):
                found.append((doc, link))
    return found


@pytest.mark.parametrize(("doc", "link"), relative_links(), ids=lambda v: v if isinstance(v, str) else v.name)
def test_relative_links_and_anchors_resolve(doc: Path, link: str) -> None:
    path, _, fragment = link.partition("#")
    target = (doc.parent / path).resolve() if path else doc
    assert target.exists(), f"{doc.name}: {link} points at a file that does not exist"
    if fragment and target.suffix == ".md":
        assert fragment in anchors(target), f"{doc.name}: {link}: {target.name} has no heading with that anchor"


def command_lines() -> list[tuple[str, str]]:
    """Each line of a fenced block, or inline code span, that runs ``apertur <subcommand> …``."""
    lines = []
    for doc in DOCS:
        text = doc.read_text()
        blocks = [block for block in FENCE.findall(text)]
        spans = re.findall(r"`(apertur [^`]+)`", FENCE.sub("", text))
        candidates = [line for block in blocks for line in block.splitlines()] + spans
        for line in candidates:
            line = re.sub(r"^\s*\$\s*", "", line).split("  #", 1)[0].split(" # ", 1)[0].strip()
            if re.match(r"apertur [a-z]", line):
                lines.append((doc.name, line))
    return lines


ROOT_COMMAND = typer.main.get_command(app)


def resolve(words: list[str]) -> tuple[Any, list[str]]:
    """The (sub)command the words name, and the words after it (typer carries its own click: duck-typed)."""
    command: Any = ROOT_COMMAND
    while hasattr(command, "commands") and words and words[0] in command.commands:
        command = command.commands[words.pop(0)]
    return command, words


@pytest.mark.parametrize(("doc", "line"), command_lines(), ids=lambda v: v)
def test_every_apertur_command_in_the_docs_exists_with_its_options(doc: str, line: str) -> None:
    command, rest = resolve(line.split()[1:])
    assert not hasattr(command, "commands"), f"{doc}: `{line}` names no command"
    taken = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", " ".join(rest)))
    assert named <= taken, f"{doc}: `{line}`: {sorted(named - taken)} not options of `{command.name}`"


def test_the_docs_show_apertur_commands() -> None:
    assert len(command_lines()) > 20
    assert len(relative_links()) > 20
    assert len(documented_error_codes()) > 15


def documented_error_codes() -> list[tuple[str, str]]:
    """The codes in the error tables of the API and OAuth docs (the rows with an HTTP status cell)."""
    codes = []
    for name in ("api.md", "oauth.md"):
        for row in (ROOT / "docs" / name).read_text().splitlines():
            cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
            if row.startswith("|") and any(re.fullmatch(r"[45]\d\d", cell) for cell in cells):
                # The code cell is the first that starts with one; later cells explain (parameter names, headers).
                cell = next(cell for cell in cells if cell.startswith("`"))
                codes += [(name, code) for code in re.findall(r"`([a-z]+(?:_[a-z]+)+)`", cell)]
    return sorted(set(codes))


@functools.cache
def code_literals() -> str:
    sources = (path for path in (ROOT / "apertur").rglob("*.py") if "tests" not in path.parts)
    return "\n".join(path.read_text() for path in sources)


@pytest.mark.parametrize(("doc", "code"), documented_error_codes(), ids=lambda v: v)
def test_every_documented_error_code_is_one_the_code_can_answer(doc: str, code: str) -> None:
    assert re.search(rf"[\"']{code}[\"']", code_literals()), f"{doc} documents `{code}`, which no code answers"


def test_every_setting_read_from_the_environment_is_in_the_readme() -> None:
    """An operator configures Apertur from the README's Configuration table alone."""
    settings_py = (ROOT / "apertur" / "config" / "settings.py").read_text()
    read = set(re.findall(r"(?:environ\.get|environ\[|_env_bool)\(?\s*[\"']([A-Z][A-Z0-9_]+)[\"']", settings_py))
    readme = (ROOT / "README.md").read_text()
    # The S3 variables are listed once as UPLOADS_S3_BUCKET (+ ..._ENDPOINT_URL, _REGION, ...).
    missing = {name for name in read if name not in readme and f"`_{name.removeprefix('UPLOADS_S3_')}`" not in readme}
    assert len(read) > 30
    assert not missing, f"settings.py reads {sorted(missing)} from the environment; README.md does not name them"


def _leaf_commands(command: Any, words: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    if hasattr(command, "commands"):
        return [leaf for name, sub in command.commands.items() for leaf in _leaf_commands(sub, (*words, name))]
    return [(" ".join(words), command)]


def readme_command_block() -> list[str]:
    section = (ROOT / "README.md").read_text().split("## The `apertur` command", 1)[1]
    return [line.split("  #", 1)[0].strip() for line in FENCE.findall(section)[0].splitlines()[1:-1]]


@pytest.mark.parametrize(
    ("name", "command"), _leaf_commands(ROOT_COMMAND), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_command_and_option_is_in_the_readme(name: str, command: Any) -> None:
    """The README's command list is complete: a new command, or a new option of one, is listed there too (the
    test above checks the other way, that every listed one exists)."""
    line = next((line for line in readme_command_block() if re.match(rf"apertur {name}(?: |$)", line)), None)
    assert line is not None, f"README.md's command list has no `apertur {name}`"
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", line))
    for param in command.params:
        if getattr(param, "hidden", False):
            continue  # internal (worker --child-of: the processes `worker --concurrency N` starts)
        flags = {opt for opt in (*param.opts, *param.secondary_opts) if opt.startswith("--")} - {"--help"}
        # An on/off pair (--schedule/--no-schedule) is documented by the one that is not the default.
        assert not flags or flags & named, f"README.md: `apertur {name}` does not list {'/'.join(sorted(flags))}"


def _site_routes() -> set[str]:
    """Every path the site serves, its parameters as :func:`_placeholders` writes them."""
    from django.urls import URLPattern, URLResolver, get_resolver

    def walk(patterns: list[Any], prefix: str) -> list[str]:
        out = []
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                out += walk(entry.url_patterns, route)
            elif isinstance(entry, URLPattern):
                out.append(route)
        return out

    return {_placeholders("/" + route.lstrip("^").rstrip("$")) for route in walk(get_resolver().url_patterns, "")}


def _placeholders(path: str) -> str:
    """Each ``<name>`` or ``{name}`` as ``*``; a route's ``<path:name>`` (any rest, slashes too) as ``**``."""
    return re.sub(r"<[^>]*>|\{[^}]*\}", "*", re.sub(r"<path:[^>]*>", "**", path))


#: Paths in the docs that are not this site's: the PayPal API and its local emulator (docs/payouts.md), files.
NOT_OURS = re.compile(r"/v1/|/emulator/|/usr/|/proc/")
#: Routes that exist only with DEBUG on (apertur/config/urls.py).
DEBUG_ONLY = {"/dev/mail/"}
SITE_PATH = re.compile(
    r"`(?:(?:GET|POST|PUT|PATCH|DELETE|HEAD) )?(/[\w./<>{}:-]*)[^`]*`|http://localhost:8000(/[^\s)>`\"'|]*)"
)


def site_paths() -> list[tuple[str, str]]:
    """The site's paths the docs show (code spans starting with ``/``, links to localhost:8000), but not
    performance.md's, which names the peer servers' paths."""
    found = set()
    for doc in DOCS:
        if doc.name == "performance.md":
            continue
        for match in SITE_PATH.finditer(doc.read_text()):
            path = re.split(r"[?#]", match.group(1) or match.group(2))[0]
            if path != "/" and not NOT_OURS.match(path) and path not in DEBUG_ONLY:
                found.add((doc.name, path))
    return sorted(found)


@pytest.mark.parametrize(("doc", "path"), site_paths(), ids=lambda v: v)
def test_every_path_the_docs_show_is_one_the_site_serves(doc: str, path: str) -> None:
    """A renamed URL, or a typo in the docs, fails here. docs/api.md shows the operations' paths under
    ``/api/v1``; a path may also be shown as the prefix of several (``/api/v1``, ``/u/``)."""
    routes = _site_routes()
    wanted = _placeholders(path)
    candidates = [wanted, f"/api/v1{wanted}"] if doc == "api.md" else [wanted]
    assert any(
        candidate in routes
        or any(route.startswith(candidate.rstrip("/") + "/") for route in routes)
        or any(route.endswith("**") and candidate.startswith(route[:-2]) for route in routes)
        for candidate in candidates
    ), f"{doc} shows {path}, which the site does not serve"


def test_the_docs_show_site_paths() -> None:
    assert len(site_paths()) > 40
    assert len(_site_routes()) > 50


def _make_run_dry(*variables: str) -> str:
    """What ``make run`` would run (``make -n``: nothing is started), with the README's variables."""
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", "-C", str(ROOT), "run", *variables],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_run_serves_on_the_ports_the_readme_says_can_be_chosen() -> None:
    """On a machine where 8000-8002 are taken, the README's `make run PORT=… SITE_PORT=… PAYPAL_PORT=…` moves
    every server it starts, and every address they give each other (the base URL in links and the partner
    site's SDK, the emulator's webhooks, PayPal's API base), off the default ports."""
    readme = (ROOT / "README.md").read_text()
    assert "make run PORT=8010 SITE_PORT=8011 PAYPAL_PORT=8012" in readme
    script = _make_run_dry("PORT=8330", "SITE_PORT=8331", "PAYPAL_PORT=8332")
    assert not re.findall(r"\b800[0-2]\b", script), script
    assert "--port 8330" in script and "--port 8331" in script and "--port 8332" in script
    assert "http://localhost:8330" in script  # APERTUR_BASE_URL
    assert "http://127.0.0.1:8330/webhooks/paypal" in script and "http://127.0.0.1:8332" in script


def test_make_install_takes_python_3_11_when_python3_is_another_version(tmp_path: Path) -> None:
    """The README asks only that Python 3.11 be on the machine: where ``python3`` is another version (3.12 on a
    recent Ubuntu or Fedora) and ``python3.11`` is there too, `make install` builds .venv with 3.11, which
    pyproject.toml requires, instead of a 3.12 .venv that uv then refuses."""
    import os
    import shutil
    import subprocess
    import sys

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text("#!/bin/sh\necho 'Python 3.12.3'\n")
    (bin_dir / "python3").chmod(0o755)
    (bin_dir / "python3.11").symlink_to(sys.executable)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("PYTHON", None)
    done = subprocess.run(
        ["make", "-n", "--always-make", "--no-print-directory", "-C", str(ROOT), ".venv/.installed"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    venv_line = next(line for line in done.stdout.splitlines() if "-m venv" in line)
    assert re.search(r"python3\.11 -m venv", venv_line), venv_line


def _table(doc: str, heading: str) -> list[list[str]]:
    """The rows (cells, stripped) of the first table after ``heading`` in ``docs/<doc>``, header row left out."""
    lines = (ROOT / "docs" / doc).read_text().split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _operations_in_api_md() -> dict[tuple[str, str], str]:
    """docs/api.md's Operations table as ``{(method, path): scope}``: a cell such as
    "`GET`, `PATCH`, `DELETE /webhooks/{id}`" names three operations; parameters are written ``{*}``."""
    operations = {}
    for first, scope_cell, *_ in _table("api.md", "## Operations"):
        scope = re.search(r"`([a-z]+:[a-z]+)`", scope_cell)
        assert scope, f"docs/api.md, Operations: no scope in {scope_cell!r}"
        methods: list[str] = []
        for span in re.findall(r"`([^`]+)`", first):
            method, _, path = span.partition(" ")
            methods.append(method)
            if path:
                path = re.sub(r"\{[^}]*\}", "{*}", re.sub(r"\[.*\]$", "", path))
                for each in methods:
                    operations[(each, f"/api/v1{path}")] = scope.group(1)
                methods = []
    return operations


def test_the_api_docs_list_every_operation_with_the_scope_the_api_asks_for() -> None:
    """docs/api.md's Operations table and the API itself (its OpenAPI description, which names each operation's
    scope) list the same operations with the same scopes: a new operation, a renamed path or a changed scope
    fails here until the partner-facing table says so."""
    from apertur.api.v1 import api

    served = {}
    for path, operations in api.get_openapi_schema()["paths"].items():
        for method, operation in operations.items():
            scopes = [scope for requirement in operation.get("security", []) for scope in requirement.get("OAuth2", [])]
            served[(method.upper(), re.sub(r"\{[^}]*\}", "{*}", path))] = scopes
    documented = _operations_in_api_md()
    assert len(documented) > 15
    assert set(documented) == set(served), (
        f"only in docs/api.md: {sorted(set(documented) - set(served))}; "
        f"only in the API: {sorted(set(served) - set(documented))}"
    )
    wrong = {op: (scope, served[op]) for op, scope in documented.items() if served[op] != [scope]}
    assert not wrong, f"docs/api.md names another scope than the API asks for: {wrong}"


def test_the_app_limits_in_the_oauth_apps_docs_are_the_ones_enforced() -> None:
    """Each number in docs/oauth-apps.md's field table is the limit an app's settings are checked against,
    whoever registers the app (portal, CLI): at the limit it is accepted, one past it refused."""
    from apertur.core.errors import ValidationFailed
    from apertur.oauth.services import clean_app_details

    rules = {field: rule for field, rule in _table("oauth-apps.md", "# Registering an OAuth app")}

    def number(pattern: str, field: str) -> int:
        found = re.search(pattern, rules[field])
        assert found, f"docs/oauth-apps.md: the {field} row no longer says {pattern!r}"
        return int(found.group(1).replace(",", ""))

    name_low, name_high = (int(n) for n in re.search(r"(\d+) to (\d+) characters", rules["App name"]).groups())
    description = number(r"at most ([\d,]+) characters", "Description")
    website = number(r"at most ([\d,]+) characters", "Website URL")
    uris, uri_length = number(r"one to (\d+)", "Redirect URIs"), number(r"each at most ([\d,]+)", "Redirect URIs")
    domains = number(r"zero to (\d+)", "Allowed domains")

    def details(**given: Any) -> dict[str, Any]:
        return {
            "name": "Snapflow",
            "description": "",
            "website": "",
            "redirect_uris": ["https://snapflow.example/callback"],
            "allowed_domains": [],
            **given,
        }

    url = "https://snapflow.example/"
    cases = {
        "name": ("n" * name_high, ["n" * (name_low - 1), "n" * (name_high + 1)]),
        "description": ("d" * description, ["d" * (description + 1)]),
        "website": (url + "w" * (website - len(url)), [url + "w" * (website + 1 - len(url))]),
        "redirect_uris": (
            [f"{url}{i}" for i in range(uris - 1)] + [url + "u" * (uri_length - len(url))],
            [[f"{url}{i}" for i in range(uris + 1)], [url + "u" * (uri_length + 1 - len(url))]],
        ),
        "allowed_domains": (
            [f"d{i}.example.com" for i in range(domains)],
            [[f"d{i}.example.com" for i in range(domains + 1)]],
        ),
    }
    for field, (accepted, refused) in cases.items():
        clean_app_details(**details(**{field: accepted}))
        for value in refused:
            with pytest.raises(ValidationFailed) as raised:
                clean_app_details(**details(**{field: value}))
            assert raised.value.field == field, (field, raised.value)


def test_the_limits_in_the_api_docs_are_the_ones_enforced() -> None:
    """docs/api.md's "How many of each" table (and the pages that repeat a number) say the limits the services
    count against: each row is one constant, and none is left out."""
    from apertur.oauth import services as oauth_services
    from apertur.projects import services as project_services
    from apertur.referrals import services as referral_services
    from apertur.uploads import destinations
    from apertur.webhooks import services as webhook_services

    enforced = {
        "projects per account": project_services.MAX_PROJECTS_PER_ACCOUNT,
        "API keys per project": project_services.MAX_API_KEYS_PER_PROJECT,
        "webhook endpoints per project": webhook_services.MAX_ENDPOINTS_PER_PROJECT,
        "destinations per project": destinations.MAX_DESTINATIONS_PER_PROJECT,
        "OAuth apps per partner": oauth_services.MAX_APPS_PER_PARTNER,
        "referral links per partner": referral_services.MAX_LINKS_PER_PARTNER,
    }
    documented = {what: int(limit.replace(",", "")) for what, limit, *_ in _table("api.md", "## How many of each")}
    assert documented == enforced
    oauth_apps = (ROOT / "docs" / "oauth-apps.md").read_text()
    assert f"at most {enforced['OAuth apps per partner']} OAuth apps" in oauth_apps
    partners = " ".join((ROOT / "docs" / "partners.md").read_text().split())
    assert f"at most {enforced['referral links per partner']} per partner" in partners


def test_the_api_docs_free_a_slot_only_the_way_each_kind_can_be_removed() -> None:
    """Projects and referral links are never deleted (no service deletes them) and an API key is revoked, not
    deleted: "How many of each" must not tell the reader that deleting one frees its slot for every kind."""
    from apertur.projects import services as project_services
    from apertur.referrals import services as referral_services

    assert not hasattr(project_services, "delete_project") and not hasattr(referral_services, "delete_link")
    section = " ".join((ROOT / "docs" / "api.md").read_text().split("## How many of each")[1].split("\n## ")[0].split())
    assert "Deleting one frees its slot." not in section
    assert "Revoking an API key" in section and "never deleted" in section


def test_the_write_budgets_in_the_api_docs_are_the_ones_enforced() -> None:
    """docs/api.md's budgets table (between the write-budgets markers) says each budget the services count: its
    number and its window, one row per constant, none left out."""
    from apertur.oauth import services as oauth_services
    from apertur.projects import services as project_services
    from apertur.uploads import destinations
    from apertur.uploads import services as upload_services
    from apertur.webhooks import services as webhook_services

    windows = {"day": 24 * 60 * 60, "hour": 60 * 60}
    enforced = {
        "upload sessions opened": upload_services.SESSIONS_PER_PROJECT,
        "webhook endpoints created": webhook_services.ENDPOINTS_CREATED_PER_PROJECT,
        "webhook endpoint changes": webhook_services.ENDPOINT_CHANGES_PER_PROJECT,
        "destinations created": destinations.CREATED_PER_PROJECT,
        "destinations enabled": destinations.ENABLED_PER_PROJECT,
        "S3 access key replacements": destinations.ACCESS_KEY_REPLACEMENTS_PER_DESTINATION,
        "signing secret rolls": webhook_services.SECRET_ROLLS_PER_HOLDER,
        "project settings changes": project_services.SETTINGS_CHANGES_PER_PROJECT,
        "API keys created": project_services.API_KEYS_CREATED_PER_PROJECT,
        "OAuth apps created": oauth_services.APPS_CREATED_PER_PARTNER,
        "OAuth app credential changes": oauth_services.CREDENTIAL_CHANGES_PER_APP,
        "OAuth app changes": oauth_services.APP_CHANGES_PER_APP,
    }
    documented = {}
    for what, at_most, *_ in _table("api.md", "<!-- write-budgets -->"):
        found = re.match(r"([\d,]+) per .*? per (day|hour)\b", at_most)
        assert found, f"docs/api.md, budgets: {at_most!r}"
        documented[what.split(" (")[0]] = (int(found[1].replace(",", "")), windows[found[2]])
    assert documented == {what: (limit.max_hits, limit.window_seconds) for what, limit in enforced.items()}


def test_the_retention_table_says_how_long_each_kind_is_kept() -> None:
    """docs/deploy.md's retention table (between the retention markers) gives each age the housekeeping deletes by:
    one row per constant, none left out, none made up."""
    from apertur.core import housekeeping
    from apertur.integrations.stripe import services as stripe_services
    from apertur.oauth import tokens
    from apertur.webhooks import services as webhook_services

    kept = {
        "API idempotency keys": housekeeping.IDEMPOTENCY_TTL,
        "finished background-task results": housekeeping.TASK_RESULTS_TTL,
        "webhook events": webhook_services.EVENTS_KEPT,
        "OAuth token rows": tokens.DEAD_KEPT,
        "authorization codes": tokens.DEAD_KEPT,
        "refused Stripe deliveries": stripe_services.REFUSED_KEPT_FOR,
        "routine audit events": housekeeping.ROUTINE_AUDIT_KEPT,
    }
    units = {"hours": dt.timedelta(hours=1), "days": dt.timedelta(days=1)}
    documented = {}
    for rows, _counted_from, after in _table("deploy.md", "<!-- retention -->"):
        found = re.fullmatch(r"(\d+) (hours|days)", after)
        assert found, f"docs/deploy.md, retention: {after!r}"
        documented[re.split(r" \(|,", rows)[0]] = int(found[1]) * units[found[2]]
    assert documented == kept


_WINDOWS = {"min": 60, "minute": 60, "hour": 60 * 60, "day": 24 * 60 * 60}


def _budget(text: str) -> tuple[int, int]:
    """``"10 per 15 min"``, ``"3 per hour"``, ``"600 a minute"`` as ``(hits, window in seconds)``."""
    found = re.match(r"([\d,]+) (?:per|a|an) (?:(\d+) )?(min|minute|hour|day)\b", text)
    assert found, f"not a budget: {text!r}"
    return int(found[1].replace(",", "")), int(found[2] or 1) * _WINDOWS[found[3]]


def test_the_account_limits_in_the_accounts_docs_are_the_ones_enforced() -> None:
    """docs/accounts.md's Limits table gives each budget the accounts code counts against, with its number, window
    and key: one row per budget, none left out (a new budget, or a changed number, fails here)."""
    from django.conf import settings

    from apertur.accounts import login

    def limit(each: Any) -> tuple[int, int]:
        return each.max_hits, each.window_seconds

    enforced = {
        ("failed logins", "account and IP"): settings.LOGIN_RATE_PER_ACCOUNT_IP,
        ("failed logins", "IP"): settings.LOGIN_RATE_PER_IP,
        ("failed logins", "account"): settings.LOGIN_RATE_PER_ACCOUNT,
        ("signups", "IP"): limit(login.SIGNUP_PER_IP),
        ("password reset requests", "IP"): limit(login.RESET_PER_IP),
        ("password reset emails", "address"): limit(login.RESET_PER_EMAIL),
        ("confirmation link requests", "IP"): limit(login.CONFIRM_RESEND_PER_IP),
        ("confirmation emails", "address"): limit(login.CONFIRM_RESEND_PER_EMAIL),
        ("wrong current passwords on the account page", "account and IP"): limit(login.ACCOUNT_PASSWORD_CHECK),
        ("email change requests", "account"): limit(login.EMAIL_CHANGE_PER_ACCOUNT),
        ("password changes on the account page", "account"): limit(login.PASSWORD_CHANGES_PER_ACCOUNT),
    }
    documented = {
        (what.split(" (")[0], key): _budget(budget) for what, budget, key in _table("accounts.md", "## Limits")
    }
    assert documented == {what: tuple(budget) for what, budget in enforced.items()}


def test_the_oauth_endpoint_rate_limits_in_the_oauth_docs_are_the_ones_enforced() -> None:
    """docs/oauth.md's `rate_limited` row says how many requests the OAuth endpoints take before a 429."""
    from apertur.oauth import limits

    row = next(cells for cells in _table("oauth.md", "### OAuth endpoints") if cells[0] == "`rate_limited`")[2]
    token = re.search(r"token, revocation and introspection endpoints: ([\d,]+ a minute)", row)
    authorize = re.search(r"authorization endpoint: ([\d,]+ a minute)", row)
    assert token and authorize, row
    assert _budget(token[1]) == (limits.TOKEN_PER_IP.max_hits, limits.TOKEN_PER_IP.window_seconds)
    assert (limits.TOKEN_PER_CLIENT.max_hits, limits.TOKEN_PER_CLIENT.window_seconds) == _budget(token[1])
    assert _budget(authorize[1]) == (limits.AUTHORIZE_PER_IP.max_hits, limits.AUTHORIZE_PER_IP.window_seconds)


def test_the_lifetimes_in_the_oauth_docs_are_the_ones_issued() -> None:
    """docs/oauth.md's Lifetimes table and its retention sentence: the code's, access token's and refresh token's
    lifetimes and how long a dead one is still recognised."""
    from apertur.oauth import tokens

    rows = {credential: lifetime for credential, lifetime in _table("oauth.md", "## Lifetimes")}
    assert rows["Authorization code"].startswith(f"{tokens.CODE_TTL // dt.timedelta(minutes=1)} minutes")
    assert f"`expires_in: {int(tokens.ACCESS_TTL.total_seconds())}`" in rows["Access token"]
    assert rows["Access token"].startswith(f"{tokens.ACCESS_TTL // dt.timedelta(hours=1)} hour")
    assert f"unused for {tokens.REFRESH_IDLE_TTL.days} days" in rows["Refresh token"]
    text = " ".join((ROOT / "docs" / "oauth.md").read_text().split())
    assert f"still recognised for **{tokens.DEAD_KEPT.days} days**" in text
    assert f"not used for {tokens.REFRESH_IDLE_TTL.days} days expires" in text


def test_the_guest_upload_limits_in_the_api_docs_are_the_ones_enforced() -> None:
    """docs/api.md tells a project owner how many files one guest address may send and how many wrong guesses a
    password-protected link takes: the budgets of the upload pages."""
    from apertur.uploads import services as upload_services
    from apertur.uploads import views as upload_views

    text = " ".join((ROOT / "docs" / "api.md").read_text().split())
    files = re.search(r"([\d,]+) files \(and password attempts\) (an hour)", text)
    guesses = re.search(
        r"([\d,]+) wrong passwords per (\d+ min)utes from one address and ([\d,]+) (an hour) in all", text
    )
    assert files and guesses, "docs/api.md no longer says the guest upload budgets"

    def limit(each: Any) -> tuple[int, int]:
        return each.max_hits, each.window_seconds

    assert _budget(f"{files[1]} {files[2]}") == limit(upload_views.GUEST_UPLOADS_PER_IP)
    assert _budget(f"{guesses[1]} per {guesses[2]}") == limit(upload_services.PASSWORD_GUESSES_PER_LINK_NETWORK)
    assert _budget(f"{guesses[3]} {guesses[4]}") == limit(upload_services.PASSWORD_GUESSES_PER_LINK)


def test_the_readme_names_every_port_bound_variable_other_terminals_need() -> None:
    """`make run PORT=… PAYPAL_PORT=…` gives its own processes addresses built from the ports it was given
    (RUN_ENV in the Makefile). An `apertur` command run in another terminal does not inherit them: the README must
    name each one, or `billing simulate` posts to a server that is not there and `payouts run` calls a PayPal
    emulator that is not there."""
    makefile = (ROOT / "Makefile").read_text()
    run_env = re.search(r"^RUN_ENV = (.*?)\n\n", makefile, re.MULTILINE | re.DOTALL)
    assert run_env, "the Makefile has no RUN_ENV"
    port_bound = re.findall(r"([A-Z_]+)=\$\$\{\1:-[^}]*\$\((?:PORT|SITE_PORT|PAYPAL_PORT)\)[^}]*\}", run_env[1])
    assert "APERTUR_BASE_URL" in port_bound and "PAYPAL_API_BASE" in port_bound
    readme = " ".join((ROOT / "README.md").read_text().split())
    sentence = readme.split("in another terminal", 1)[1].split(". ", 1)[0]
    assert all(f"`{name}=" in sentence for name in port_bound), (port_bound, sentence)


def test_the_webhook_events_in_the_api_docs_are_the_ones_an_endpoint_can_subscribe_to() -> None:
    """docs/api.md's Webhooks section lists the event types a partner can subscribe to: a new event type, or a
    renamed one, fails here until the list says so."""
    from apertur.webhooks.models import SUBSCRIBABLE_EVENT_TYPES

    text = " ".join((ROOT / "docs" / "api.md").read_text().split())
    listed = re.search(r"Subscribe an HTTPS endpoint to (.*?) \(or `\*`\)", text)
    assert listed, "docs/api.md no longer lists the webhook event types"
    assert re.findall(r"`([a-z_.]+)`", listed[1]) == list(SUBSCRIBABLE_EVENT_TYPES)


def test_the_numbers_in_the_api_docs_are_the_ones_the_api_uses() -> None:
    """docs/api.md's numbers a partner codes against: the rate limit per caller, the Idempotency-Key's length and
    how long an unfinished first request holds it, the page size, the X-Request-Id echoed, the webhook retry
    schedule, an attempt's time and the test events' budget."""
    from apertur.api import auth, idempotency, pagination
    from apertur.api.middleware import _VALID_ID
    from apertur.core import outbound
    from apertur.webhooks import services as webhook_services

    text = " ".join((ROOT / "docs" / "api.md").read_text().split())

    def said(pattern: str) -> re.Match[str]:
        found = re.search(pattern, text)
        assert found, f"docs/api.md no longer says {pattern!r}"
        return found

    assert _budget(said(r"([\d,]+ requests) per (minute) per caller")[0].replace(" requests", "")) == (
        auth.PER_CALLER.max_hits,
        auth.PER_CALLER.window_seconds,
    )
    assert int(said(r"`Idempotency-Key` header \(up to (\d+) characters")[1]) == idempotency.MAX_KEY_LENGTH
    assert int(said(r"frees its key after (\d+) minutes")[1]) * 60 == idempotency.ABANDONED_AFTER.total_seconds()
    low, high, default = (int(n) for n in said(r"`\?limit=` \((\d+)–(\d+), default (\d+)\)").groups())
    assert (low, high, default) == (1, pagination.MAX_LIMIT, pagination.DEFAULT_LIMIT)
    shortest, longest = (int(n) for n in said(r"`X-Request-Id`, (\d+) to (\d+) letters").groups())
    assert _VALID_ID.fullmatch("a" * shortest) and _VALID_ID.fullmatch("a" * longest)
    assert not _VALID_ID.fullmatch("a" * (shortest - 1)) and not _VALID_ID.fullmatch("a" * (longest + 1))
    units = {"s": dt.timedelta(seconds=1), "min": dt.timedelta(minutes=1), "h": dt.timedelta(hours=1)}
    schedule = said(r"is retried ((?:\d+ (?:s|min|h),? (?:and )?)+)after the failed attempt")[1]
    retries = [int(n) * units[unit] for n, unit in re.findall(r"(\d+) (s|min|h)\b", schedule)]
    assert retries == outbound.BACKOFF
    assert float(said(r"an attempt gets (\d+) s in all")[1]) == webhook_services.ATTEMPT_SECONDS
    test_events = said(r"at most (\d+) (an hour) per project owner")
    assert _budget(f"{test_events[1]} {test_events[2]}") == (
        webhook_services.TEST_EVENTS_PER_OWNER.max_hits,
        webhook_services.TEST_EVENTS_PER_OWNER.window_seconds,
    )


def test_the_payment_webhook_limits_in_the_docs_are_the_ones_enforced() -> None:
    """docs/commissions.md and docs/payouts.md tell operators what the Stripe and PayPal webhooks refuse and keep:
    the signature tolerance, the body size, the event id and type lengths, the refused deliveries kept and how long
    an event waits before it is given up."""
    from apertur.integrations.stripe import handlers as stripe_handlers
    from apertur.integrations.stripe import services as stripe_services
    from apertur.integrations.stripe import views as stripe_views
    from apertur.payouts import webhooks as paypal_webhooks

    commissions = " ".join((ROOT / "docs" / "commissions.md").read_text().split())
    payouts = " ".join((ROOT / "docs" / "payouts.md").read_text().split())

    def number(text: str, pattern: str) -> int:
        found = re.search(pattern, text)
        assert found, f"the doc no longer says {pattern!r}"
        return int(found[1].replace(",", ""))

    assert number(commissions, r"the `stripe` package, (\d+) minutes of tolerance") * 60 == (
        stripe_services.SIGNATURE_TOLERANCE
    )
    assert number(commissions, r"A body over ([\d,]+) bytes") == stripe_views.MAX_BODY_BYTES
    assert number(payouts, r"`body_too_large` over ([\d,]+) bytes") == paypal_webhooks.MAX_BODY_BYTES
    assert number(commissions, r"a string `id` of at most (\d+) characters") == stripe_services.MAX_EVENT_ID
    assert number(commissions, r"a string `type` of at most (\d+)") == stripe_services.MAX_EVENT_TYPE
    assert number(commissions, r"an object id that is not a string of at most (\d+)") == stripe_handlers.MAX_ID
    assert number(payouts, r"a string `id` of at most (\d+) characters") == paypal_webhooks.MAX_EVENT_ID
    kept = re.search(r"(\d+) refused deliveries (an hour) per client address and (\d+) in all", commissions)
    assert kept, "docs/commissions.md no longer says how many refused deliveries are kept"
    per_address, in_all = stripe_services.REFUSED_KEPT_PER_ADDRESS, stripe_services.REFUSED_KEPT_IN_ALL
    assert _budget(f"{kept[1]} {kept[2]}") == (per_address.max_hits, per_address.window_seconds)
    assert (int(kept[3]), in_all.window_seconds) == (in_all.max_hits, per_address.window_seconds)
    assert number(commissions, r"marked `ignored` after (\d+) days") == stripe_services.WAIT_LIMIT.days
    assert number(commissions, r"gave up waiting after (\d+) days") == stripe_services.WAIT_LIMIT.days
