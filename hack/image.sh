#!/usr/bin/env bash
# Builds the container image from the Dockerfile without a Docker daemon and without a
# registry: buildah (chroot isolation, --pull=never) on Debian bases with Python that
# mmdebstrap assembles from the Debian mirror apt uses here. Where a registry is
# reachable, `docker build -t reconciler:dev .` builds the same Dockerfile on
# python:3.11-slim instead.
#
# Idempotent and cached under ~/.cache/reconciler/image (RECONCILER_CACHE moves it):
#   bases  localhost/reconciler-{runtime,build}-base:<hash of the recipe and the apt
#          sources>, their root filesystems kept as tarballs (re-imported when the
#          storage is lost);
#   image  localhost/reconciler:<hash of the bases, the Dockerfile and the build
#          context>, also tagged localhost/reconciler:dev. A warm run only hashes (~2 s).
# The storage is CONTAINERS_STORAGE_CONF=<cache>/image/storage-<driver>.conf (printed;
# the driver is overlay where it can be mounted, else vfs): use the same with podman or
# buildah to run or inspect the image, e.g.
#   CONTAINERS_STORAGE_CONF=~/.cache/reconciler/image/storage-overlay.conf podman images
#
# Prints on stdout:  image: <ref>   size: <MB>   storage: <storage.conf>   (progress and
# timings go to stderr). Needs root (mmdebstrap and buildah as root, as CI runs; else it
# runs itself with sudo -n); installs mmdebstrap, buildah, podman and runc with apt-get
# when missing.
#
# Environment: RECONCILER_IMAGE_SUITE (default bookworm: Python 3.11),
# RECONCILER_IMAGE_MIRROR (a Debian mirror URL; default: the one apt uses here),
# RECONCILER_IMAGE_KEEP (how many built images to keep, default 2),
# RECONCILER_IMAGE_DRIVER (overlay or vfs; default: overlay when it can be mounted).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

log() { echo "image: $*" >&2; }
die() { log "$*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

if [[ $(id -u) -ne 0 ]]; then  # mmdebstrap and buildah build as root here
  sudo -n true 2>/dev/null || die "needs root (or sudo without a password)"
  exec sudo -n RECONCILER_CACHE="${RECONCILER_CACHE:-$HOME/.cache/reconciler}" \
    ${RECONCILER_IMAGE_SUITE:+RECONCILER_IMAGE_SUITE="$RECONCILER_IMAGE_SUITE"} \
    ${RECONCILER_IMAGE_MIRROR:+RECONCILER_IMAGE_MIRROR="$RECONCILER_IMAGE_MIRROR"} \
    ${RECONCILER_IMAGE_KEEP:+RECONCILER_IMAGE_KEEP="$RECONCILER_IMAGE_KEEP"} \
    ${RECONCILER_IMAGE_DRIVER:+RECONCILER_IMAGE_DRIVER="$RECONCILER_IMAGE_DRIVER"} \
    bash "$0" "$@"
fi

CACHE="${RECONCILER_CACHE:-$HOME/.cache/reconciler}/image"
SUITE="${RECONCILER_IMAGE_SUITE:-bookworm}"
KEEP="${RECONCILER_IMAGE_KEEP:-2}"
mkdir -p "$CACHE"

# One build at a time per cache (other sessions and CI jobs share it).
exec 9>"$CACHE/.lock"
flock 9

# ---------------------------------------------------------------- tools
missing=()
for tool in mmdebstrap:mmdebstrap buildah:buildah podman:podman runc:runc; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null >/dev/null 2>&1 || {
    apt-get update -q </dev/null >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null >/dev/null
  }
fi

# Containers storage of our own, kept in the cache: overlay where the kernel lets us
# mount it here (layers as diffs: fast, small), else vfs (every layer a full copy of the
# tree: slower and several GB, but it needs no mounts at all).
driver="${RECONCILER_IMAGE_DRIVER:-auto}"
if [[ "$driver" == auto ]]; then
  probe=$(mktemp -d "$CACHE/.probe.XXXXXX")
  mkdir "$probe/lower" "$probe/upper" "$probe/work" "$probe/merged"
  driver=vfs
  if mount -t overlay overlay \
       -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" \
       "$probe/merged" 2>/dev/null; then
    umount "$probe/merged" && driver=overlay
  fi
  rm -rf "$probe"
fi
export CONTAINERS_STORAGE_CONF="$CACHE/storage-$driver.conf"
cat >"$CONTAINERS_STORAGE_CONF.tmp" <<EOF
[storage]
driver = "$driver"
graphroot = "$CACHE/storage-$driver"
runroot = "$CACHE/run-$driver"
EOF
mv -f "$CONTAINERS_STORAGE_CONF.tmp" "$CONTAINERS_STORAGE_CONF"
podman=(podman --cgroup-manager=cgroupfs --events-backend=file)

# ---------------------------------------------------------------- base
# The apt sources for SUITE: the Debian archive entries apt uses on this machine (its
# deb822 .sources and one-line .list files), else deb.debian.org.
sources() {
  python3 - "$SUITE" "${RECONCILER_IMAGE_MIRROR:-}" <<'EOF'
import glob, re, sys
suite, mirror = sys.argv[1], sys.argv[2]
wanted = {suite: "", f"{suite}-updates": "", f"{suite}-security": "-security"}
found = {}
def add(uri, suites, comps):
    uri = uri.rstrip("/")
    for s in suites:
        kind = "-security" if s.endswith("-security") else ""
        # a Debian archive: .../debian or .../debian-security, the suite names ours
        if s in wanted and re.search(r"/debian" + kind + r"$", uri) and "main" in comps:
            found.setdefault(s, f"deb {uri} {s} main")
def stanzas(text):
    for block in re.split(r"\n\s*\n", text):
        fields, key = {}, None
        for line in block.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        yield fields
if not mirror:
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for f in stanzas(open(path).read()):
            if "deb" in f.get("types", "").split() and f.get("enabled", "yes") != "no":
                for uri in f.get("uris", "").split():
                    add(uri, f.get("suites", "").split(), f.get("components", "").split())
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        try:
            lines = open(path).read().splitlines()
        except OSError:
            continue
        for line in lines:
            parts = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
            if len(parts) >= 4 and parts[0] == "deb":
                add(parts[1], [parts[2]], parts[3:])
if mirror:  # the operator's mirror for the suite and its updates
    found[suite] = f"deb {mirror.rstrip('/')} {suite} main"
    found[f"{suite}-updates"] = f"deb {mirror.rstrip('/')} {suite}-updates main"
for s, kind in wanted.items():
    found.setdefault(s, f"deb http://deb.debian.org/debian{kind} {s} main")
    print(found[s])
EOF
}
mapfile -t SOURCES < <(sources)
((${#SOURCES[@]})) || die "no Debian sources for $SUITE"

# Two bases from the same sources, both Debian SUITE with merged /usr set up by
# mmdebstrap's hook (the usrmerge package would pull in Perl: 50 MB), without
# documentation, and with the stdlib's bytecode (the root filesystem is read-only):
#  runtime  what the image runs on: Python, CA certificates, ssh-keygen (signing and
#           verifying commits), gpg (verifying GPG signatures), tini (PID 1: forwards
#           SIGTERM, reaps the Terraform commands' orphans), useradd. No apt, no pip.
#  build    the build stage's: the same plus apt, venv with pip, and binutils (strip).
COMMON=(
  --format=tar --mode=auto --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-include=/usr/share/locale/locale.alias'
  --dpkgopt='path-exclude=/usr/share/lintian/*'
  --customize-hook='rm -rf "$1"/var/cache/* "$1"/var/log/*.log "$1"/var/lib/apt/lists/*'
)
RUNTIME_PACKAGES=python3,ca-certificates,openssh-client,gpg,tini,passwd
RECIPE_runtime=(--variant=essential "--include=$RUNTIME_PACKAGES" "${COMMON[@]}")
RECIPE_build=(--variant=apt "--include=$RUNTIME_PACKAGES,python3-venv,binutils" "${COMMON[@]}")
CHANGES=(
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  --change 'ENV LANG=C.UTF-8'
  --change 'CMD ["/usr/bin/python3"]'
)

# base NAME: sets REF_<NAME>; makes the image when it is not in the storage (from the
# cached tarball, else mmdebstrap). Safe to run several at once.
base() {
  local name="$1" key ref tar tmp t
  local -n recipe="RECIPE_$name"
  key=$(printf '%s\n' "base-v2" "$name" "$SUITE" "${SOURCES[@]}" "${recipe[@]}" \
          "${CHANGES[@]}" | sha256sum | cut -c1-16)
  ref="localhost/reconciler-$name-base:$key" tar="$CACHE/$name-base-$key.tar"
  printf -v "REF_$name" '%s' "$ref"
  [[ "${2:-}" == --ref-only ]] && return 0
  t=$(now)
  if "${podman[@]}" image exists "$ref"; then
    log "$name base $ref: cached"
    return 0
  fi
  if [[ ! -s "$tar" ]]; then
    log "$name base: mmdebstrap $SUITE (cold: a minute or two)"
    tmp="$CACHE/.$name-base-$key.tar.tmp"
    rm -f "$tmp"
    SOURCE_DATE_EPOCH=0 mmdebstrap "${recipe[@]}" "$SUITE" "$tmp" "${SOURCES[@]}" \
      >"$CACHE/mmdebstrap-$name.log" 2>&1 || {
        tail -20 "$CACHE/mmdebstrap-$name.log" >&2
        die "mmdebstrap failed (log: $CACHE/mmdebstrap-$name.log)"; }
    mv -f "$tmp" "$tar"
  fi
  "${podman[@]}" import --quiet "${CHANGES[@]}" \
    --message "reconciler $name base: Debian $SUITE (mmdebstrap)" "$tar" "$ref" >/dev/null
  log "$name base $ref ready in $(since "$t")s"
}

t0=$(now)
log "apt sources: ${SOURCES[*]}"
base runtime & runtime_job=$!
base build & build_job=$!
wait "$runtime_job" || die "runtime base failed"
wait "$build_job" || die "build base failed"
base runtime --ref-only
base build --ref-only
# older bases are of no use (their layers stay while an image still uses them)
find "$CACHE" -maxdepth 1 -name '*base-*.tar' ! -name "runtime-base-${REF_runtime##*:}.tar" \
  ! -name "build-base-${REF_build##*:}.tar" -delete
mapfile -t old < <("${podman[@]}" images --noheading --format '{{.Repository}}:{{.Tag}}' \
    | grep '^localhost/reconciler-.*base:' | grep -v -x -e "$REF_runtime" -e "$REF_build" \
    || true)
if ((${#old[@]})); then "${podman[@]}" rmi "${old[@]}" >/dev/null 2>&1 || true; fi

# ---------------------------------------------------------------- image
# The build context, staged: exactly the files the Dockerfile copies, so the key and the
# image are made from the same bytes even while someone edits the tree.
ctx=$(mktemp -d "$CACHE/.context.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
cp Dockerfile .dockerignore pyproject.toml README.md "$ctx/"
tar -C "$ROOT" --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' -cf - reconciler \
  | tar -C "$ctx" -xf -
ctx_hash=$(cd "$ctx" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum \
             | sha256sum | cut -c1-64)
key=$(printf '%s\n' "image-v1" "$REF_runtime" "$REF_build" "$ctx_hash" | sha256sum \
        | cut -c1-16)
REF="localhost/reconciler:$key"

t1=$(now)
if "${podman[@]}" image exists "$REF"; then
  log "image $REF: cached"
else
  version=$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' pyproject.toml)
  revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
  source=$(git remote get-url origin 2>/dev/null || true)
  # the build stage reaches PyPI over TLS: hand it this machine's CA bundle (an egress
  # proxy's CA may be in it) as a build secret, never a layer
  ca=""
  for f in "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
    [[ -n "$f" && -f "$f" ]] && { ca="$f"; break; }
  done
  build_start=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  log "building $REF on $REF_runtime (cold: a few minutes, PyPI downloads)"
  buildah bud --isolation chroot --pull=never --layers --format docker \
    --ulimit nofile=4096:4096 \
    ${ca:+--secret "id=ca,src=$ca"} \
    --build-arg "BASE=$REF_runtime" --build-arg "BUILD_BASE=$REF_build" \
    --label "org.opencontainers.image.version=$version" \
    --label "org.opencontainers.image.revision=$revision" \
    --label "org.opencontainers.image.created=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    ${source:+--label "org.opencontainers.image.source=$source"} \
    --tag "$REF" --file "$ctx/Dockerfile" "$ctx" >"$CACHE/build.log" 2>&1 || {
      tail -30 "$CACHE/build.log" >&2; die "buildah bud failed (log: $CACHE/build.log)"; }
  log "image built in $(since "$t1")s"
  # Keep this image, the KEEP-1 newest others, and this build's intermediate images (the
  # layer cache of the next build: its dependencies layer is reused while only the
  # source changes); drop older images and leftover intermediates.
  mapfile -t old < <("${podman[@]}" images --noheading --sort created \
      --format '{{.Repository}}:{{.Tag}}' localhost/reconciler | grep -v ':dev$' \
      | grep -v -x "$REF" | tail -n +"$KEEP" || true)
  if ((${#old[@]})); then "${podman[@]}" rmi --force "${old[@]}" >/dev/null 2>&1 || true; fi
  "${podman[@]}" image prune --force --filter "until=$build_start" >/dev/null 2>&1 || true
fi
"${podman[@]}" tag "$REF" localhost/reconciler:dev

size=$("${podman[@]}" image inspect --format '{{.Size}}' "$REF")
log "total $(since "$t0")s"
echo "image: $REF"
echo "size: $((size / 1000000)) MB"
echo "storage: $CONTAINERS_STORAGE_CONF"
