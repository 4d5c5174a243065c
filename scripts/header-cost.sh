#!/usr/bin/env bash
# scripts/header-cost.sh — what including mproc costs a file at compile time (issue: "Lighter
# headers"; the numbers and decisions are in docs/design.md, "Header cost").
#
#   scripts/header-cost.sh [N]        (make header-cost [N=...])
#
# Compiles two files N times each (default 7), alternating so that a change in the machine's load
# hits both alike: one that includes <vector> and <string> (the baseline), one that includes
# <mproc/mproc.hpp>. Prints, for each, the best wall time and the best CPU time (user + system of
# the compiler: less disturbed by other jobs on a shared machine) over the N runs, then the ratios.
# Flags as the issue measured them: $CXX (default g++) -std=c++20 -O0 -c. Extra flags in
# $CXXFLAGS; HEADER=<mproc/queue.hpp> (say) measures another header against the same baseline.
# Also prints the ratio of GCC's GGC memory (-ftime-report, "TOTAL", last column): the work the
# compiler did, the same on every run however busy the machine, and close to the CPU-time ratio.
# Exits 1 when the ratio that $GATE names (cpu, the default, or ggc) is above $MAX_RATIO (default 2);
# CI gates on ggc, which a shared machine cannot make flaky.
set -euo pipefail

n=${1:-7}
cxx=${CXX:-g++}
header=${HEADER:-<mproc/mproc.hpp>}
max_ratio=${MAX_RATIO:-2}
gate=${GATE:-cpu}
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

printf '#include <string>\n#include <vector>\n' >"$tmp/baseline.cpp"
printf '#include %s\n' "$header" >"$tmp/mproc.cpp"

# compile FILE: prints "<wall seconds> <cpu seconds>" of one compilation.
compile() {
  python3 - "$cxx" "$root/include" "$1" "$tmp/out.o" ${CXXFLAGS:-} <<'EOF'
import resource, subprocess, sys, time
cxx, inc, src, out, *extra = sys.argv[1:]
r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
t0 = time.perf_counter()
subprocess.run([cxx, '-std=c++20', '-O0', *extra, '-I', inc, '-c', src, '-o', out], check=True)
t1 = time.perf_counter()
r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
print(f'{t1 - t0:.3f} {cpu:.3f}')
EOF
}

# ggc FILE: the compiler's GGC memory for one compilation, in bytes.
ggc() {
  "$cxx" -std=c++20 -O0 ${CXXFLAGS:-} -I "$root/include" -c "$1" -o "$tmp/out.o" -ftime-report 2>&1 |
    awk '/^ TOTAL/ { v = $NF; u = substr(v, length(v)); n = v + 0;
                     if (u == "k") n *= 1024; else if (u == "M") n *= 1048576; print n }'
}

best() { sort -n | head -1; }
: >"$tmp/b.txt"
: >"$tmp/m.txt"
for _ in $(seq "$n"); do
  compile "$tmp/baseline.cpp" >>"$tmp/b.txt"
  compile "$tmp/mproc.cpp" >>"$tmp/m.txt"
done
bw=$(cut -d' ' -f1 "$tmp/b.txt" | best)
bc=$(cut -d' ' -f2 "$tmp/b.txt" | best)
mw=$(cut -d' ' -f1 "$tmp/m.txt" | best)
mc=$(cut -d' ' -f2 "$tmp/m.txt" | best)
echo "$cxx -std=c++20 -O0 -c${CXXFLAGS:+ $CXXFLAGS}, best of $n"
printf '  %-28s wall %6.3f s   cpu %6.3f s\n' "<vector> + <string>" "$bw" "$bc"
printf '  %-28s wall %6.3f s   cpu %6.3f s\n' "$header" "$mw" "$mc"
bg=$(ggc "$tmp/baseline.cpp")
mg=$(ggc "$tmp/mproc.cpp")
python3 - "$bw" "$bc" "$mw" "$mc" "$bg" "$mg" "$max_ratio" "$gate" <<'EOF'
import sys
bw, bc, mw, mc, bg, mg, limit = map(float, sys.argv[1:8])
gate = sys.argv[8]
print(f'  ratio                        wall {mw / bw:6.2f}     cpu {mc / bc:6.2f}   (limit {limit:g})')
print(f'  GGC memory                   {bg / 2**20:.0f}M -> {mg / 2**20:.0f}M, ratio {mg / bg:.2f}')
ratio = {'cpu': mc / bc, 'ggc': mg / bg}[gate]
if ratio > limit:
    print(f'  the {gate} ratio {ratio:.2f} is above the limit {limit:g}')
    sys.exit(1)
EOF
