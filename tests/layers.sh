# The include graph follows the layers of docs/ARCHITECTURE.md: a file of layer L (the
# folder under src/) includes headers only of the layers L may use. Quoted includes only;
# a name without a folder is a header of the file's own folder, and "../" is refused.
# Then the compiler's own view (cc -MM, every header reached) of the relay server's files:
# none from src/quic or src/tls, so the relay server builds without the QUIC and TLS
# layers.
#
# Usage: bash tests/layers.sh SRC_DIR [CC]
set -u
src=${1:?usage: layers.sh SRC_DIR [CC]}
cc=${2:-cc}
fail=0
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

# what each layer may include, itself included (apps: anything)
declare -A may=(
  [base]="base"
  [net]="base net"
  [crypto]="base crypto"
  [tls]="base crypto tls"
  [quic]="base net crypto tls quic"
  [relay]="base net relay"
  [dns]="base dns"
  [endpoint]="base net crypto tls quic relay dns endpoint"
  [dnsserver]="base net relay dns dnsserver"
  [apps]="base net crypto tls quic relay dns endpoint dnsserver apps"
)

for d in "$src"/*/; do
  layer=$(basename "$d")
  if [ -z "${may[$layer]+x}" ]; then
    bad "src/$layer: a folder that is no layer of tests/layers.sh"
    continue
  fi
  for f in "$d"*.[ch]; do
    [ -e "$f" ] || continue
    while IFS= read -r inc; do
      case $inc in
        ../* | */../*) bad "${f#"$src"/}: includes \"$inc\""; continue ;;
        */*) to=${inc%%/*} ;;
        *) to=$layer ;;
      esac
      case " ${may[$layer]} " in
        *" $to "*) ;;
        *) bad "${f#"$src"/}: the $layer layer includes \"$inc\" ($to)" ;;
      esac
    done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
  done
done

# the relay server, as the compiler sees it
n=0
for f in "$src"/relay/server*.c; do
  n=$((n + 1))
  deps=$("$cc" -MM -D_GNU_SOURCE -I"$src" -I"$src/../include" "$f") || {
    bad "$cc -MM ${f#"$src"/} failed"
    continue
  }
  for h in $deps; do
    case $h in
      *src/quic/* | *src/tls/* | quic/* | tls/*) bad "${f#"$src"/} reaches $h" ;;
    esac
  done
done
[ "$n" -gt 0 ] || bad "no src/relay/server*.c"

if [ "$fail" -ne 0 ]; then
  echo "layers: $fail problem(s)" >&2
  exit 1
fi
echo "layers: ok ($n relay server files checked with $cc -MM)"
