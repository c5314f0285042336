#!/usr/bin/env bash
# Configures a CMake preset of CMakePresets.json (release by default, asan, fuzz):
#   bash scripts/configure.sh [PRESET] [CMAKE-ARGS...]
# is `cmake --preset PRESET CMAKE-ARGS...`, except that a build folder configured before with
# another generator (the presets used Unix Makefiles before Ninja), which CMake refuses to
# reconfigure in place, is configured afresh (--fresh: a new CMakeCache.txt; ccache still hits).
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
shift $(($# > 0 ? 1 : 0))

# The preset's generator and build folder, read with CMake's own JSON parser.
query=$(mktemp)
trap 'rm -f "$query"' EXIT
cat >"$query" <<'EOF'
file(READ "${SOURCE}/CMakePresets.json" presets)
string(JSON n LENGTH "${presets}" configurePresets)
math(EXPR last "${n} - 1")
foreach(i RANGE ${last})
  string(JSON name GET "${presets}" configurePresets ${i} name)
  if(name STREQUAL PRESET)
    string(JSON generator GET "${presets}" configurePresets ${i} generator)
    string(JSON dir GET "${presets}" configurePresets ${i} binaryDir)
    string(REPLACE "\${sourceDir}" "${SOURCE}" dir "${dir}")
    message("${generator}|${dir}")
    return()
  endif()
endforeach()
EOF
info=$(cmake -DSOURCE="$PWD" -DPRESET="$preset" -P "$query" 2>&1)
if [[ "$info" != *"|"* ]]; then
  echo "configure.sh: no configure preset named '$preset' in CMakePresets.json${info:+: $info}" >&2
  exit 2
fi
want="${info%%|*}"
dir="${info#*|}"

fresh=()
cache="$dir/CMakeCache.txt"
if [ -f "$cache" ]; then
  have=$(sed -n 's/^CMAKE_GENERATOR:INTERNAL=//p' "$cache")
  if [ -n "$have" ] && [ "$have" != "$want" ]; then
    echo "configure.sh: $dir was configured for '$have', the preset uses '$want': configuring afresh"
    fresh=(--fresh)
    # The other generator's build files would shadow or confuse the new ones.
    rm -f "$dir/Makefile" "$dir/build.ninja" "$dir/.ninja_deps" "$dir/.ninja_log"
  fi
fi
exec cmake --preset "$preset" "${fresh[@]}" "$@"
