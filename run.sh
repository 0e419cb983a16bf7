#!/usr/bin/env bash
# Tradewind, the two commands of the README:
#   ./run.sh          set everything up (virtualenv, dependencies, database, demo data) and serve
#                     the API on http://127.0.0.1:8000 (SQLite + the replay market by default)
#   ./run.sh test     run the test suite (needs Postgres and Redis on 127.0.0.1; see README)
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(cat requirements-prod.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements-dev.txt
  echo "$want" > "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"

case "${1:-serve}" in
  serve)
    # The demo replays recorded candles 30x faster than real time (a 5-minute candle every
    # 10 s) so the demo bots trade within minutes; REPLAY_SPEED=1 replays in real time. The
    # replay starts at the first start (kept in instance/replay_anchor), so its dates are today's.
    export REPLAY_SPEED="${REPLAY_SPEED:-30}"
    export REPLAY_ANCHOR="${REPLAY_ANCHOR:-first-start}"
    alembic upgrade head
    flask --app wsgi seed-demo
    echo "Tradewind on http://127.0.0.1:${PORT:-8000} (replay speed ${REPLAY_SPEED}x; Ctrl-C to stop)"
    exec gunicorn -c gunicorn.conf.py --bind "127.0.0.1:${PORT:-8000}" wsgi:app
    ;;
  test)
    shift
    # The suite mostly waits on real processes, clocks and a browser, so it runs in parallel:
    # TEST_WORKERS processes (0 runs it in this one), each taking whole files, longest first
    # (tests/durations.json). Compiled modules are cached, because the suite starts hundreds
    # of Python processes and each would otherwise compile the app again.
    unset PYTHONDONTWRITEBYTECODE
    workers=${TEST_WORKERS:-4}
    parallel=()
    if [ "$workers" != 0 ]; then
      parallel=(-n "$workers" --dist loadfile --no-loadscope-reorder)
    fi
    exec python -m pytest "${parallel[@]}" "$@"
    ;;
  *)
    echo "usage: ./run.sh [serve|test [pytest args]]" >&2
    exit 2
    ;;
esac
