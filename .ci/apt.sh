# Sourced by the CI scripts that need Debian packages (the browser test, the client unit tests):
# installs only what is missing, without prompts, with sudo when not root.

export DEBIAN_FRONTEND=noninteractive

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  $SUDO apt-get install -y -qq --no-install-recommends "$@"
}

# node and npm, from the distribution when the machine has none.
need_node() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "ci: installing node and npm"
    apt_install nodejs npm
  fi
}
