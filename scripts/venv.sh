# Shared by scripts/run and scripts/test: a virtual environment in ./.venv.
# Debian's python3 refuses `pip install` outside a venv (PEP 668) and ships venv separately.
ensure_venv() {
    local python=${PYTHON:-python3}
    if [ -x .venv/bin/python ] && .venv/bin/python -m pip --version >/dev/null 2>&1; then
        return
    fi
    rm -rf .venv
    if ! "$python" -m venv .venv >/dev/null 2>&1; then
        rm -rf .venv
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null \
                || { apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; }
            "$python" -m venv .venv
        else
            echo "python3 -m venv failed: install Debian's python3-venv (sudo apt-get install python3-venv)" >&2
            exit 1
        fi
    fi
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
}
