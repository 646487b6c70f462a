#!/usr/bin/env python3
# Usage: scripts/bench-transform.py BASE_URL RUNS   (a running server; creates workflow `tchain`)
# Transform-step cost: a 20-step chain of `transform` steps, run N times one after another on
# a running server; reports the p50/p95 run time and the p50 per step.
import json, sys, time, urllib.request
base = sys.argv[1]; n = int(sys.argv[2])
def req(method, path, body=None, ctype="application/json"):
    data = None if body is None else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
    r = urllib.request.Request(base + path, method=method, data=data, headers={"content-type": ctype})
    return json.load(urllib.request.urlopen(r))
steps = "\n".join(f"- id: s{i}\n  agent: transform\n" + (f"  needs: [s{i-1}]\n" if i else "") + "  with: { jq: '{n: (.inputs | length), i: %d}' }" % i for i in range(20))
try:
    req("POST", "/api/v1/workflows", f"id: tchain\nname: tchain\nsteps:\n{steps}\n", "application/yaml")
except Exception as e:
    pass
runs = []
for i in range(n):
    rid = req("POST", "/api/v1/workflows/tchain/runs", {})["run"]["id"]
    while True:
        r = req("GET", f"/api/v1/runs/{rid}")
        if r.get("finished_at"): break
        time.sleep(0.001)
    assert r["status"] == "succeeded", r
    runs.append(r["finished_at"] - r["started_at"])
q = lambda xs, p: sorted(xs)[int(len(xs) * p)]
print(f"20 transform steps: run p50 {q(runs,.5)} ms, p95 {q(runs,.95)} ms; per step p50 {q(runs,.5)/20:.2f} ms")
