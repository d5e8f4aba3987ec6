# Run by Debian's busybox-static as `busybox sh busybox.sh` (tests/linux
# suite, [[debian]] "busybox"): shell builtins, then the applets ls, cat,
# sha256sum, sort and wc. Deterministic output only.
set -e
echo "shell=busybox"

# Builtins: arithmetic, loops, functions, parameter expansion, case, printf,
# test, read from a here-document.
i=0
sum=0
while [ "$i" -lt 100 ]; do
    sum=$((sum + i * i))
    i=$((i + 1))
done
echo "sum_squares=$sum"
strip() { local x="$1"; echo "strip=${x#pre-} suffix=${x%%-*}"; }
strip pre-value
name="archive.tar.gz"
case "$name" in
*.tar.gz) echo "case=tarball ext=${name##*.} len=${#name}" ;;
*) echo "case=other" ;;
esac
printf 'printf=%05d:%s:%x\n' 42 str 255
if [ -d / ] && [ ! -e /no/such/file ]; then echo "test=ok"; fi
count=0
while read -r word rest; do
    count=$((count + 1))
    echo "read_$count=$word/$rest"
done <<HERE
alpha beta gamma
delta
HERE
set -- one "two three" four
echo "argc=$# second=$2"

# Applets (each a fork of the shell).
echo "root_has_tmp=$(ls -la / | grep -c ' tmp$')"
echo "root_has_dots=$(ls -la / | grep -c ' \.\.*$')"
d=$(mktemp -d /tmp/skiff-bb.XXXXXX)
cd "$d"
printf 'pear\napple\nfig\nbanana\napple\ncherry\n' >fruit.txt
printf 'line %d\n' 1 2 3 4 5 6 7 8 9 10 >lines.txt
mkdir sub
ln -s fruit.txt link
echo "cat_lines=$(cat fruit.txt lines.txt | wc -l)"
sort fruit.txt >sorted.txt
echo "sorted=$(cat sorted.txt | tr '\n' ',')"
echo "sort_unique=$(sort -u fruit.txt | tr '\n' ',')"
echo "sort_reverse_numeric=$(printf '10\n9\n100\n1\n' | sort -rn | tr '\n' ',')"
wc fruit.txt lines.txt | while read -r l w c f; do echo "wc_$f=$l/$w/$c"; done
sha256sum fruit.txt lines.txt | while read -r h f; do echo "sha256_$f=$h"; done
echo "sha256_stdin=$(printf 'skiff' | sha256sum)"
# ls -la in a directory whose contents are known: mode, links, size, name.
ls -la . | sed 1d | while read -r mode links owner group size m day t rest; do
    case "$rest" in .. | sub) size=dir ;; esac
    [ "$rest" = . ] && size=dir
    echo "ls=$mode $size $rest"
done
cd /
rm -rf "$d"
echo "cleaned=$([ -e "$d" ] && echo no || echo yes)"
exit 0
