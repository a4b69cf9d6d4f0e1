#!/usr/bin/env bash
# Runs the client's tests (compiled into build/ by `npm run build:test`)
# against a real rabt: `rabt serve` on a free loopback port with a throwaway
# database on the Postgres that scripts/lib/services.sh finds (created here,
# dropped at the end), Redis likewise (its own key prefix), and mail written
# as .eml files to a temporary folder the tests read the verification links
# from.
#
#   clients/typescript/scripts/test-against-server.sh [test files…]
#
# RABT_BIN: the server binary (default target/debug/rabt of the repository).
# RABT_KEEP_SERVICES=1 leaves private Postgres/Redis started here running.
set -euo pipefail

package_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RABT_ROOT="$(cd "$package_dir/../.." && pwd)"
# shellcheck source=../../../scripts/lib/services.sh
source "$RABT_ROOT/scripts/lib/services.sh"

rabt_bin="${RABT_BIN:-$RABT_ROOT/target/debug/rabt}"
[[ "$rabt_bin" == /* ]] || rabt_bin="$RABT_ROOT/$rabt_bin"
db_name="rabt_client_ts_$$_$RANDOM"
db_created=0
server_pid=""
run_dir=""

say() { printf 'client tests: %s\n' "$*" >&2; }

cleanup() {
    local rc=$?
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if ((db_created)); then
        psql -w -X -q "$DATABASE_URL" -c "drop database if exists $db_name with (force)" || true
    fi
    if [[ -n "$run_dir" ]]; then
        if ((rc != 0)) && [[ -s "$run_dir/server.log" ]]; then
            say "last lines of the server's log:"
            tail -n 20 "$run_dir/server.log" >&2
        fi
        rm -rf "$run_dir"
    fi
    if [[ "${RABT_KEEP_SERVICES:-0}" != 1 ]]; then
        rabt_stop_private_services || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ ! -x "$rabt_bin" ]]; then
    say "no rabt binary at $rabt_bin; build it (cargo build --bin rabt) or set RABT_BIN"
    exit 1
fi
if [[ ! -d "$package_dir/build/test" ]]; then
    say "no compiled tests in build/test; run 'npm run build:test' first"
    exit 1
fi

rabt_ensure_postgres
redis_url=""
if rabt_ensure_redis; then
    redis_url="$REDIS_URL"
else
    say "no Redis; the server keeps its short-lived state in memory"
fi

run_dir="$(mktemp -d "${TMPDIR:-/tmp}/rabt-client-ts.XXXXXX")"
mkdir -p "$run_dir/mail" "$run_dir/files"

psql -w -X -q "$DATABASE_URL" -c "create database $db_name"
db_created=1
db_url="${DATABASE_URL%/*}/$db_name"

port="$(node -e 'const s = require("node:net").createServer();
s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });')"
base="http://127.0.0.1:$port"
# The tests sign access tokens of their own (an expired one, for the refresh
# race) with the server's secret.
jwt_secret="client-tests-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"

# High rates are fine: every test signs up and in from the same address.
env -u RABT_BIN -u RABT_SMTP_URL -u RABT_SKIP_CLIENT_TESTS -u RABT_SKIP_SECURITY_SCAN \
    DATABASE_URL="$db_url" ${redis_url:+REDIS_URL="$redis_url"} \
    RABT_REDIS_KEY_PREFIX="rabt-client-ts-$port:" \
    RABT_ENV=test RABT_BIND="127.0.0.1:$port" RABT_PUBLIC_URL="$base" \
    RABT_JWT_SECRET="$jwt_secret" \
    RABT_MAIL_DIR="$run_dir/mail" RABT_STORAGE_URL="file://$run_dir/files" \
    RABT_LOG_FORMAT=json RUST_LOG="warn,rabt=info" RABT_JOB_POLL_INTERVAL_MS=100 \
    RABT_RATE_LIMIT_AUTH_PER_MINUTE=1000000 RABT_RATE_LIMIT_WRITE_PER_MINUTE=1000000 \
    RABT_RATE_LIMIT_READ_PER_MINUTE=1000000 RABT_RATE_LIMIT_AUTH_ADDRESS_PER_MINUTE=1000000 \
    RABT_RATE_LIMIT_ACCOUNT_PER_MINUTE=1000000 RABT_RATE_LIMIT_EMAIL_PER_HOUR=1000000 \
    RABT_RATE_LIMIT_REALTIME_PER_MINUTE=1000000 \
    "$rabt_bin" serve >"$run_dir/server.log" 2>&1 &
server_pid=$!

ready=0
for _ in $(seq 300); do
    if node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' \
        "$base/health/ready" 2>/dev/null; then
        ready=1
        break
    fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.2
done
if ((!ready)); then
    say "the server did not become ready"
    exit 1
fi
say "rabt at $base (database $db_name, mail in $run_dir/mail)"

cd "$package_dir"
if (($# > 0)); then
    tests=("$@")
else
    tests=(build/test/*.test.js)
fi
RABT_URL="$base" RABT_MAIL_DIR="$run_dir/mail" RABT_TEST_JWT_SECRET="$jwt_secret" \
    node --test --test-timeout=30000 "${tests[@]}"
