#!/usr/bin/env bash
# Re-copy the vendored libbpf headers from the installed Debian libbpf-dev
# package and record its version in README.md. Run after upgrading
# libbpf-dev, then `go generate ./bpf/` and review the diff.
set -euo pipefail

cd "$(dirname "$0")"
src=/usr/include/bpf
headers=(bpf_helpers.h bpf_helper_defs.h bpf_endian.h)

if ! dpkg-query -W -f='${Status}' libbpf-dev 2>/dev/null | grep -q 'install ok installed'; then
	echo "update.sh: libbpf-dev is not installed (apt-get install -y libbpf-dev)" >&2
	exit 1
fi
version=$(dpkg-query -W -f='${Version}' libbpf-dev)

for h in "${headers[@]}"; do
	cp "$src/$h" "./$h"
done
sed -i "s/^libbpf-dev version: .*/libbpf-dev version: \`$version\`/" README.md
echo "copied ${headers[*]} from libbpf-dev $version"
