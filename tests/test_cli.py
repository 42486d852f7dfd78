"""The ``apertur`` command's fixed interface (ARCHITECTURE section 6)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.conf import settings
from typer.testing import CliRunner

from apertur.accounts.models import User
from apertur.accounts.services import confirmation_path, send_confirmation_email
from apertur.cli import app
from apertur.core import tokens
from apertur.oauth.models import OAuthApp
from apertur.partners.models import Partner

pytestmark = pytest.mark.django_db
runner = CliRunner()


def run(*args: str, ok: bool = True) -> Any:
    result = runner.invoke(app, list(args))
    if ok:
        assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def run_json(*args: str) -> dict[str, Any]:
    return json.loads(run(*args, "--json").stdout)


def test_user_create_json() -> None:
    data = run_json(
        "user",
        "create",
        "--email",
        "Ada@Example.com",
        "--password",
        "correct-horse-battery",
        "--project",
        "Weddings",
        "--plan",
        "pro",
    )
    assert set(data) == {"id", "email", "projects"}
    assert data["email"] == "ada@example.com"
    assert data["id"].startswith("usr_")
    assert [(p["name"], p["plan"]) for p in data["projects"]] == [("Weddings", "Pro")]
    assert data["projects"][0]["id"].startswith("prj_")


def test_user_create_errors_exit_nonzero_with_the_error_object_on_stdout_and_stderr() -> None:
    run("user", "create", "--email", "ada@example.com", "--password", "correct-horse-battery")
    result = run(
        "user",
        "create",
        "--email",
        "ada@example.com",
        "--password",
        "correct-horse-battery",
        "--json",
        ok=False,
    )
    assert result.exit_code == 1
    # --json: one object on stdout, the error (ARCHITECTURE 6); the same line on stderr for a person.
    assert json.loads(result.stdout)["error"]["code"] == "email_taken"
    assert json.loads(result.stderr)["error"]["code"] == "email_taken"
    bad_plan = run(
        "user",
        "create",
        "--email",
        "bob@example.com",
        "--password",
        "correct-horse-battery",
        "--plan",
        "Gold",
        ok=False,
    )
    assert bad_plan.exit_code == 1 and "no plan named 'Gold'" in bad_plan.stderr


def test_partner_create_and_app_create() -> None:
    pending = run_json("partner", "create", "--email", "p1@example.com", "--password", "correct-horse-battery")
    assert pending == {"email": "p1@example.com", "status": "pending", "referral_link": None}
    refused = run(
        "app",
        "create",
        "--partner-email",
        "p1@example.com",
        "--name",
        "X",
        "--redirect-uri",
        "https://x.example/cb",
        ok=False,
    )
    assert refused.exit_code == 1 and "approved partners" in refused.stderr

    partner = run_json(
        "partner", "create", "--email", "p2@example.com", "--password", "correct-horse-battery", "--approve"
    )
    assert partner["status"] == "approved"
    assert partner["referral_link"].startswith("http://localhost:8000/r/")

    created = run_json(
        "app",
        "create",
        "--partner-email",
        "p2@example.com",
        "--name",
        "Snapflow",
        "--redirect-uri",
        "https://snapflow.example/cb",
        "--redirect-uri",
        "http://localhost:3000/cb",
        "--allowed-domain",
        "*.snapflow.example",
        "--website",
        "https://snapflow.example",
    )
    assert set(created) == {"client_id", "client_secret", "public_key", "test_public_key"}
    app_row = OAuthApp.objects.get(client_id=created["client_id"])
    assert app_row.client_secret_hash == tokens.hash_secret(created["client_secret"])
    assert app_row.redirect_uris.count() == 2
    assert created["public_key"].startswith("aptr_live_pk_")
    assert created["test_public_key"].startswith("aptr_test_pk_")


def test_partner_create_again_reports_the_partner_and_approves_a_pending_one() -> None:
    args = ("partner", "create", "--email", "again@example.com", "--password", "correct-horse-battery")
    first = run_json(*args)
    assert run_json(*args) == first == {"email": "again@example.com", "status": "pending", "referral_link": None}
    approved = run_json(*args, "--approve")
    assert approved["status"] == "approved" and approved["referral_link"].startswith("http://localhost:8000/r/")
    assert run_json(*args) == approved and run_json(*args, "--approve") == approved
    assert Partner.objects.filter(user__email="again@example.com").count() == 1


def test_partner_create_approve_sends_the_welcome_alone(
    mailoutbox: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """Approved in the same command: no "we received your application, we will email you the decision" a moment
    before the decision itself; that mail stays for an application that waits for review."""
    with django_capture_on_commit_callbacks(execute=True):
        run("partner", "create", "--email", "w@example.com", "--password", "correct-horse-battery", "--approve")
        run("partner", "create", "--email", "pending@example.com", "--password", "correct-horse-battery")
    addresses = ("w@example.com", "pending@example.com")
    to = {address: [m.subject for m in mailoutbox if m.to == [address]] for address in addresses}
    assert to["w@example.com"] == ["Welcome to the Apertur Partner Program"]
    assert to["pending@example.com"] == ["We received your Apertur partner application"]


def test_app_create_bad_redirect_uri_stores_nothing() -> None:
    run("partner", "create", "--email", "p@example.com", "--password", "correct-horse-battery", "--approve")
    result = run(
        "app",
        "create",
        "--partner-email",
        "p@example.com",
        "--name",
        "Snapflow",
        "--redirect-uri",
        "http://snapflow.example/cb",
        ok=False,
    )
    assert result.exit_code == 1 and "must use https" in result.stderr
    assert OAuthApp.objects.count() == 0
    unknown = run(
        "app",
        "create",
        "--partner-email",
        "nobody@example.com",
        "--name",
        "Snapflow",
        "--redirect-uri",
        "https://snapflow.example/cb",
        ok=False,
    )
    assert unknown.exit_code == 1 and "No partner" in unknown.stderr


def test_app_create_reports_every_problem_at_once() -> None:
    """As the portal's form: a name too short, a redirect URI without https and a bad allowed domain are three
    lines for a person and three ``problems`` in JSON (code and message stay the first one's)."""
    import json

    run("partner", "create", "--email", "p@example.com", "--password", "correct-horse-battery", "--approve")
    args = ["app", "create", "--partner-email", "p@example.com", "--name", "S", "--redirect-uri", "http://x.example/cb"]
    args += ["--allowed-domain", "https://example.com"]
    human = run(*args, ok=False)
    assert human.exit_code == 1
    lines = [line for line in human.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 3 and "name" in lines[0] and "https" in lines[1] and "without a scheme" in lines[2], lines
    machine = run(*args, "--json", ok=False)
    error = json.loads(machine.stdout)["error"]
    assert [p["field"] for p in error["problems"]] == ["name", "redirect_uris", "allowed_domains"]
    assert error["message"] == error["problems"][0]["message"] and error["code"] == error["problems"][0]["code"]
    assert OAuthApp.objects.count() == 0


def test_partner_create_with_wrong_password_for_existing_account_changes_nothing() -> None:
    run("user", "create", "--email", "ada@example.com", "--password", "correct-horse-battery")
    result = run("partner", "create", "--email", "ada@example.com", "--password", "something-else-1", ok=False)
    assert result.exit_code == 1
    assert Partner.objects.count() == 0


def test_mail_list(maildir: Path, django_capture_on_commit_callbacks: Any) -> None:
    args = ("partner", "create", "--email", "p@example.com", "--password", "correct-horse-battery")
    with django_capture_on_commit_callbacks(execute=True):
        run(*args)  # applies: the application waits for review
    with django_capture_on_commit_callbacks(execute=True):
        run(*args, "--approve")  # approves the pending one
    data = run_json("mail", "list", "--to", "P@example.com")
    subjects = [m["subject"] for m in data["messages"]]
    assert subjects == [
        "Welcome to the Apertur Partner Program",
        "We received your Apertur partner application",
    ]
    assert all(set(m) == {"subject", "text", "sent_at"} for m in data["messages"])
    assert "http://localhost:8000/partners/" in data["messages"][0]["text"]
    # Approved in the same command: staff are not told an application waits for review.
    with django_capture_on_commit_callbacks(execute=True):
        run("partner", "create", "--email", "r@example.com", "--password", "correct-horse-battery", "--approve")
    staff = run_json("mail", "list", "--to", settings.STAFF_NOTIFY_EMAIL)["messages"]
    assert [m["subject"] for m in staff] == ["New partner application: example.com partner"]
    with django_capture_on_commit_callbacks(execute=True):
        run("partner", "create", "--email", "q@example.com", "--password", "correct-horse-battery")
    staff = run_json("mail", "list", "--to", settings.STAFF_NOTIFY_EMAIL)["messages"]
    assert [m["subject"] for m in staff] == ["New partner application: example.com partner"] * 2  # p's, q's
    assert run_json("mail", "list", "--to", "nobody@example.com")["messages"] == []


def test_mail_list_shows_links_whole_and_the_time_in_toronto(
    maildir: Path, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    """The human listing is for clicking the links: a long one stays on one line (not folded at the terminal's
    80 columns), and the time it shows is Toronto's, with the zone named."""
    settings.APERTUR_BASE_URL = "https://partners.apertur-staging.example.com"
    with time_machine.travel(dt.datetime(2026, 3, 2, 14, 5, tzinfo=dt.UTC), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            run("user", "create", "--email", "ada@example.com", "--password", "correct-horse-battery")
            user = User.objects.get(email="ada@example.com")
            send_confirmation_email(user=user)
        link = settings.APERTUR_BASE_URL + confirmation_path(user)
    assert len(link) > 80
    output = run("mail", "list", "--to", "ada@example.com").stdout
    assert link in output.splitlines()
    assert "2026-03-02 09:05:00 EST" in output and "14:05" not in output


def test_demo_is_idempotent(maildir: Path, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = run_json("demo")
    second = run_json("demo")
    assert first == second
    # Its partner is approved at once: staff are not told an application waits for review.
    staff = run_json("mail", "list", "--to", settings.STAFF_NOTIFY_EMAIL)["messages"]
    assert not [m for m in staff if m["subject"].startswith("New partner application")]
    assert {"base_url", "user", "projects", "partner", "app"} <= set(first)
    assert set(first["user"]) == {"email", "password"}
    assert len(first["projects"]) == 2
    assert len({p["plan"] for p in first["projects"]}) == 2
    assert all(set(p) == {"id", "name", "plan"} for p in first["projects"])
    assert set(first["partner"]) == {"email", "password", "referral_link"}
    assert set(first["app"]) == {
        "client_id",
        "client_secret",
        "public_key",
        "test_public_key",
        "redirect_uris",
        "allowed_domains",
    }
    assert first["app"]["redirect_uris"] == ["http://partner.localhost:8001/callback"]
    assert first["app"]["allowed_domains"] == ["*.localhost"]
    app_row = OAuthApp.objects.get(client_id=first["app"]["client_id"])
    assert app_row.client_secret_hash == tokens.hash_secret(first["app"]["client_secret"])
    assert OAuthApp.objects.count() == 1 and Partner.objects.count() == 1
    # The printed logins work.
    from django.test import Client

    assert Client().login(email=first["user"]["email"], password=first["user"]["password"])
    assert Client().login(email=first["partner"]["email"], password=first["partner"]["password"])


def test_partner_site_on_another_port_is_a_redirect_uri_of_the_demo_app(
    maildir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`apertur partner-site --port P` (make run's SITE_PORT) serves a site whose Connect works: its callback is
    one of the demo app's redirect URIs, the default port's staying one too."""
    import socket

    with socket.socket() as probe:  # a port free now, as _check_listen wants
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started: dict[str, Any] = {}
    monkeypatch.delenv("PARTNER_SITE_URL", raising=False)
    monkeypatch.setattr(os, "execve", lambda path, args, env: started.update(args=args, env=env))
    result = run("partner-site", "--port", str(port))
    site = f"http://partner.localhost:{port}"
    assert started["env"]["PARTNER_SITE_URL"] == site
    assert "not a redirect URI" not in result.stderr
    uris = set(OAuthApp.objects.get().redirect_uris.values_list("uri", flat=True))
    assert uris == {f"{site}/callback", "http://partner.localhost:8001/callback"}
    run("partner-site", "--port", str(port))  # again: nothing more to add
    assert OAuthApp.objects.get().redirect_uris.count() == 2


@pytest.mark.own_database
@pytest.mark.django_db(transaction=True)
def test_console_script_end_to_end(tmp_path: Path) -> None:
    """The installed entry point in a real process, on its own SQLite file: migrate, demo twice."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
        "APERTUR_VAR_DIR": str(tmp_path / "var"),
        "DJANGO_SETTINGS_MODULE": "apertur.config.settings",
    }
    exe = Path(sys.executable).with_name("apertur")
    subprocess.run([str(exe), "migrate"], env=env, check=True, capture_output=True, timeout=120)
    out1 = subprocess.run([str(exe), "demo", "--json"], env=env, check=True, capture_output=True, timeout=60)
    out2 = subprocess.run(
        [sys.executable, "-m", "apertur", "demo", "--json"],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert json.loads(out1.stdout) == json.loads(out2.stdout)
    bad = subprocess.run(
        [str(exe), "user", "create", "--email", "x", "--password", "y"],
        env=env,
        capture_output=True,
        timeout=60,
        text=True,
    )
    assert bad.returncode == 1 and "valid email" in bad.stderr and bad.stdout == ""


def test_partner_balance() -> None:
    import datetime as dt

    import time_machine

    from apertur.commissions.models import CommissionEntry
    from apertur.projects.models import Payment
    from apertur.projects.services import create_project
    from apertur.referrals.models import Attribution
    from apertur.testing import make_partner, make_user

    partner = make_partner(user=make_user("bal@example.com"))
    assert run_json("partner", "balance", "--email", "bal@example.com") == {
        "pending_cents": 0,
        "eligible_cents": 0,
        "carried_cents": 0,
        "paid_cents": 0,
        "lifetime_cents": 0,
    }
    customer = make_user()
    project = create_project(owner=customer, name="P")
    Attribution.objects.create(
        customer=customer, partner=partner, source="referral", at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    )
    payment = Payment.objects.create(
        project=project,
        customer=customer,
        external_id="in_x",
        amount_cents=1,
        amount_cad_cents=1,
        paid_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
    )
    CommissionEntry.objects.create(
        partner=partner,
        payment=payment,
        kind="earned",
        amount_cents=2_500,
        available_at=dt.datetime(2026, 3, 31, tzinfo=dt.UTC),
        source_key="k1",
        paid_at=payment.paid_at,
        customer=customer,
    )
    with time_machine.travel(dt.datetime(2026, 4, 1, tzinfo=dt.UTC), tick=False):
        data = run_json("partner", "balance", "--email", "bal@example.com")
    assert data["eligible_cents"] == 2_500 and data["lifetime_cents"] == 2_500 and data["pending_cents"] == 0
    missing = run("partner", "balance", "--email", "nobody@example.com", ok=False)
    assert missing.exit_code == 1 and "No partner" in missing.stderr


@pytest.mark.own_database
@pytest.mark.parametrize(
    "command",
    [
        ["partner", "balance", "--email", "nobody@example.com"],
        # It used to answer its own code, "database", for the same thing.
        ["billing", "simulate", "--email", "buyer@example.com", "--plan", "Pro"],
    ],
)
def test_a_database_not_migrated_is_one_clear_error_not_a_traceback(tmp_path: Any, command: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["APERTUR_VAR_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "apertur", *command, "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "database_not_ready" and "apertur migrate" in error["message"]
    assert "Traceback" not in result.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.own_database
@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("sqlite:///{tmp}/missing-folder/apertur.sqlite3", "folder"),  # a file SQLite cannot open
        ("postgres://postgres@127.0.0.1:{port}/apertur", "createdb"),  # no server there
    ],
    ids=["sqlite", "postgres"],
)
def test_migrate_that_cannot_reach_the_database_says_to_check_it_not_to_run_migrate(
    tmp_path: Any, url: str, hint: str
) -> None:
    """`make run` with the README's DATABASE_URL before that database exists: `apertur migrate` fails with one
    sentence that points at DATABASE_URL and what to create, not at `apertur migrate` itself."""
    env = {**os.environ, "APERTUR_VAR_DIR": str(tmp_path)}
    env["DATABASE_URL"] = url.format(tmp=tmp_path, port=_free_port())
    result = subprocess.run(
        [sys.executable, "-m", "apertur", "migrate"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert "DATABASE_URL" in message and hint in message, message
    assert "Run `apertur migrate` first" not in message, message


def test_with_json_a_usage_error_is_the_one_json_object_on_stdout(tmp_path: Any) -> None:
    """A script that passes --json reads stdout whatever went wrong, a mistyped option included (click's errors
    never reach the commands' own error handling)."""
    env = {**os.environ, "APERTUR_VAR_DIR": str(tmp_path)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "apertur", *args], env=env, capture_output=True, text=True, timeout=120
        )

    bad = cli("payouts", "run", "--json", "--perod", "2026-05")
    assert bad.returncode == 2  # click's status for usage errors, as without --json
    assert json.loads(bad.stdout) == {
        "error": {"code": "usage_error", "message": "No such option: --perod (Possible options: --period)"}
    }
    missing = cli("partner", "balance", "--json")
    assert missing.returncode == 2
    assert json.loads(missing.stdout)["error"]["code"] == "usage_error" and "--email" in missing.stdout
    human = cli("payouts", "run", "--perod", "2026-05")
    assert human.returncode == 2 and human.stdout == "" and "No such option" in human.stderr


def test_help_lists_every_command_with_a_one_line_description() -> None:
    """``apertur --help`` (and each group's) shows a command's first paragraph: one sentence, not a wrapped page."""
    import click
    import typer.main

    def walk(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
        for name, sub in getattr(command, "commands", {}).items():
            yield f"{path} {name}", sub
            yield from walk(sub, f"{path} {name}")

    for path, command in walk(typer.main.get_command(app), "apertur"):
        if command.hidden:
            continue
        first = (command.short_help or command.help or "").strip().split("\n\n")[0]
        assert first, f"{path} has no description"
        assert "\n" not in first and len(first) <= 100, f"{path}: {first!r}"


@pytest.mark.parametrize("as_json", [True, False])
def test_an_argument_that_is_not_utf8_is_a_clear_error_not_a_traceback(
    as_json: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Latin-1 terminal or a script passing raw bytes: Python keeps undecodable bytes as lone surrogates, which
    no database query can encode."""
    from apertur.cli import main

    bad = b"caf\xe9@example.com".decode("utf-8", "surrogateescape")
    args = ["apertur", "partner", "balance", "--email", bad, *(["--json"] if as_json else [])]
    monkeypatch.setattr(sys, "argv", args)
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 2
    out, err = capsys.readouterr()
    if as_json:
        error = json.loads(out)["error"]
        assert error["code"] == "usage_error" and "caf\\xe9@example.com" in error["message"]
    else:
        assert out == "" and "caf\\xe9@example.com" in err and "not UTF-8" in " ".join(err.split())
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["serve", "partner-site", "paypal-emulator"])
@pytest.mark.parametrize("port", ["0", "-1", "65536", "99999"])
def test_a_port_outside_1_to_65535_is_a_usage_error_not_a_traceback(command: str, port: str) -> None:
    """``--port 99999`` was an OverflowError traceback from the socket (serve, paypal-emulator), and ``--port 0``
    started a server on a port chosen at random while announcing :0."""
    result = run(command, "--host", "127.0.0.1", "--port", port, ok=False)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "port" in result.stderr and ("65535" in result.stderr or "greater than or equal to 1" in result.stderr)
    assert result.exception is None or isinstance(result.exception, SystemExit)
