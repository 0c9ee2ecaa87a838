#!/usr/bin/env bash
# xz with several threads (-T4) compressing and decompressing generated data
# under Rulloc; the round trip must be exact.
source "$(dirname "$0")/preload_lib.sh" "$1"
data="${WORK}/data"
/usr/bin/python3 -c "
import random
random.seed(5)
words = [''.join(random.choice('abcdefghijklmnop') for _ in range(random.randint(2, 9))) for _ in range(5000)]
with open('${data}', 'w') as f:
    for _ in range(1500000):
        f.write(random.choice(words) + (' ' if random.random() < 0.9 else '\n'))
"
with_rulloc xz -T4 -3 --block-size=1MiB -k -c "${data}" > "${data}.xz"
with_rulloc xz -T4 -d -c "${data}.xz" > "${data}.out"
cmp -s "${data}" "${data}.out" || fail "xz round trip differs"
echo "xz -T4: $(stat -c %s "${data}") bytes -> $(stat -c %s "${data}.xz") bytes and back"
expect_rulloc_served
