"""Sets up a running rabt for scripts/security-scan.

Signs up two users through the API, follows the verification link in the
.eml file the server writes to RABT_MAIL_DIR, and creates data so that routes
with ids have something to hit: a published project of each user, a draft,
and an application in each direction.

Usage: scan_setup.py BASE_URL MAIL_DIR ENV_FILE [ADMIN_HOOK]

ADMIN_HOOK, when given, is a command run (with `{email}` replaced by the first
user's address) after that user signed up and before verification (the scan uses it to make
that user an admin). Writes shell assignments (RABT_SCAN_*) to ENV_FILE.
"""

from __future__ import annotations

import email
import email.policy
import json
import pathlib
import re
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

PASSWORD = "scan-Pa55word-long-enough"


def call(base: str, method: str, path: str, body=None, token: str | None = None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        raise SystemExit(f"scan setup: {method} {path} answered {err.code}: {raw[:500]!r}")


def verification_token(mail_dir: pathlib.Path, address: str, deadline: float) -> str:
    while time.time() < deadline:
        for path in sorted(mail_dir.glob("*.eml")) if mail_dir.is_dir() else []:
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if address not in str(msg.get("To", "")):
                continue
            part = msg.get_body(preferencelist=("plain", "html"))
            text = part.get_content() if part is not None else ""
            match = re.search(r"/auth/verify-email\?token=([A-Za-z0-9_%.~-]+)", text)
            if match:
                return urllib.parse.unquote(match.group(1))
        time.sleep(0.2)
    raise SystemExit(f"scan setup: no verification mail for {address} in {mail_dir}")


def sign_up(base: str, mail_dir: pathlib.Path, address: str, name: str, hook: str | None):
    status, _ = call(
        base,
        "POST",
        "/v1/auth/signup",
        {"email": address, "password": PASSWORD, "display_name": name},
    )
    assert status == 202, status
    token = verification_token(mail_dir, address, time.time() + 60)
    if hook:
        subprocess.run([a.replace("{email}", address) for a in shlex.split(hook)], check=True)
    _, pair = call(base, "POST", "/v1/auth/verify-email", {"token": token})
    return pair["access_token"], pair["user"]["id"]


def project(base: str, token: str, title: str, publish: bool) -> str:
    body = {
        "title": title,
        "summary": f"{title}: a short summary",
        "description": "Build **the thing**. See [docs](https://example.com).",
        "category": "software",
        "skills": ["rust", "sql"],
        "budget": {"min": 1000, "max": 5000, "currency": "usd"},
        "remote": True,
        "location": "Berlin",
    }
    _, created = call(base, "POST", "/v1/projects", body, token)
    if publish:
        call(base, "POST", f"/v1/projects/{created['id']}/transitions", {"to": "open"}, token)
    return created["id"]


def apply(base: str, token: str, project_id: str) -> str:
    _, created = call(
        base,
        "POST",
        f"/v1/projects/{project_id}/applications",
        {
            "cover_letter": "I have done this before and would like to help.",
            "proposed_budget": {"amount": 200000, "currency": "usd"},
        },
        token,
    )
    return created["id"]


def main() -> None:
    base, mail_dir, env_file = sys.argv[1].rstrip("/"), pathlib.Path(sys.argv[2]), sys.argv[3]
    hook = sys.argv[4] if len(sys.argv) > 4 else None
    stamp = int(time.time())
    email_a = f"scan-a-{stamp}@example.com"
    token_a, user_a = sign_up(base, mail_dir, email_a, "Ada Scanner", hook)
    token_b, user_b = sign_up(base, mail_dir, f"scan-b-{stamp}@example.com", "Bob Probe", None)
    call(
        base,
        "PATCH",
        "/v1/me",
        {"headline": "Backend engineer", "skills": ["rust", "sql"], "location": "Berlin"},
        token_a,
    )
    call(
        base,
        "PATCH",
        "/v1/me",
        {"headline": "Designer", "skills": ["design"], "location": "Lagos"},
        token_b,
    )
    project_a = project(base, token_a, "Search engine for makers", True)
    draft_a = project(base, token_a, "Draft idea", False)
    project_a2 = project(base, token_a, "Tooling for repair cafes", True)
    project_b = project(base, token_b, "Mobile app for markets", True)
    project_b2 = project(base, token_b, "Map of community gardens", True)
    application_a = apply(base, token_a, project_b)  # A applied to B's project
    apply(base, token_a, project_b2)
    application_b = apply(base, token_b, project_a)  # B applied to A's project
    apply(base, token_b, project_a2)
    _, page = call(base, "GET", "/v1/users?limit=1", None, token_a)
    users_cursor = page.get("next_cursor") or ""
    _, page = call(base, "GET", "/v1/projects?limit=1", None, token_a)
    projects_cursor = page.get("next_cursor") or ""
    _, page = call(base, "GET", "/v1/me/applications?limit=1", None, token_a)
    applications_cursor = page.get("next_cursor") or ""
    # A talks with B: a conversation with a few messages, for the messaging
    # routes' ids and cursors.
    _, conversation = call(base, "POST", "/v1/conversations", {"participant_ids": [user_b]}, token_a)
    conversation_id = conversation["id"]
    message_ids = []
    for text in ("Hello Bob", "About your market app", "Are you free on Monday?"):
        _, message = call(
            base, "POST", f"/v1/conversations/{conversation_id}/messages", {"body": text}, token_a
        )
        message_ids.append(message["id"])
    _, page = call(base, "GET", f"/v1/conversations/{conversation_id}/messages?limit=1", None, token_a)
    messages_cursor = page.get("next_cursor") or ""
    notifications_cursor = ""
    # A is told of B's two applications by a background job.
    deadline = time.time() + 30
    while not notifications_cursor and time.time() < deadline:
        _, page = call(base, "GET", "/v1/notifications?limit=1", None, token_a)
        notifications_cursor = page.get("next_cursor") or ""
        if not notifications_cursor:
            time.sleep(0.2)
    values = {
        "RABT_SCAN_TOKEN": token_a,
        "RABT_SCAN_TOKEN_B": token_b,
        "RABT_SCAN_USER_ID": user_a,
        "RABT_SCAN_OTHER_USER_ID": user_b,
        "RABT_SCAN_PROJECT_ID": project_a,
        "RABT_SCAN_DRAFT_ID": draft_a,
        "RABT_SCAN_OTHER_PROJECT_ID": project_b,
        "RABT_SCAN_APPLICATION_ID": application_b,
        "RABT_SCAN_OWN_APPLICATION_ID": application_a,
        "RABT_SCAN_USERS_CURSOR": users_cursor,
        "RABT_SCAN_PROJECTS_CURSOR": projects_cursor,
        "RABT_SCAN_APPLICATIONS_CURSOR": applications_cursor,
        "RABT_SCAN_NOTIFICATIONS_CURSOR": notifications_cursor,
        "RABT_SCAN_CONVERSATION_ID": conversation_id,
        "RABT_SCAN_MESSAGE_ID": message_ids[-1],
        "RABT_SCAN_MESSAGES_CURSOR": messages_cursor,
        "RABT_SCAN_EMAIL": email_a,
        "RABT_SCAN_PASSWORD": PASSWORD,
    }
    with open(env_file, "w", encoding="utf-8") as out:
        for key, value in values.items():
            out.write(f"{key}={shlex.quote(value)}\n")


if __name__ == "__main__":
    main()
