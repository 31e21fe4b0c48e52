#!/usr/bin/env bash
# Installs what lambdapipe needs, only what is missing, from the package registries alone:
# Debian packages, the Python environment (uv, which also builds the Rust validator core in
# native/ with cargo) and the JVM artifacts (Maven, poms in jvm/).
# A second run does no network work.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
HOME_DIR=${LAMBDAPIPE_HOME:-.lambdapipe}
LIB=$HOME_DIR/lib
M2_REPO=${MAVEN_REPO_LOCAL:-$HOME/.m2/repository}

step() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }
ok() { printf '    %s\n' "$*"; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@";
  elif command -v sudo >/dev/null; then sudo "$@";
  else die "need root to run: $*  (run it yourself, then make setup again)"; fi
}

# --- Debian packages -------------------------------------------------------------------
step "system packages"
missing=()
java_major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1 || true)
[ "${java_major:-0}" -ge 17 ] 2>/dev/null || missing+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || missing+=(maven)
ls /usr/lib/postgresql/1[5-9]/bin/postgres >/dev/null 2>&1 || missing+=(postgresql-15)
command -v prometheus >/dev/null || missing+=(prometheus)
command -v unzip >/dev/null || missing+=(unzip)
# headless browser for the dashboard's browser tests
command -v chromium >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  ok "installing: ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  ok "java ${java_major}, maven, postgresql, prometheus, unzip, chromium: present"
fi

# --- Rust toolchain (uv builds native/, the validator core, from source) -----------------
step "rust toolchain"
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null || die "cargo not found: the validator core in native/ is built from source.
    Install Rust with rustup (https://rustup.rs, the stable toolchain), open a new shell so that
    ~/.cargo/bin is on PATH, then run make setup again."
ok "$(cargo --version)"

# --- Python environment ----------------------------------------------------------------
step "python environment"
if ! command -v uv >/dev/null; then
  ok "installing uv ${UV_VERSION}"
  python3 -m pip install -q "uv==${UV_VERSION}"
fi
uv sync --frozen --quiet
ok "$(uv run python --version), lambdapipe $(uv run python -c 'import lambdapipe; print(lambdapipe.__version__)')"

# --- JVM artifacts ---------------------------------------------------------------------
step "JVM artifacts (jvm/pom.xml)"
stamp=$LIB/.stamp
want=$(cat jvm/pom.xml jvm/*/pom.xml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  ok "up to date in $LIB"
else
  rm -rf "$LIB"
  mkdir -p "$LIB"
  mvn -q -B -Dstyle.color=never -Dmaven.repo.local="$M2_REPO" -f jvm/pom.xml -Dlib.dir="$(realpath "$LIB")" package
  # Apicurio's `all` zip: fetched without its (unpublished) parent pom, then unpacked
  apicurio=$(sed -n 's:.*<apicurio.version>\(.*\)</apicurio.version>.*:\1:p' jvm/pom.xml)
  mvn -q -B -Dstyle.color=never -Dmaven.repo.local="$M2_REPO" dependency:get -Dtransitive=false \
    -Dartifact="io.apicurio:apicurio-registry-app:${apicurio}:zip:all"
  unzip -q -o "$M2_REPO/io/apicurio/apicurio-registry-app/${apicurio}/apicurio-registry-app-${apicurio}-all.zip" -d "$LIB/apicurio"
  echo "$want" > "$stamp"
  ok "installed into $LIB ($(du -sh "$LIB" | cut -f1))"
fi
step "setup complete"
