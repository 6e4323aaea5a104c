#!/usr/bin/env bash
# One prepared GPU run: every kernel and GPU-only figure of Seer from one command (bench/gpu_run.py),
# plus what it needs on a machine that starts bare. README, "GPU run".
#
#   bench/gpu.sh --out DIR [--budget-s 540] [--steps ...] [--full]   run (on the GPU machine)
#   bench/gpu.sh --dry-run --out DIR                                 the same steps, toy shapes (CI, any machine)
#   bench/gpu.sh prepare                                             here, before a GPU without PyPI: .whl/
#   bench/gpu.sh install                                             a GPU machine with PyPI: .venv-gpu
#
# Python: $PYTHON, else .venv-gpu/bin/python, else .venv/bin/python when its torch sees CUDA (or for a dry
# run), else python3 (the interpreter that holds a GPU image's PyTorch).
# Packages beyond torch/triton/numpy/lightning/pytest (polars, mlflow and their needs, for the accuracy step):
#   - with PyPI: `install` makes .venv-gpu with torch==$TORCH_VERSION (PyPI's Linux wheel is the CUDA build;
#     it pins its triton) and the project with its dev extra;
#   - without (a lent machine: nothing outside it can be reached): `prepare` packs the wheels of
#     bench/gpu-site.txt for CPython $SITE_PY into .whl/site-py<ver>.tar.xz (~40 MB, to fit beside the tree
#     under a 64 MiB transfer limit; polars' runtime alone is a 52 MB wheel), notes the commit in .whl/commit; the run
#     unpacks it into $SEER_SITE (default /tmp/seer-site) and puts it first on PYTHONPATH. Ship .whl with the
#     tree (it is git-ignored). That image's torch is its own (the run prints and records the version), not
#     this project's pin: a CUDA torch wheel is ~0.5-1 GB, more than such a machine can be sent.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
WHEELS=${SEER_WHEELS:-.whl}
SITE_PY=${SITE_PY:-3.12}
SEER_SITE=${SEER_SITE:-/tmp/seer-site}
PLATFORMS=(manylinux_2_34_x86_64 manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64
  manylinux2014_x86_64 manylinux1_x86_64)

pick_python() {
  if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"; return; fi
  if [[ -x .venv-gpu/bin/python ]]; then echo .venv-gpu/bin/python; return; fi
  if [[ -x .venv/bin/python ]] && { [[ " $* " == *" --dry-run "* ]] ||
    .venv/bin/python -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null; }; then
    echo .venv/bin/python; return
  fi
  echo python3
}

commit_id() {
  local head dirty=""
  head=$(git rev-parse --short HEAD 2>/dev/null) || return 1
  git diff --quiet HEAD -- 2>/dev/null || dirty="-dirty"
  echo "$head$dirty"
}

prepare() {
  local py=${PYTHON:-python3} tag=${SITE_PY/./} plat=() p
  for p in "${PLATFORMS[@]}"; do plat+=(--platform "$p"); done
  mkdir -p "$WHEELS"
  commit_id >"$WHEELS/commit" || echo unknown >"$WHEELS/commit"
  echo "commit $(cat "$WHEELS/commit") -> $WHEELS/commit"
  local pack="$WHEELS/site-py$tag.tar.xz"
  if [[ -f "$pack" && "$pack" -nt bench/gpu-site.txt ]]; then
    echo "$pack is up to date"; transfer_size "$pack"; return
  fi
  local work
  work=$(mktemp -d)
  local pick=(--only-binary=:all: --python-version "$SITE_PY" --implementation cp "${plat[@]}")
  "$py" -m pip download -q --no-deps "${pick[@]}" -d "$work/dl" -r bench/gpu-site.txt
  "$py" -m pip install -q --no-deps --no-index --no-compile "${pick[@]}" --target "$work/site" "$work"/dl/*.whl
  # What the run never loads, so the pack fits beside the tree under a 64 MiB transfer: the tracking UI's
  # assets and scripts (no UI is served), SQLAlchemy's compiled speed-ups (each has its pure-Python twin
  # beside it, which it falls back to), and the libraries' symbol tables (not their dynamic symbols).
  rm -rf "$work/site/mlflow/server/js" "$work/site/bin" "$work"/site/sqlalchemy/*/_*_cy.cpython-*.so
  if command -v strip >/dev/null; then find "$work/site" -name '*.so' -exec strip --strip-unneeded {} +; fi
  echo "packing $(du -sh "$work/site" | cut -f1) with xz (x86 filter, -9e, 192 MiB window: ~10 minutes on 2 cores)"
  tar -C "$work/site" -cf - . | xz --x86 --lzma2=preset=9e,dict=192MiB -T1 >"$pack.part"
  mv "$pack.part" "$pack"
  rm -rf "$work"
  transfer_size "$pack"
}

transfer_size() {  # the tree (tracked + untracked, not ignored) plus the pack, against a 64 MiB transfer
  local tree pack total limit=$((64 * 1024 * 1024))
  tree=$({ git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
  pack=$(stat -c %s "$1")
  total=$((tree + pack))
  echo "$1: $((pack / 1048576)) MiB; with the tree ($((tree / 1048576)) MiB): $((total / 1048576)) MiB of 64"
  if ((total > limit)); then
    echo "over 64 MiB: a transfer that limited cannot take the pack; without it every step but accuracy runs" >&2
  fi
}

install() {
  python3 -m venv .venv-gpu
  .venv-gpu/bin/pip install "torch==$TORCH_VERSION"
  .venv-gpu/bin/pip install -e '.[dev]'
  .venv-gpu/bin/python -c 'import torch, triton; print("torch", torch.__version__, "cuda", torch.version.cuda,
    "available", torch.cuda.is_available(), "triton", triton.__version__)'
}

unpack_site() {
  local py=$1 ver pack
  ver=$("$py" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')
  pack="$WHEELS/site-py$ver.tar.xz"
  if [[ ! -f "$pack" ]]; then
    if compgen -G "$WHEELS/site-py*.tar.xz" >/dev/null; then
      echo "gpu.sh: $WHEELS has no site pack for Python $ver (only $(ls "$WHEELS"/site-py*.tar.xz)); not used" >&2
    fi
    return
  fi
  if [[ ! -f "$SEER_SITE/.unpacked" || "$pack" -nt "$SEER_SITE/.unpacked" ]]; then
    rm -rf "$SEER_SITE" && mkdir -p "$SEER_SITE"
    "$py" - "$pack" "$SEER_SITE" <<'EOF'
import sys, tarfile
with tarfile.open(sys.argv[1]) as tar:  # our own pack (bench/gpu.sh prepare)
    tar.extractall(sys.argv[2], **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
EOF
    touch "$SEER_SITE/.unpacked"
  fi
  export PYTHONPATH="$SEER_SITE${PYTHONPATH:+:$PYTHONPATH}"
  echo "gpu.sh: packages from $pack in $SEER_SITE"
}

case "${1:-}" in
  prepare) shift; prepare "$@"; exit ;;
  install) shift; install "$@"; exit ;;
esac

PY=$(pick_python "$@")
unpack_site "$PY"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if [[ -z "${SEER_COMMIT:-}" ]]; then
  SEER_COMMIT=$(commit_id || cat "$WHEELS/commit" 2>/dev/null || echo unknown)
  export SEER_COMMIT
fi
echo "gpu.sh: $("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])'), commit $SEER_COMMIT"
exec "$PY" bench/gpu_run.py "$@"
