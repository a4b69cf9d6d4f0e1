"""Cross-checks of the operations files against the code, for scripts/check-ops.

    python scripts/lib/check_ops_names.py

- deploy/env/*.env list every setting of crates/rabt/src/config/raw.rs
  (RawSettings), and nothing that is not one;
- every metric named in deploy/prometheus/alerts.yml and
  deploy/grafana/rabt.json is registered in crates/rabt/src (or is `up`);
- every alert's runbook link names a heading of docs/OPERATIONS.md;
- every `uses:` of .github/workflows pins a commit (40 hex digits) and names
  the release in a `# vX.Y.Z` comment.

Prints one line per finding and exits 1 when there is any.
"""

import json
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
findings = []

# --- settings -----------------------------------------------------------------
raw = (ROOT / "crates/rabt/src/config/raw.rs").read_text()
start = raw.index("pub(super) struct RawSettings {")
body = raw[start : raw.index("\n}\n", start)]
fields = re.findall(r"^\s*(?:pub\(super\)\s+)?([a-z0-9_]+):", body, re.M)
UNPREFIXED = {"database_url", "redis_url", "aws_access_key_id", "aws_secret_access_key"}
settings = {f.upper() if f in UNPREFIXED else "RABT_" + f.upper() for f in fields}
# Read outside RawSettings: the file's path (config/mod.rs) and the log filter
# (telemetry.rs); RABT_ERASURE_GRACE_DAYS comes with account erasure.
ALSO = {"RABT_CONFIG_FILE", "RUST_LOG", "RABT_ERASURE_GRACE_DAYS"}
for env_file in sorted((ROOT / "deploy/env").glob("*.env")):
    listed = set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=", env_file.read_text(), re.M))
    rel = env_file.relative_to(ROOT)
    for name in sorted(settings - listed):
        findings.append(f"{rel}: {name} is a setting but is not listed")
    for name in sorted(listed - settings - ALSO):
        findings.append(f"{rel}: {name} is not a rabt setting")

# --- metrics ------------------------------------------------------------------
registered = {"up"}
for path in (ROOT / "crates/rabt/src").rglob("*.rs"):
    for kind, name in re.findall(r'\b(counter|gauge|histogram)!\(\s*"([a-z_:][a-z0-9_:]*)"', path.read_text()):
        registered.add(name)
        if kind == "histogram":
            registered.update({name + "_bucket", name + "_sum", name + "_count"})

KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "offset", "bool", "inf", "nan"}


def metric_names(expr):
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)           # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)                    # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)                   # ranges, subqueries
    expr = re.sub(r"\b\d+(?:ms|[smhdwy])\b", "", expr)           # offsets
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        token = match.group(0)
        following = expr[match.end():].lstrip()[:1]
        if token.lower() in KEYWORDS or following == "(":
            continue
        names.add(token)
    return names


alerts_path = ROOT / "deploy/prometheus/alerts.yml"
operations = (ROOT / "docs/OPERATIONS.md").read_text()
anchors = {re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-")
           for h in re.findall(r"^#+ (.+)$", operations, re.M)}
for group in yaml.safe_load(alerts_path.read_text())["groups"]:
    for rule in group["rules"]:
        name = rule.get("alert") or rule.get("record")
        for metric in sorted(metric_names(rule["expr"]) - registered):
            findings.append(f"deploy/prometheus/alerts.yml: {name}: no metric {metric} in crates/rabt/src")
        runbook = rule.get("annotations", {}).get("runbook", "")
        anchor = runbook.partition("#")[2]
        if rule.get("alert") and (not runbook.startswith("docs/OPERATIONS.md#") or anchor not in anchors):
            findings.append(f"deploy/prometheus/alerts.yml: {name}: runbook {runbook!r} is not a heading of docs/OPERATIONS.md")

dashboard = json.loads((ROOT / "deploy/grafana/rabt.json").read_text())
for panel in dashboard["panels"]:
    for target in panel.get("targets", []):
        for metric in sorted(metric_names(target["expr"]) - registered):
            findings.append(f"deploy/grafana/rabt.json: panel {panel['title']!r}: no metric {metric} in crates/rabt/src")

# --- pinned actions -----------------------------------------------------------
for workflow in sorted((ROOT / ".github/workflows").glob("*.y*ml")):
    for number, line in enumerate(workflow.read_text().splitlines(), 1):
        match = re.search(r"\buses:\s*(\S+)(.*)$", line)
        if not match or match.group(1).startswith(("./", "docker://")):
            continue
        ref, rest = match.groups()
        if not re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref) or not re.search(r"#\s*v\d+(\.\d+)*\b", rest):
            findings.append(f"{workflow.relative_to(ROOT)}:{number}: {ref} is not pinned by commit with a '# vX.Y.Z' comment")

for finding in findings:
    print(finding)
sys.exit(1 if findings else 0)
