#!/usr/bin/env bash
# Behaviour does not change: runs the README's headline commands with two gmu binaries (say, the
# release build of the commit before a refactor and of the one after) on the same seeds, and
# compares every number they print and every file they write, timings aside. Exits non-zero on the
# first difference.
# Usage: scripts/same_results.sh BEFORE_GMU AFTER_GMU [--quick]
#   --quick skips the Twemoji table (1.5 minutes a binary) and runs the protocol on 20 seeds.
# About 6 minutes on 2 cores (2 with --quick).
set -euo pipefail
before=$(realpath "$1")
after=$(realpath "$2")
quick=${3:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$(dirname "$0")/.."
fixtures=$PWD/tests/fixtures/model_v1

# Times in the text (`12.3 ms`, `train ms` columns, `in 1.2 s`) and in JSON (`seconds`, `*_ms`) are masked;
# so is `.partial/` in printed paths (since issue 20 a chart path names where the file ends up).
mask() {
  sed -E -e 's#\.partial/#/#g' -e 's/[0-9]+(\.[0-9]+)? ?(ms|s)\b/<time>/g' -e 's/("(seconds|[a-z_]*_ms|[a-z_]*_s)": )[0-9.e+-]+/\1<time>/g' \
    -e 's/ +[0-9]+\.[0-9] *\|$/ <time> |/' -e 's/ +[0-9]+\.[0-9]$/ <time>/' -e "s#$work/(before|after)#<out>#g"
}

# A model's config.json lists its weight files' sha256 since issue 20; the weights themselves are
# compared byte for byte, so the list is left out of the comparison (binaries from before lack it).
unsum() {
  python3 -c 'import json,sys
t=sys.stdin.read()
try:
    v=json.loads(t)
except ValueError:
    sys.stdout.write(t); sys.exit()
if isinstance(v,dict): v.pop("weights_sha256",None)
print(json.dumps(v,indent=2,sort_keys=True))'
}

run_both() {
  local name=$1
  shift
  for side in before after; do
    local bin=$before
    [ "$side" = after ] && bin=$after
    mkdir -p "$work/$side"
    (cd "$work/$side" && "$bin" "${@//@OUT@/$work/$side}" 2>&1 | mask >"$work/$side/$name.txt")
  done
  if ! diff "$work/before/$name.txt" "$work/after/$name.txt"; then
    echo "DIFFERENT: gmu $* (printed)" >&2
    exit 1
  fi
  echo "same: gmu $*"
}

compare_tree() {
  local dir=$1
  (cd "$work/before/$dir" && find . -type f | sort) >"$work/files-before"
  (cd "$work/after/$dir" && find . -type f | sort) >"$work/files-after"
  diff "$work/files-before" "$work/files-after"
  while read -r f; do
    case "$f" in
      *.json) cmp -s <(unsum <"$work/before/$dir/$f" | mask) <(unsum <"$work/after/$dir/$f" | mask) || {
        diff <(unsum <"$work/before/$dir/$f" | mask) <(unsum <"$work/after/$dir/$f" | mask) | head -20
        echo "DIFFERENT: $dir/$f" >&2
        exit 1
      } ;;
      *.md | *.txt | *.gmu-run) cmp -s <(mask <"$work/before/$dir/$f") <(mask <"$work/after/$dir/$f") || {
        echo "DIFFERENT: $dir/$f" >&2
        exit 1
      } ;;
      *) cmp -s "$work/before/$dir/$f" "$work/after/$dir/$f" || {
        echo "DIFFERENT: $dir/$f (bytes)" >&2
        exit 1
      } ;;
    esac
  done <"$work/files-before"
  echo "same files: $dir ($(wc -l <"$work/files-before") files)"
}

run_both demo demo --out @OUT@/demo
compare_tree demo
seeds=100
[ "$quick" = --quick ] && seeds=20
run_both protocol protocol --seeds "$seeds" --out @OUT@/protocol.json
compare_tree .
run_both mfeat multiview --out @OUT@/mfeat
compare_tree mfeat
run_both mfeat-missing multiview --modalities fou,zer --missing-rates 0,0.5,1 --out @OUT@/mfeat-missing
run_both robustness robustness --run @OUT@/mfeat-missing
compare_tree mfeat-missing
for m in mfeat-gmu synthetic-gmu; do
  data="--data mfeat --split test"
  [ "$m" = synthetic-gmu ] && data="--data $fixtures/toy.csv"
  # shellcheck disable=SC2086
  run_both "predict-$m" predict --model "$fixtures/$m" $data --out @OUT@/$m.csv
  cmp "$work/before/$m.csv" "$work/after/$m.csv"
  echo "same bytes: predictions of the format-1 fixture $m"
done
if [ "$quick" != --quick ]; then
  run_both twemoji multiview --data twemoji --out @OUT@/twemoji
  compare_tree twemoji
fi
echo "every output the same, timings aside"
