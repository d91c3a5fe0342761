#!/usr/bin/env bash
# Runs the real image in a real container engine and checks what production relies on.
#
#   cargo build --release --locked && deploy/container-test.sh [BINARY]
#
# Debian, as root. Installs podman, runc and debootstrap from Debian's packages when missing;
# builds the base image debian:bookworm-slim from Debian's packages once when it is not in
# podman's storage (no registry is reachable on the build machine); builds the runtime stage of
# the Dockerfile exactly as written, its build stage replaced by BINARY (default
# target/release/mondiapay-token-proxy); then runs the README's container commands as written,
# `docker` standing for podman with the runc runtime (crun fails on this host's cgroups), against a
# stand-in MondiaPay on the host. Any failed check stops it with one line saying what failed.
# Everything it starts is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BINARY=$(realpath "${1:-target/release/mondiapay-token-proxy}")
LABEL=mondiapay-token-proxy.container-test=1
IMAGE=mondiapay-token-proxy # the README's name
BASE=docker.io/library/debian:bookworm-slim

T0=$(date +%s)
STEP_T=$T0
step() {
  local now
  now=$(date +%s)
  [ "$now" = "$T0" ] && [ "$STEP_T" = "$T0" ] || echo "   ($((now - STEP_T)) s)"
  STEP_T=$now
  echo "-- $* [at $((now - T0)) s]"
}
fail() {
  echo "container test FAILED: $*" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || fail "run as root (podman as root, apt-get, chown 10001)"
[ -x "$BINARY" ] || fail "no release binary at $BINARY: run cargo build --release --locked first"

step "packages: podman, runc, debootstrap"
missing=()
for tool in podman runc debootstrap nginx curl jq openssl ss; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
python3 -c 'import yaml' 2>/dev/null || missing+=(python3-yaml)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing what provides ${missing[*]} from Debian's packages"
  apt-get update -qq
  # nginx and python3-yaml check deploy/nginx.conf and compose.yaml; curl and jq ask the API;
  # ss (iproute2) checks ports and connections.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    podman runc debootstrap containernetworking-plugins iptables nginx-light curl jq openssl \
    python3-yaml iproute2 >/dev/null
fi
# podman with the runc runtime: crun, its default, fails on this host's cgroups.
engine() { podman --runtime runc "$@"; }

step "base image $BASE"
if engine image exists "$BASE"; then
  echo "present in podman's storage"
else
  # The name the Dockerfile's FROM resolves to, built from Debian's packages: a larger image
  # than Docker Hub's (apt lists and docs stay), the same Debian release.
  echo "not present: building it with debootstrap (once; podman keeps it)"
  rootfs=$(mktemp -d /var/tmp/debian-base.XXXXXX)
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null ||
    fail "debootstrap could not build the base image (see above)"
  tar -C "$rootfs" -c . | engine import - "$BASE" >/dev/null
  rm -rf "$rootfs"
fi

WORK=$(mktemp -d /var/tmp/token-proxy-container-test.XXXXXX)
STUB_PID=
NGINX_PID=
# This test's containers and volumes (labelled), from this run or one that was killed; never
# anyone else's.
remove_ours() {
  podman ps -aq --filter "label=$LABEL" | xargs -r podman rm -f -t 0 >/dev/null
  podman volume ls -q --filter "label=$LABEL" | xargs -r podman volume rm -f >/dev/null
}
cleanup() {
  remove_ours 2>/dev/null || true
  [ -z "$STUB_PID" ] || kill "$STUB_PID" 2>/dev/null || true
  [ -z "$NGINX_PID" ] || kill "$NGINX_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
remove_ours
for name in token-proxy token-proxy-file; do
  ! podman container exists "$name" ||
    fail "a container named $name exists and is not this test's: remove it first"
done
! podman volume exists token-proxy-data ||
  fail "a volume named token-proxy-data exists and is not this test's: remove it first"
for port in 8080 8081 9081 18080 18081; do
  ! ss -Hltn "sport = :$port" | grep -q . ||
    fail "port $port is in use on this host; the README's commands publish it"
done

step "image: the Dockerfile's runtime stage around $BINARY"
mkdir -p "$WORK/context/config"
cp "$BINARY" "$WORK/context/mondiapay-token-proxy"
cp config/container.toml "$WORK/context/config/"
{
  # Stands in for the build stage: the same name, the binary where the build stage leaves it.
  echo "FROM scratch AS build"
  echo "COPY mondiapay-token-proxy /usr/local/bin/mondiapay-token-proxy"
  awk '/^FROM /{stage++} {lines[NR]=$0; st[NR]=stage} END {for (i=1;i<=NR;i++) if (st[i]==stage) print lines[i]}' Dockerfile
} >"$WORK/context/Dockerfile"
grep -q '^FROM debian:bookworm-slim$' "$WORK/context/Dockerfile" ||
  fail "the Dockerfile's last stage is not FROM debian:bookworm-slim"
engine build --quiet --layers=false --format docker --label "$LABEL" -t "$IMAGE" "$WORK/context" \
  >/dev/null || fail "podman build of the runtime stage failed (see above)"
# The image the tag left behind in an earlier run: only this test's, by its label.
podman image prune -f --filter "label=$LABEL" >/dev/null

step "stand-in MondiaPay on the host"
exec 3< <(exec python3 "$REPO/deploy/mondiapay-stub.py")
STUB_PID=$!
read -r -t 10 STUB_PORT <&3 || fail "the MondiaPay stub did not start"
stub_calls() { curl -sf "http://127.0.0.1:$STUB_PORT/calls" | jq -r .calls; }

# The user's steps: .env from .env.example, with MondiaPay reached on the host and real keys.
cd "$WORK"
API_KEY=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
ROTATION_KEY=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
# The token URL has a default (MondiaPay's own), so it is a commented line there: uncommented, as a
# user pointing the service at a sandbox would.
sed -e "s|^# TOKEN_PROXY__MONDIAPAY__TOKEN_URL=.*|TOKEN_PROXY__MONDIAPAY__TOKEN_URL=http://host.containers.internal:$STUB_PORT/v1/api/oauth/token|" \
  -e "s|^TOKEN_PROXY__INTERNAL__API_KEYS=.*|TOKEN_PROXY__INTERNAL__API_KEYS=$API_KEY,$ROTATION_KEY|" \
  "$REPO/.env.example" >.env
grep -q "^TOKEN_PROXY__INTERNAL__API_KEYS=$API_KEY" .env || fail ".env.example has no API keys line to fill in"
grep -q "^TOKEN_PROXY__MONDIAPAY__TOKEN_URL=http://host" .env || fail ".env.example has no token URL line to uncomment"

# `docker` as the README says it, run by podman: its containers and volumes labelled for clean-up;
# no writable /tmp under --read-only, as with Docker; and open-file and process limits this host
# allows (podman as root asks for limits above this machine's hard ones, and runc then fails
# with "error setting rlimit type 7/6"; Docker passes its daemon's).
docker() {
  case "$1" in
  run)
    shift
    # Without systemd podman cannot schedule the HEALTHCHECK (it says so on every start): the
    # test runs it itself with `podman healthcheck run`, so that line is dropped.
    engine run --label "$LABEL" --read-only-tmpfs=false \
      --ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=30000:30000 "$@" \
      2> >(grep -v 'unable to get systemd connection' >&2)
    ;;
  volume)
    [ "$2" = create ] || fail "unexpected docker volume $2"
    shift 2
    podman volume create --label "$LABEL" "$@"
    ;;
  *) engine "$@" 2> >(grep -v 'unable to get systemd connection' >&2) ;;
  esac
}
# A fenced block of README.md, the one after `<!-- container-test: NAME -->`.
readme_block() {
  awk -v mark="<!-- container-test: $1 -->" '
    $0 == mark {found=1; next}
    found && /^```/ {if (inside) exit; inside=1; next}
    inside {print}' "$REPO/README.md"
}
run_readme_block() {
  local text
  text=$(readme_block "$1")
  [ -n "$text" ] || fail "README.md has no container-test block named $1"
  # shellcheck disable=SC2001 # every line, not one substitution
  sed 's/^/   $ /' <<<"$text" >&2
  eval "$text"
}
# Waits for the container's Nth "listening" line in its log: start-up done, no polling.
wait_listening() {
  local name=$1 nth=$2
  local seen
  seen=$(timeout 60 grep -m "$nth" '"listening"' < <(podman logs -f "$name" 2>&1) | wc -l)
  [ "$seen" = "$nth" ] ||
    fail "$name did not log its listening line within 60 s: $(podman logs --tail 5 "$name" 2>&1)"
}
internal() { curl -s -H "Authorization: Bearer $API_KEY" "$@"; }

step "the README's run command, with .env from .env.example"
run_readme_block run >/dev/null
wait_listening token-proxy 1

step "non-root, read-only"
uid=$(engine exec token-proxy id -u)
[ "$uid" = 10001 ] || fail "the process runs as uid $uid, not 10001"
[ "$(engine inspect --format '{{.Config.User}}' "$IMAGE")" = 10001:10001 ] ||
  fail "the image's USER is not 10001:10001"
[ "$(engine inspect --format '{{.HostConfig.ReadonlyRootfs}}' token-proxy)" = true ] ||
  fail "the container's root file system is writable"
[ "$(engine exec token-proxy stat -c %u /data/tokens.db)" = 10001 ] ||
  fail "the store is not at /data/tokens.db (owned by 10001): image defaults not applied"

step "the internal API through the published port 127.0.0.1:8081"
[ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8081/v1/tokens/tok_x)" = 401 ] ||
  fail "the internal API did not answer 401 without a key through the published port"
record=$(internal -f -X POST -H 'Content-Type: application/json' \
  -d '{"code": "Acontainer1", "ref": "ORDER-1"}' http://127.0.0.1:8081/v1/exchange) ||
  fail "POST /v1/exchange through the published port failed: $record"
TOKEN_ID=$(echo "$record" | jq -r .id)
ACCESS_TOKEN=$(echo "$record" | jq -r .access_token)
[ "$(stub_calls)" = 1 ] || fail "MondiaPay was called $(stub_calls) times for one exchange, not once"
[ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/healthz)" = 200 ] ||
  fail "the public listener did not answer through the published port 8080"

step "HEALTHCHECK"
engine healthcheck run token-proxy || fail "podman healthcheck run reports the container unhealthy"
health=$(engine inspect --format '{{.State.Health.Status}}' token-proxy)
[ "$health" = healthy ] || fail "the container's health is $health, not healthy"

step "SIGTERM: exit 0 within the grace (the README's stop), then start again"
stopped_at=$(date +%s)
readme_block restart | sed 's/^/   $ /'
eval "$(readme_block restart | grep 'docker stop')" >/dev/null
took=$(($(date +%s) - stopped_at))
code=$(engine inspect --format '{{.State.ExitCode}}' token-proxy)
[ "$code" = 0 ] || fail "after SIGTERM the process exited $code, not 0"
# Exit 0, not 137: the process ended by itself before the stop's 45 s ran out.
echo "   stopped in $took s, exit 0"
eval "$(readme_block restart | grep 'docker start')" >/dev/null
wait_listening token-proxy 2

step "the restart kept the token, and its code is not spent twice"
again=$(internal -f "http://127.0.0.1:8081/v1/tokens/$TOKEN_ID") ||
  fail "GET /v1/tokens/$TOKEN_ID after the restart failed: $again"
[ "$(echo "$again" | jq -r .access_token)" = "$ACCESS_TOKEN" ] ||
  fail "the token read after the restart differs from the stored one"
same=$(internal -f -X POST -H 'Content-Type: application/json' \
  -d '{"code": "Acontainer1", "ref": "ORDER-1"}' http://127.0.0.1:8081/v1/exchange) ||
  fail "the same code after the restart failed: $same"
[ "$(echo "$same" | jq -r .id)" = "$TOKEN_ID" ] || fail "the same code after the restart got another record"
[ "$(stub_calls)" = 1 ] || fail "the code was sent to MondiaPay again after the restart"

step "a mounted config file beats the image's defaults (the README's file example)"
readme_block config-file >token-proxy.toml
output=$(run_readme_block run-with-file) || fail "the README's config-file commands failed: $output"
echo "$output" | grep -qx 'listen = "0.0.0.0:9081"' ||
  fail "check-config does not show the file's internal.listen: $output"
echo "$output" | grep -qx 'url = "sqlite:///data/proxy.db"' ||
  fail "check-config does not show the file's store.url: $output"
wait_listening token-proxy-file 1
[ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9081/readyz)" = 200 ] ||
  fail "the file's internal listener 0.0.0.0:9081 does not answer through the published port"
[ -f data/proxy.db ] || fail "the file's store.url was not used: no data/proxy.db in the bind mount"
engine healthcheck run token-proxy-file ||
  fail "the HEALTHCHECK does not follow the config file's internal.listen"

step "deploy/nginx.conf in front of this container: the caller's request id, keep-alive"
# The host's nginx (Debian's 1.22) with the file as written, but the replicas' names pointed at
# this container's published ports, nginx's own ports moved, and `resolve` dropped (1.27.3+;
# compose.yaml pins 1.28): Docker's DNS and a second replica are not here.
mkdir nginx
sed -e 's/ resolve / /' -e 's/replica-[12]:/127.0.0.1:/' \
  -e 's/listen 8080;/listen 127.0.0.1:18080;/' -e 's/listen 8081;/listen 127.0.0.1:18081;/' \
  "$REPO/deploy/nginx.conf" >nginx/nginx.conf
grep -q 'listen 127.0.0.1:18081;' nginx/nginx.conf || fail "deploy/nginx.conf has no listen 8081"
nginx_run() { nginx -c "$WORK/nginx/nginx.conf" -g "pid $WORK/nginx/pid; error_log $WORK/nginx/error.log;" "$@"; }
nginx_run -t -q || fail "nginx -t refuses deploy/nginx.conf"
nginx_run
NGINX_PID=$(cat nginx/pid)
id_back=$(curl -s -o /dev/null -w '%header{x-request-id}' -H 'X-Request-Id: caller-7f3a.9' \
  http://127.0.0.1:18081/healthz)
[ "$id_back" = caller-7f3a.9 ] || fail "nginx replaced the caller's X-Request-Id (came back: $id_back)"
id_back=$(curl -s -o /dev/null -w '%header{x-request-id}' http://127.0.0.1:18081/healthz)
[[ "$id_back" =~ ^[0-9a-f]{32}$ ]] || fail "nginx gave a request without an id none of its own: $id_back"
# nginx keeps its connection to the replica open after the answer (keepalive_timeout 5 s).
pid_pattern="pid=($(pgrep -d '|' -P "$NGINX_PID")),"
ss -Htnp state established '( dport = :8081 )' | grep -Eq "$pid_pattern" ||
  fail "nginx closed its connection to the replica after the answer: no keep-alive"
[ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:18080/healthz)" = 200 ] ||
  fail "the public side of deploy/nginx.conf does not reach the replica"

step "compose.yaml (not run: no Docker engine or compose here)"
python3 - "$REPO/compose.yaml" <<'PY' || fail "compose.yaml: see above"
import re, sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
s = c["services"]
problems = []
def seconds(text):
    m = re.fullmatch(r"(\d+)s", str(text))
    return int(m.group(1)) if m else 0
for name in ("replica-1", "replica-2"):
    r = s[name]
    if seconds(r.get("stop_grace_period")) <= 30:
        problems.append(f"{name}: stop_grace_period must be above the service's 30 s grace")
    if any("SECRET" in k or "KEY" in k or k.endswith("__URL") for k in (r.get("environment") or {})):
        problems.append(f"{name}: a secret in the environment")
    if "env_file" in r:
        problems.append(f"{name}: env_file would put .env's secrets in the environment")
    if len(r.get("secrets") or []) < 4:
        problems.append(f"{name}: the four secrets do not come through compose's secrets")
    if set(r["networks"]) != {"database", "proxy"}:
        problems.append(f"{name}: networks {sorted(r['networks'])}")
    if r["depends_on"]["postgres"]["condition"] != "service_healthy":
        problems.append(f"{name}: not gated on a healthy PostgreSQL")
if list(s["postgres"]["networks"]) != ["database"]:
    problems.append("postgres must be on the database network only")
if "database" in s["proxy"]["networks"]:
    problems.append("nginx must not reach the database network")
if not c["networks"]["database"].get("internal"):
    problems.append("the database network must be internal")
for name in ("replica-1", "replica-2"):
    if s["proxy"]["depends_on"].get(name, {}).get("condition") != "service_healthy":
        problems.append(f"nginx is not gated on a healthy {name}")
for p in problems:
    print("compose.yaml:", p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY

step "compose's settings and secrets, as a replica of compose.yaml loads them"
mkdir compose
(cd compose && run_readme_block compose-secrets >/dev/null) || fail "the README's secrets commands failed"
mounts=(-v "$REPO/config/compose.toml:/config/token-proxy.toml:ro")
for secret in mondiapay_client_secret token_proxy_api_keys token_proxy_encryption_key \
  token_proxy_database_url; do
  mounts+=(-v "$WORK/compose/secrets/$secret:/run/secrets/$secret:ro")
done
output=$(docker run --rm -e TOKEN_PROXY_CONFIG=/config/token-proxy.toml "${mounts[@]}" \
  "$IMAGE" check-config 2>&1) || fail "config/compose.toml with the README's secrets: $output"
echo "$output" | grep -qx 'url = "postgres://token_proxy:%5Bredacted%5D@localhost/token_proxy?host=%2Fvar%2Frun%2Fpostgresql"' ||
  fail "check-config does not show the database URL from the secret: $output"
! echo "$output" | grep -qF "$(cat compose/secrets/postgres_password)" ||
  fail "check-config printed the database password"

step "done"
echo "container test passed in $(($(date +%s) - T0)) s"
