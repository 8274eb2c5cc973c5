#!/bin/sh
# Make tests/.venv: a Python virtual environment holding the reference
# implementations the tests compare against (tests/requirements.txt).
# Idempotent: done when tests/.venv/done exists and is newer than the list.
set -eu
cd "$(dirname "$0")"
req=requirements.txt
if [ -f .venv/done ] && [ .venv/done -nt "$req" ]; then exit 0; fi
command -v python3 >/dev/null || { echo "setup-venv: python3 is missing (apt-get install python3 python3-venv)" >&2; exit 1; }
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r "$req"
.venv/bin/python -c 'import llamafactory.data' 2>/dev/null ||
	{ echo "setup-venv: llamafactory does not import; see above" >&2; exit 1; }
touch .venv/done
