# Run by Debian's busybox-static as `busybox sh busybox.sh` (tests/linux
# suite, [[debian]] "busybox"). Shell builtins only: ash forks for every
# applet, pipeline, command substitution and unquoted here-document, and
# Skiff has no fork (one application per VM), so this script must not fork
# (checked on Linux with `strace -f -e trace=clone,fork,vfork`). The
# applets run as their own cases (busybox-ls, busybox-cat, ...).
set -e
echo "shell=busybox arch_given=${1:+yes}"

# Arithmetic and loops.
i=0
sum=0
while [ "$i" -lt 100 ]; do
    sum=$((sum + i * i))
    i=$((i + 1))
done
echo "sum_squares=$sum"
for n in 3 1 4 1 5 9 2 6; do
    [ "$n" -gt 4 ] && continue
    echo "small=$n"
done
echo "arith=$(( (7 << 3) | 5 )),$(( 100 / 7 )),$(( 100 % 7 )),$(( -5 + 2 * 3 )),$(( 0x1f ))"

# Functions, local variables, return status, parameter expansion.
strip() {
    local x="$1"
    echo "strip=${x#pre-} suffix=${x%%-*} upto=${x%-*} len=${#x}"
}
strip pre-value-x
isodd() { return $(( $1 % 2 == 0 )); }
if isodd 7; then echo "isodd_7=yes"; fi
if ! isodd 8; then echo "isodd_8=no"; fi
unset maybe
echo "default=${maybe:-fallback} alt=${HOME:+set} assign=${maybe:=now} after=$maybe"

# case, printf, test.
name="archive.tar.gz"
case "$name" in
*.tar.gz) echo "case=tarball ext=${name##*.} base=${name%%.*}" ;;
*) echo "case=other" ;;
esac
printf 'printf=%05d:%s:%x:%-4s|\n' 42 str 255 ab
printf '%s=%d\n' a 1 b 2
if [ -d / ] && [ ! -e /no/such/file ] && [ "abc" != "abd" ] && [ -z "" ]; then
    echo "test=ok"
fi

# read from a quoted here-document (written into a pipe, no fork).
count=0
while read -r word rest; do
    count=$((count + 1))
    echo "read_$count=$word/$rest"
done <<'HERE'
alpha beta gamma
delta
HERE
IFS=: read -r user pw uid <<'HERE'
root:x:0
HERE
echo "ifs_read=$user,$pw,$uid"

# set --, shift, "$@".
set -- one "two three" four
echo "argc=$# second=$2"
shift
for a in "$@"; do echo "arg=$a"; done

# Redirections to files in /tmp, read back with read < file; cd and pwd.
# (rm would fork: the file has a fixed name per arch, $1, truncated on reuse.)
f=/tmp/skiff-bb-$1.txt
echo "first" >"$f"
echo "second" >>"$f"
printf 'third %s\n' line >>"$f"
n=0
while read -r line; do
    n=$((n + 1))
    echo "file_$n=$line"
done <"$f"
read -r head <"$f"
echo "head=$head"
: >"$f"
[ -s "$f" ] || echo "truncated=yes"
cd /tmp
pwd
cd /
echo "pwd_back=$PWD"
[ -e "$f" ] && echo "still_there=yes"
exit 0
