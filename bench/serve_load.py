"""Closed-loop load on `robustcv serve`: C client processes (no shared GIL) each send infer requests
(one base64 PNG per request) back to back for S seconds; prints requests/s, p50 and p99 latency.

usage: serve_load.py PORT MODEL SECONDS CLIENTS IMAGE"""
import base64, http.client, json, multiprocessing as mp, sys, time

def client(port, model, body, stop, q):
    lat, fails = [], 0
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while time.time() < stop:
        t0 = time.perf_counter()
        try:
            c.request("POST", f"/v2/models/{model}/infer", body=body, headers={"Content-Type": "application/json"})
            r = c.getresponse(); r.read()
            if r.status != 200:
                fails += 1
        except Exception:
            fails += 1
            c.close(); c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            continue
        lat.append(time.perf_counter() - t0)
    q.put((lat, fails))

if __name__ == "__main__":
    port, model, secs, n, img = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    b64 = base64.b64encode(open(img, "rb").read()).decode()
    body = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [b64]}]}).encode()
    q = mp.Queue()
    t0 = time.time()
    ps = [mp.Process(target=client, args=(port, model, body, t0 + secs, q)) for _ in range(n)]
    for p in ps: p.start()
    res = [q.get() for _ in ps]
    for p in ps: p.join()
    wall = time.time() - t0
    lat = sorted(x for l, _ in res for x in l)
    fails = sum(f for _, f in res)
    k = len(lat)
    print(f"serve: {n} client(s), {k} requests in {wall:.1f} s: {k / wall:.1f} requests/s, p50 {1e3 * lat[k // 2]:.1f} ms, "
          f"p99 {1e3 * lat[min(k - 1, int(0.99 * k))]:.1f} ms, {fails} failed")
