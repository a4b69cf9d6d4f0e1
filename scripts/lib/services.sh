# shellcheck shell=bash
# Provision Postgres and Redis for scripts/dev and scripts/test.
#
# Sourced, not executed. Functions:
#   rabt_ensure_postgres        export DATABASE_URL (superuser, maintenance database)
#   rabt_ensure_redis           export REDIS_URL
#   rabt_stop_private_services  stop what this shell started (and only that)
#   rabt_stop_data_dir_services stop any private servers of $RABT_DATA_DIR
#   rabt_ensure_postgres_binaries / rabt_ensure_redis_binaries
#                               install the server packages when missing
#
# Order for each service: a URL already in the environment, then a local
# server on the standard port (127.0.0.1:5432 with trust auth for user
# postgres, 127.0.0.1:6379), then a private server under $RABT_DATA_DIR
# (default <repo>/.data) on 127.0.0.1:54329 / 127.0.0.1:63790.
#
# Knobs: RABT_DATA_DIR, RABT_PG_FAST=1 (fsync=off), RABT_PG_PORT (54329),
# RABT_REDIS_PORT (63790), RABT_PRIVATE_SERVICES=1 (skip the first two steps:
# always the private servers, as the load tools need).
#
# The functions return non-zero (after a message on stderr) instead of
# exiting, so callers may treat a service as optional.

if [[ -z "${RABT_ROOT:-}" ]]; then
    RABT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
fi
: "${RABT_DATA_DIR:=$RABT_ROOT/.data}"
: "${RABT_PG_PORT:=54329}"
: "${RABT_REDIS_PORT:=63790}"

# What this shell started; rabt_stop_private_services stops only these.
_RABT_STARTED_PG_DATA=""
_RABT_STARTED_PG_BIN=""
_RABT_STARTED_PG_USER=""
_RABT_STARTED_REDIS_PIDFILE=""
# Set to 1 when the chosen server is the private one (started or reused).
RABT_PG_IS_PRIVATE=0
RABT_REDIS_IS_PRIVATE=0

_rabt_say() { printf 'services: %s\n' "$*" >&2; }
_rabt_err() { printf 'services: error: %s\n' "$*" >&2; }

# Print a URL without its user:password@ part.
rabt_redact_url() {
    local url="$1"
    if [[ "$url" == *://*@* ]]; then
        local scheme="${url%%://*}" rest="${url#*://}"
        local authority="${rest%%/*}"
        local tail="${rest#"$authority"}"
        printf '%s://%s%s\n' "$scheme" "${authority##*@}" "$tail"
    else
        printf '%s\n' "$url"
    fi
}

# A path shown relative to the repository when it lies inside it.
_rabt_pretty_path() {
    local p="$1"
    if [[ "$p" == "$RABT_ROOT"/* ]]; then
        printf '%s\n' "${p#"$RABT_ROOT"/}"
    else
        printf '%s\n' "$p"
    fi
}

# Run a command as root: directly, or through sudo.
_rabt_as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        _rabt_err "need root to run '$*' (not root, and sudo is not installed)"
        return 1
    fi
}

_rabt_apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        _rabt_err "apt-get not found: install package(s) $* by hand"
        return 1
    fi
    _rabt_say "installing $* with apt-get"
    _rabt_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || {
        _rabt_err "apt-get update failed"
        return 1
    }
    _rabt_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2 || {
        _rabt_err "apt-get install $* failed"
        return 1
    }
}

# ---------------------------------------------------------------- Postgres

# Directory holding initdb/pg_ctl of the highest installed major version.
_rabt_pg_bindir() {
    local dir best="" best_ver=-1 ver
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]] || continue
        ver="${dir#/usr/lib/postgresql/}"
        ver="${ver%%/*}"
        ver="${ver%%.*}"
        [[ "$ver" =~ ^[0-9]+$ ]] || continue
        if ((ver > best_ver)); then
            best_ver=$ver
            best=$dir
        fi
    done
    [[ -n "$best" ]] || return 1
    printf '%s\n' "$best"
}

rabt_ensure_postgres_binaries() {
    _rabt_pg_bindir >/dev/null && command -v psql >/dev/null 2>&1 && return 0
    _rabt_apt_install postgresql || return 1
    _rabt_pg_bindir >/dev/null || {
        _rabt_err "postgresql installed, but no initdb/pg_ctl under /usr/lib/postgresql/*/bin"
        return 1
    }
}

# Does a Postgres URL answer a query?
_rabt_pg_answers() {
    local url="$1"
    if command -v psql >/dev/null 2>&1; then
        PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-5}" psql -w -X -q "$url" -Atc 'select 1' >/dev/null 2>&1
    elif command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -t 5 -d "$url" >/dev/null 2>&1
    else
        return 1
    fi
}

_rabt_pg_client_present() {
    command -v psql >/dev/null 2>&1 || command -v pg_isready >/dev/null 2>&1
}

# The system user that runs the private cluster when we are root.
_rabt_pg_os_user() {
    if id -u postgres >/dev/null 2>&1; then
        printf 'postgres\n'
        return 0
    fi
    if ! id -u rabt-pg >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin rabt-pg >&2 || {
            _rabt_err "could not create system user rabt-pg"
            return 1
        }
    fi
    printf 'rabt-pg\n'
}

# Run a command as the cluster owner (from / so its cwd is always readable).
_rabt_pg_run() {
    local user="$1"
    shift
    if [[ -n "$user" ]]; then
        (cd / && runuser -u "$user" -- "$@")
    else
        "$@"
    fi
}

# Where the private cluster lives: $RABT_DATA_DIR, unless the cluster owner
# cannot reach it (a parent closed to it, e.g. under /root): then in /tmp.
_rabt_pg_base() {
    local user="$1"
    if [[ -z "$user" ]] || _rabt_pg_run "$user" test -x "$RABT_DATA_DIR" -a -r "$RABT_DATA_DIR"; then
        printf '%s\n' "$RABT_DATA_DIR"
    else
        printf '%s/rabt-pg-%s\n' "${TMPDIR:-/tmp}" "$(printf '%s' "$RABT_DATA_DIR" | cksum | cut -d' ' -f1)"
    fi
}

# Start (or reuse) the private cluster; sets DATABASE_URL on success.
_rabt_pg_private() {
    local bindir user="" base pgdata sockdir logfile port="$RABT_PG_PORT"
    rabt_ensure_postgres_binaries || return 1
    bindir="$(_rabt_pg_bindir)" || return 1

    mkdir -p "$RABT_DATA_DIR" || {
        _rabt_err "cannot create $RABT_DATA_DIR"
        return 1
    }
    if [[ $EUID -eq 0 ]]; then
        command -v runuser >/dev/null 2>&1 || {
            _rabt_err "running as root, but runuser (util-linux) is missing: initdb refuses to run as root"
            return 1
        }
        user="$(_rabt_pg_os_user)" || return 1
    fi
    base="$(_rabt_pg_base "$user")"
    if [[ "$base" != "$RABT_DATA_DIR" ]]; then
        mkdir -p "$base" || return 1
        chmod 755 "$base" || return 1
        _rabt_say "$RABT_DATA_DIR is not reachable by user $user; keeping the cluster in $base"
    fi
    pgdata="$base/pg"
    logfile="$base/pg.log"
    sockdir="$base/pg-run"
    # Unix socket paths are limited to ~107 bytes.
    if ((${#sockdir} > 80)); then
        sockdir="${TMPDIR:-/tmp}/rabt-pg-sock-$(printf '%s' "$pgdata" | cksum | cut -d' ' -f1)"
    fi
    mkdir -p "$pgdata" "$sockdir" || return 1
    touch "$logfile" || return 1
    chmod 700 "$pgdata"
    if [[ -n "$user" ]]; then
        chown "$user:" "$pgdata" "$sockdir" "$logfile" || return 1
    fi

    local shown
    shown="$(_rabt_pretty_path "$pgdata")"

    if [[ ! -s "$pgdata/PG_VERSION" ]]; then
        local -a locale_opt=(--locale=C.UTF-8)
        local locales
        if command -v locale >/dev/null 2>&1; then
            locales="$(locale -a 2>/dev/null || true)"
            grep -qiE '^c\.utf-?8$' <<<"$locales" || locale_opt=(--no-locale)
        fi
        _rabt_say "initialising a private cluster in $shown"
        if ! _rabt_pg_run "$user" "$bindir/initdb" -D "$pgdata" --auth=trust -U postgres \
            --encoding=UTF8 "${locale_opt[@]}" >"$base/initdb.log" 2>&1; then
            if [[ "${locale_opt[0]}" != --no-locale ]] && grep -qi locale "$base/initdb.log"; then
                _rabt_say "locale C.UTF-8 unusable; retrying initdb with --no-locale"
                _rabt_pg_run "$user" "$bindir/initdb" -D "$pgdata" --auth=trust -U postgres \
                    --encoding=UTF8 --no-locale >"$base/initdb.log" 2>&1
            else
                false
            fi || {
                _rabt_err "initdb failed; see $base/initdb.log:"
                tail -n 20 "$base/initdb.log" >&2
                return 1
            }
        fi
    fi

    local status=0
    _rabt_pg_run "$user" "$bindir/pg_ctl" -D "$pgdata" status >/dev/null 2>&1 || status=$?
    if ((status == 0)); then
        _rabt_say "reusing the private cluster already running in $shown"
    else
        local -a opts=(-p "$port" -k "$sockdir" -c listen_addresses=127.0.0.1 -c max_connections=300)
        if [[ "${RABT_PG_FAST:-0}" == 1 ]]; then
            opts+=(-c fsync=off -c synchronous_commit=off -c full_page_writes=off)
        fi
        # pg_ctl -o takes one string; none of the parts above contain spaces
        # unless the socket dir does, so quote that one for the server's shell.
        local optstr="" o
        for o in "${opts[@]}"; do
            optstr+="${optstr:+ }$(printf '%q' "$o")"
        done
        if ! _rabt_pg_run "$user" "$bindir/pg_ctl" -D "$pgdata" -w -t 60 -l "$logfile" \
            start -o "$optstr" >/dev/null 2>&1; then
            _rabt_err "the private Postgres did not start (port $port busy?); last lines of $logfile:"
            tail -n 20 "$logfile" >&2
            return 1
        fi
        _RABT_STARTED_PG_DATA="$pgdata"
        _RABT_STARTED_PG_BIN="$bindir"
        _RABT_STARTED_PG_USER="$user"
    fi

    local url="postgres://postgres@127.0.0.1:$port/postgres"
    local i
    for ((i = 0; i < 30; i++)); do
        _rabt_pg_answers "$url" && break
        sleep 0.5
    done
    if ! _rabt_pg_answers "$url"; then
        _rabt_err "the private cluster in $shown runs, but $url does not answer (another server on port $port?)"
        return 1
    fi
    export DATABASE_URL="$url"
    # shellcheck disable=SC2034 # read by scripts/dev
    RABT_PG_IS_PRIVATE=1
    _rabt_say "postgres at 127.0.0.1:$port (private cluster in $shown)"
}

rabt_ensure_postgres() {
    if [[ "${RABT_PRIVATE_SERVICES:-0}" == 1 ]]; then
        _rabt_pg_private
        return
    fi
    if [[ -n "${DATABASE_URL:-}" ]]; then
        local shown
        shown="$(rabt_redact_url "$DATABASE_URL")"
        if ! _rabt_pg_client_present; then
            _rabt_say "postgres at $shown (from DATABASE_URL; not checked: neither psql nor pg_isready is installed)"
        elif ! _rabt_pg_answers "$DATABASE_URL"; then
            _rabt_err "DATABASE_URL is set ($shown) but Postgres does not answer there; fix or unset it"
            return 1
        else
            _rabt_say "postgres at $shown (from DATABASE_URL)"
        fi
        export DATABASE_URL
        return 0
    fi

    if command -v psql >/dev/null 2>&1 &&
        PGCONNECT_TIMEOUT=3 PGPASSWORD='' PGPASSFILE=/dev/null \
            psql -w -X -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
        export DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
        _rabt_say "postgres at 127.0.0.1:5432 (local server, user postgres, trust auth)"
        return 0
    fi

    _rabt_pg_private
}

# ------------------------------------------------------------------- Redis

rabt_ensure_redis_binaries() {
    command -v redis-server >/dev/null 2>&1 && return 0
    _rabt_apt_install redis-server || return 1
    command -v redis-server >/dev/null 2>&1 || {
        _rabt_err "redis-server installed, but not on PATH"
        return 1
    }
}

# Send PING over bash's /dev/tcp; print the first reply line.
_rabt_redis_tcp_ping() {
    local host="$1" port="$2" line
    # shellcheck disable=SC2016 # expanded by the inner bash
    line="$(timeout 3 bash -c '
        exec 3<>"/dev/tcp/$1/$2" || exit 1
        printf "PING\r\n" >&3
        IFS= read -r -t 2 line <&3 || exit 1
        printf "%s\n" "$line"
    ' rabt-ping "$host" "$port" 2>/dev/null)" || return 1
    printf '%s\n' "${line%$'\r'}"
}

# host and port of a redis:// URL, as two lines.
_rabt_redis_host_port() {
    local rest="${1#*://}" hostport host port
    rest="${rest%%/*}"
    rest="${rest%%\?*}"
    hostport="${rest##*@}"
    if [[ "$hostport" == \[* ]]; then
        host="${hostport%%]*}"
        host="${host#[}"
        port="${hostport#*]}"
        port="${port#:}"
    elif [[ "$hostport" == *:* ]]; then
        host="${hostport%:*}"
        port="${hostport##*:}"
    else
        host="$hostport"
        port=""
    fi
    printf '%s\n%s\n' "${host:-127.0.0.1}" "${port:-6379}"
}

# Does a Redis URL answer PING?
_rabt_redis_answers() {
    local url="$1" reply
    if command -v redis-cli >/dev/null 2>&1 && [[ "$url" != rediss://* ]]; then
        reply="$(timeout 5 redis-cli --no-auth-warning -u "$url" ping 2>/dev/null)" || return 1
        [[ "$reply" == PONG ]]
    else
        local hp host port
        hp="$(_rabt_redis_host_port "$url")"
        host="${hp%%$'\n'*}"
        port="${hp#*$'\n'}"
        reply="$(_rabt_redis_tcp_ping "$host" "$port")" || return 1
        # -NOAUTH: the server is there and wants the password in the URL.
        [[ "$reply" == +PONG || "$reply" == -NOAUTH* ]]
    fi
}

_rabt_redis_private() {
    local port="$RABT_REDIS_PORT" dir pidfile logfile url
    rabt_ensure_redis_binaries || return 1
    dir="$RABT_DATA_DIR/redis"
    pidfile="$dir/redis.pid"
    logfile="$dir/redis.log"
    url="redis://127.0.0.1:$port"
    mkdir -p "$dir" || {
        _rabt_err "cannot create $dir"
        return 1
    }
    local shown
    shown="$(_rabt_pretty_path "$dir")"

    local pid=""
    [[ -s "$pidfile" ]] && pid="$(<"$pidfile")"
    if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
        [[ "$(_rabt_redis_tcp_ping 127.0.0.1 "$port")" == +PONG ]]; then
        export REDIS_URL="$url"
        # shellcheck disable=SC2034 # read by scripts/dev
        RABT_REDIS_IS_PRIVATE=1
        _rabt_say "redis at 127.0.0.1:$port (reusing the private redis-server in $shown)"
        return 0
    fi
    rm -f "$pidfile"

    if ! redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --save "" \
        --appendonly no --dir "$dir" --pidfile "$pidfile" --logfile "$logfile" >/dev/null 2>&1; then
        _rabt_err "redis-server did not start; last lines of $logfile:"
        tail -n 20 "$logfile" >&2 2>/dev/null
        return 1
    fi
    local i
    for ((i = 0; i < 50; i++)); do
        [[ "$(_rabt_redis_tcp_ping 127.0.0.1 "$port")" == +PONG ]] && break
        sleep 0.2
    done
    # Wait for the pidfile, so that the stop function can find the server.
    for ((i = 0; i < 25; i++)); do
        [[ -s "$pidfile" ]] && break
        sleep 0.2
    done
    if [[ "$(_rabt_redis_tcp_ping 127.0.0.1 "$port")" != +PONG || ! -s "$pidfile" ]]; then
        _rabt_err "the private redis-server does not answer on 127.0.0.1:$port (port busy?); last lines of $logfile:"
        tail -n 20 "$logfile" >&2 2>/dev/null
        [[ -s "$pidfile" ]] && kill "$(<"$pidfile")" 2>/dev/null
        return 1
    fi
    _RABT_STARTED_REDIS_PIDFILE="$pidfile"
    # shellcheck disable=SC2034 # read by scripts/dev
    RABT_REDIS_IS_PRIVATE=1
    export REDIS_URL="$url"
    _rabt_say "redis at 127.0.0.1:$port (private redis-server in $shown)"
}

rabt_ensure_redis() {
    if [[ "${RABT_PRIVATE_SERVICES:-0}" == 1 ]]; then
        _rabt_redis_private
        return
    fi
    if [[ -n "${REDIS_URL:-}" ]]; then
        local shown
        shown="$(rabt_redact_url "$REDIS_URL")"
        if ! _rabt_redis_answers "$REDIS_URL"; then
            _rabt_err "REDIS_URL is set ($shown) but Redis does not answer PING there; fix or unset it"
            return 1
        fi
        export REDIS_URL
        _rabt_say "redis at $shown (from REDIS_URL)"
        return 0
    fi

    if [[ "$(_rabt_redis_tcp_ping 127.0.0.1 6379)" == +PONG ]]; then
        export REDIS_URL="redis://127.0.0.1:6379"
        _rabt_say "redis at 127.0.0.1:6379 (local server)"
        return 0
    fi

    _rabt_redis_private
}

# ------------------------------------------------------------------- Stop

_rabt_pg_stop() {
    local user="$1" bindir="$2" pgdata="$3"
    if _rabt_pg_run "$user" "$bindir/pg_ctl" -D "$pgdata" -m fast -w -t 60 stop >/dev/null 2>&1; then
        _rabt_say "stopped the private Postgres ($(_rabt_pretty_path "$pgdata"))"
    else
        _rabt_err "could not stop the private Postgres in $pgdata"
        return 1
    fi
}

_rabt_redis_stop() {
    local pidfile="$1" pid="" i
    [[ -s "$pidfile" ]] && pid="$(<"$pidfile")"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        _rabt_err "the private redis-server (pid $pid) did not stop"
        return 1
    fi
    _rabt_say "stopped the private redis-server ($(_rabt_pretty_path "$(dirname "$pidfile")"))"
}

# Stop the private servers that this shell started (not those it reused).
rabt_stop_private_services() {
    local rc=0
    if [[ -n "$_RABT_STARTED_PG_DATA" ]]; then
        _rabt_pg_stop "$_RABT_STARTED_PG_USER" "$_RABT_STARTED_PG_BIN" "$_RABT_STARTED_PG_DATA" || rc=1
        _RABT_STARTED_PG_DATA=""
    fi
    if [[ -n "$_RABT_STARTED_REDIS_PIDFILE" ]]; then
        _rabt_redis_stop "$_RABT_STARTED_REDIS_PIDFILE" || rc=1
        _RABT_STARTED_REDIS_PIDFILE=""
    fi
    return "$rc"
}

# Stop whatever private servers run from $RABT_DATA_DIR, whoever started them.
rabt_stop_data_dir_services() {
    local rc=0 user="" bindir pgdata
    if bindir="$(_rabt_pg_bindir)"; then
        if [[ $EUID -eq 0 ]]; then
            if id -u postgres >/dev/null 2>&1; then
                user=postgres
            elif id -u rabt-pg >/dev/null 2>&1; then
                user=rabt-pg
            fi
        fi
        pgdata="$(_rabt_pg_base "$user")/pg"
        if [[ -s "$pgdata/PG_VERSION" ]] &&
            _rabt_pg_run "$user" "$bindir/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
            _rabt_pg_stop "$user" "$bindir" "$pgdata" || rc=1
        fi
    fi
    _rabt_redis_stop "$RABT_DATA_DIR/redis/redis.pid" || rc=1
    _RABT_STARTED_PG_DATA=""
    _RABT_STARTED_REDIS_PIDFILE=""
    return "$rc"
}
