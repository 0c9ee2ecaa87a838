#!/usr/bin/env bash
# CPython running a substantial script (dicts, lists, strings, json, regular
# expressions, sorting, a few threads) under Rulloc: same output as without.
source "$(dirname "$0")/preload_lib.sh" "$1"
cat > "${WORK}/script.py" <<'PY'
import hashlib, json, re, threading, random, collections
random.seed(1234)
records = [{"id": i, "name": "user%05d" % i, "tags": [random.choice("abcdefgh") * (i % 7) for _ in range(i % 5)],
            "score": random.random()} for i in range(200000)]
text = json.dumps(records)
back = json.loads(text)
counts = collections.Counter(tag for r in back for tag in r["tags"])
words = re.findall(r"user0*(\d+)", text)
ordered = sorted(back, key=lambda r: (r["score"], r["id"]))
def work(seed, out):
    rnd = random.Random(seed)
    d = {}
    for i in range(100000):
        d[rnd.randrange(50000)] = str(i) * (i % 13)
    out.append(sum(len(v) for v in d.values()))
results = []
threads = [threading.Thread(target=work, args=(s, results)) for s in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
digest = hashlib.sha256(text.encode()).hexdigest()
print(len(text), len(words), sorted(counts.items())[:3], ordered[0]["id"], sorted(results), digest)
PY
expected=$(/usr/bin/python3 "${WORK}/script.py")
actual=$(with_rulloc /usr/bin/python3 "${WORK}/script.py")
[ "${actual}" = "${expected}" ] || fail "python output differs: ${actual} vs ${expected}"
echo "python3: ${actual:0:60}..."
expect_rulloc_served
