# Sourced by the bench scripts (from the repository root): PY is the Python of the reference
# frameworks, $BENCH_PYTHON if given, else bench/.venv, created from bench/requirements.txt on
# first use.
PY=${BENCH_PYTHON:-bench/.venv/bin/python}
if [ ! -x "$PY" ]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install -q -r bench/requirements.txt
  PY=bench/.venv/bin/python
fi
