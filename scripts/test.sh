#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need,
# builds, and runs every test. CI calls exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests need: a C compiler (bundled SQLite, ring),
# python3 (the agent's rotation test writes with Python's logging; the
# e-mail test runs its smtpd SMTP server, python ≤ 3.11 as in Debian 12),
# a real Prometheus and Alertmanager (crates/faultline-cli/tests/prometheus.rs),
# and Chromium with ChromeDriver for the web UI (crates/faultline-cli/tests/browser.rs).
need=()
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"
  else
    echo "missing packages: ${need[*]} (run as root or install them)" >&2
    exit 1
  fi
fi

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Integration tests start the real binaries; build them once up front.
cargo build --workspace --bins
cargo test --workspace --no-fail-fast
