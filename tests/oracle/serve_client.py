"""Client checks for `robustcv serve` (tests/test_serve.sh), standard library only (http.client).

usage: serve_client.py check PORT PREDICT_TXT IMG...      every endpoint's JSON shape (the KServe Open
                                                          Inference Protocol v2 REST spec), infer == predict,
                                                          FP32 == BYTES, ensemble == mean of member
                                                          probabilities, explain and attack, 400/404/405/413
       serve_client.py load PORT SECONDS CLIENTS IMG...   concurrent infer (answers checked against
                                                          single requests), p50/p99; then a malformed barrage
       serve_client.py busy PORT IMG                      a queue of 2 answers 503 to the 4 requests beyond it
"""
import base64, http.client, json, math, random, re, struct, sys, threading, time, zlib

def req(port, method, path, body=None, headers=None, raw=False):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    if raw:
        return r.status, data, r
    return r.status, (json.loads(data) if data and r.getheader("Content-Type", "").startswith("application/json") else data), r

def png_info(b):
    assert b[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    w, h, depth, ctype = struct.unpack(">IIBB", b[16:26])
    return w, h, depth, ctype

def image_req(b64s, **params):
    body = {"id": "t", "inputs": [{"name": "image", "datatype": "BYTES", "shape": [len(b64s)], "data": b64s}]}
    if params:
        body["parameters"] = params
    return body

def out(resp, name):
    return next(o for o in resp["outputs"] if o["name"] == name)

def softmax(z):
    m = max(z)
    e = [math.exp(v - m) for v in z]
    s = sum(e)
    return [v / s for v in e]

def read_predict(path):
    """robustcv predict's output: file -> [(class, percent text)] in rank order."""
    res, cur = {}, None
    for line in open(path):
        m = re.match(r"\s+\d+\. .*?\s+([0-9.]+)%\s+\(class (\d+)\)", line)
        if m:
            res[cur].append((int(m.group(2)), m.group(1)))
        elif line.strip():
            cur = line.strip()
            res[cur] = []
    return res

FAIL = []
def check(cond, msg):
    if not cond:
        FAIL.append(msg)
        print("FAIL:", msg)

def decode_png_gray(b):
    """Pixels of an 8-bit gray, non-interlaced PNG (what the test writes), for the FP32 tensor."""
    w, h, depth, ctype = png_info(b)
    assert depth == 8 and ctype == 0
    pos, idat = 8, b""
    while pos < len(b):
        n, = struct.unpack(">I", b[pos:pos + 4]); t = b[pos + 4:pos + 8]
        if t == b"IDAT":
            idat += b[pos + 8:pos + 8 + n]
        pos += 12 + n
    raw, rows, prev = zlib.decompress(idat), [], [0] * w
    for y in range(h):
        f, line = raw[y * (w + 1)], list(raw[y * (w + 1) + 1:(y + 1) * (w + 1)])
        for x in range(w):
            a = line[x - 1] if x else 0; up = prev[x]; c = prev[x - 1] if x else 0
            if f == 1: line[x] = (line[x] + a) & 255
            elif f == 2: line[x] = (line[x] + up) & 255
            elif f == 3: line[x] = (line[x] + (a + up) // 2) & 255
            elif f == 4:
                p = a + up - c; pa, pb, pc = abs(p - a), abs(p - up), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else up if pb <= pc else c)) & 255
        rows.append(line); prev = line
    return w, h, rows

def cmd_check(port, predict_txt, imgs):
    # --- server metadata, health, model metadata, ready, repository (spec shapes) ---
    s, j, _ = req(port, "GET", "/v2")
    check(s == 200 and set(j) == {"name", "version", "extensions"} and isinstance(j["extensions"], list), f"/v2: {s} {j}")
    for p, key in (("/v2/health/live", "live"), ("/v2/health/ready", "ready")):
        s, j, _ = req(port, "GET", p)
        check(s == 200 and j == {key: True}, f"{p}: {s} {j}")
    s, idx, _ = req(port, "POST", "/v2/repository/index", {})
    names = [m["name"] for m in idx]
    check(s == 200 and names == ["m1", "m2", "ensemble"] and all(m["state"] == "READY" for m in idx), f"index: {idx}")
    for name in names:
        for path in (f"/v2/models/{name}", f"/v2/models/{name}/versions/1"):
            s, j, _ = req(port, "GET", path)
            check(s == 200 and set(j) == {"name", "versions", "platform", "inputs", "outputs"} and j["name"] == name,
                  f"{path}: {j}")
            for t in j["inputs"] + j["outputs"]:
                check(set(t) == {"name", "datatype", "shape"}, f"{path} tensor metadata {t}")
            check(j["inputs"][0] == {"name": "input", "datatype": "FP32", "shape": [-1, 1, 28, 28]}, f"input {j['inputs']}")
            check([o["name"] for o in j["outputs"]] == ["logits", "probabilities"], f"outputs {j['outputs']}")
        s, j, _ = req(port, "GET", f"/v2/models/{name}/ready")
        check(s == 200 and j == {"name": name, "ready": True}, f"ready {name}: {j}")

    # --- infer on image files == robustcv predict on the same files ---
    want = read_predict(predict_txt)
    b64 = [base64.b64encode(open(p, "rb").read()).decode() for p in imgs]
    logits = {}
    for p, b in zip(imgs, b64):
        s, j, _ = req(port, "POST", "/v2/models/m1/infer", image_req([b]))
        check(s == 200 and set(j) >= {"model_name", "outputs"} and j["model_name"] == "m1" and j["id"] == "t", f"infer {p}: {s}")
        for o in j["outputs"]:
            check(set(o) == {"name", "datatype", "shape", "data"} and o["datatype"] == "FP32" and o["shape"] == [1, 10]
                  and len(o["data"]) == 10, f"output tensor {o}")
        z = out(j, "logits")["data"]
        logits[p] = z
        pr = softmax(z)  # in double, as predict computes it from the float logits
        top = sorted(range(10), key=lambda c: (-pr[c], c))[:5]
        got = [(c, f"{100 * pr[c]:.2f}") for c in top]
        check(got == want[p], f"{p}: serve {got} != predict {want[p]}")
        check(max(abs(a - b) for a, b in zip(out(j, "probabilities")["data"], pr)) < 1e-6, "probabilities = softmax(logits)")
    print(f"infer == robustcv predict on {len(imgs)} images (top-5 classes and percentages)")

    # --- the same image as an FP32 NCHW tensor (nested) gives the same logits; a flat batch of 3 too ---
    gray = [p for p in imgs if p.endswith(".png")]
    w, h, rows = decode_png_gray(open(gray[0], "rb").read())
    x = [[[[v / 255.0 for v in r] for r in rows]]]
    s, j, _ = req(port, "POST", "/v2/models/m1/infer", {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": x}]})
    check(s == 200 and out(j, "logits")["data"] == logits[gray[0]], f"FP32 nested != BYTES: {s}")
    flat = []
    for p in gray[:3]:
        _, _, rr = decode_png_gray(open(p, "rb").read())
        flat += [v / 255.0 for r in rr for v in r]
    s, j, _ = req(port, "POST", "/v2/models/m1/infer", {"inputs": [{"name": "input", "datatype": "FP32", "shape": [3, 1, 28, 28], "data": flat}],
                                                      "outputs": [{"name": "logits"}]})
    check(s == 200 and [o["name"] for o in j["outputs"]] == ["logits"] and out(j, "logits")["shape"] == [3, 10], f"batch of 3: {s} {j}")
    if s == 200:
        z = out(j, "logits")["data"]
        d = max(abs(z[i * 10 + c] - logits[p][c]) for i, p in enumerate(gray[:3]) for c in range(10))
        check(d < 1e-4, f"batch of 3 vs single requests: max diff {d}")
        print(f"FP32 tensor == BYTES image; a batch of 3 within {d:.2g} of single requests")

    # --- ensemble = mean of the members' probabilities ---
    s1, j1, _ = req(port, "POST", "/v2/models/m1/infer", image_req(b64[:2]))
    s2, j2, _ = req(port, "POST", "/v2/models/m2/infer", image_req(b64[:2]))
    se, je, _ = req(port, "POST", "/v2/models/ensemble/infer", image_req(b64[:2]))
    pa, pb, pe = (out(j, "probabilities")["data"] for j in (j1, j2, je))
    d = max(abs(e - (a + b) / 2) for a, b, e in zip(pa, pb, pe))
    check(s1 == s2 == se == 200 and d < 1e-6, f"ensemble != mean of members: {d}")
    print(f"ensemble probabilities = mean of the 2 members' (max diff {d:.2g})")

    # --- explain: top-5 = infer's top-5, overlays are PNGs of the input size ---
    s, j, _ = req(port, "POST", "/v2/models/m1/explain", image_req([b64[0]], top_k=5))
    check(s == 200, f"explain: {s} {j}")
    if s == 200:
        pr = softmax(logits[imgs[0]])
        top = sorted(range(10), key=lambda c: (-pr[c], c))[:5]
        check(out(j, "classes")["data"] == top and out(j, "classes")["shape"] == [1, 5], f"explain classes {out(j, 'classes')} vs {top}")
        check(all(isinstance(v, str) and v for v in out(j, "labels")["data"]), "explain labels")
        ovs = out(j, "overlays")["data"]
        check(len(ovs) == 5 and all(png_info(base64.b64decode(v))[:2] == (28, 28) for v in ovs), "overlays are 28x28 PNGs")
        check(len(set(ovs)) > 1, "the 5 overlays are not all the same")
        print("explain: top-5 classes as infer, 5 Grad-CAM overlays (28x28 PNG)")

    # --- attack: FGSM moves every pixel by at most eps; PGD within eps ---
    for method in ("fgsm", "pgd", "autoattack"):
        s, j, _ = req(port, "POST", "/v2/models/m1/attack", image_req([b64[0]], method=method, eps=8 / 255, steps=5))
        check(s == 200, f"attack {method}: {s} {j}")
        if s == 200:
            linf = j["parameters"]["linf"]
            check(linf <= 8 / 255 + 1e-6 and (linf > 4 / 255 or method == "autoattack"), f"{method} linf {linf}")
            check(out(j, "adversarial_classes")["data"][0] == max(range(10), key=lambda c: out(j, "adversarial_logits")["data"][c]), "adversarial top-1 = argmax of its logits")
            check(png_info(base64.b64decode(out(j, "adversarial")["data"][0]))[:2] == (28, 28), "adversarial PNG")
            check(png_info(base64.b64decode(out(j, "perturbation")["data"][0]))[:2] == (28, 28), "perturbation PNG")
            check(out(j, "clean_classes")["data"][0] == max(range(10), key=lambda c: logits[imgs[0]][c]), "clean class")
            print(f"attack {method}: linf {linf * 255:.2f}/255, clean {out(j, 'clean_labels')['data'][0]} -> "
                  f"adversarial {out(j, 'adversarial_labels')['data'][0]}")

    # --- errors: 400 naming the problem, 404, 405, 413 ---
    bad = [
        (b"{not json", 400, "malformed JSON"),
        (b"[1, 2]", 400, "\"inputs\""),
        (json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 28, 28], "data": [0] * 2352}]}), 400, "input shape [1, 3, 28, 28], expected [N, 1, 28, 28]"),
        (json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": [0] * 5}]}), 400, "holds 5 numbers"),
        (json.dumps({"inputs": [{"name": "input", "datatype": "INT64", "shape": [1, 1, 28, 28], "data": [0] * 784}]}), 400, "datatype \"INT64\""),
        (json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": ["a"] * 784}]}), 400, "a string"),
        (json.dumps(image_req([base64.b64encode(b"GIF89a not an image").decode()])), 400, "undecodable image"),
        (json.dumps(image_req([base64.b64encode(open(gray[0], "rb").read()[:60]).decode()])), 400, "undecodable image"),
        (json.dumps(image_req(["!!notbase64!!"])), 400, "base64"),
        (json.dumps(image_req([base64.b64encode(b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR" + struct.pack(">II", 20000, 20000) + bytes(20)).decode()])),
         400, "20000 x 20000 pixels, over the server's limit"),
        (json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1000, 1, 28, 28], "data": [0]}]}), 400, "holds 1 numbers"),
        (json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2], "data": ["x"]}]}), 400, "shape [N]"),
        (json.dumps(dict(image_req([b64[0]]), parameters=[1])), 400, "\"parameters\" must be an object"),
    ]
    for body, code, needle in bad:
        s, j, _ = req(port, "POST", "/v2/models/m1/infer", body, {"Content-Type": "application/json"})
        check(s == code and isinstance(j, dict) and needle in j.get("error", ""), f"{body[:60]!r}: {s} {j}")
    s, j, _ = req(port, "POST", "/v2/models/nope/infer", image_req([b64[0]]))
    check(s == 404 and "nope" in j["error"], f"unknown model: {s} {j}")
    s, j, _ = req(port, "GET", "/v3/whatever")
    check(s == 404 and "error" in j, f"unknown path: {s} {j}")
    s, j, r = req(port, "GET", "/v2/models/m1/infer")
    check(s == 405 and r.getheader("Allow") == "POST" and "error" in j, f"GET infer: {s} {j}")
    s, j, r = req(port, "DELETE", "/v2")
    check(s == 405 and r.getheader("Allow") == "GET", f"DELETE /v2: {s}")
    # 413: from Content-Length (server runs with --max-request-mb 1), and from a chunked stream
    big = b"[" + b"0," * 600000 + b"0]"
    s, j, _ = req(port, "POST", "/v2/models/m1/infer", big)
    check(s == 413 and "cap" in j["error"], f"413 Content-Length: {s} {j}")
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", "/v2/models/m1/infer", body=iter([b"0," * 100000] * 8), encode_chunked=True,
              headers={"Transfer-Encoding": "chunked"})
    r = c.getresponse(); j = json.loads(r.read()); c.close()
    check(r.status == 413 and "passed the cap" in j["error"], f"413 chunked: {r.status} {j}")
    print(f"errors: 400 ({len(bad)} kinds, each named), 404, 405 with Allow, 413 by Content-Length and by stream")
    # --- metrics: Prometheus text ---
    s, m, r = req(port, "GET", "/metrics", raw=True)
    m = m.decode()
    check(s == 200 and r.getheader("Content-Type").startswith("text/plain; version=0.0.4"), "metrics content type")
    for needle in ('rcv_serve_requests_total ', 'rcv_serve_responses_total{code="400"} %d' % len(bad), 'rcv_serve_responses_total{code="413"} 2',
                   'rcv_serve_request_duration_seconds_bucket{le="+Inf"}', 'rcv_serve_batch_size_count',
                   'rcv_serve_model_load_seconds{model="m1"}', 'rcv_serve_model_load_seconds{model="m2"}'):
        check(needle in m, f"metrics lack {needle}")
    for line in m.splitlines():
        check(line.startswith("#") or re.match(r'^[a-z_]+(\{[a-z]+="[^"]*"\})? [0-9.e+-]+$', line), f"metrics line {line!r}")
    print("metrics: Prometheus text with requests, errors by code, latency and batch histograms, load times")

def cmd_load(port, seconds, clients, imgs):
    b64 = [base64.b64encode(open(p, "rb").read()).decode() for p in imgs]
    expect = []
    for b in b64:
        s, j, _ = req(port, "POST", "/v2/models/m1/infer", image_req([b]))
        expect.append(out(j, "logits")["data"])
    lat, errors, batched, lock = [], [], [0], threading.Lock()
    stop = time.time() + seconds

    def client(k):
        rng = random.Random(k)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.time() < stop:
            i = rng.randrange(len(b64))
            t0 = time.perf_counter()
            try:
                c.request("POST", "/v2/models/m1/infer", body=json.dumps(image_req([b64[i]])), headers={"Content-Type": "application/json"})
                r = c.getresponse(); data = r.read()
                dt = time.perf_counter() - t0
                j = json.loads(data)
                z = out(j, "logits")["data"] if r.status == 200 else None
                ok = r.status == 200 and max(abs(a - b) for a, b in zip(z, expect[i])) < 1e-4
                with lock:
                    lat.append(dt)
                    if j.get("parameters", {}).get("batch_size", 1) > 1:
                        batched[0] += 1
                    if not ok:
                        errors.append((r.status, data[:200]))
            except Exception as e:  # a dropped connection is a failure too
                with lock:
                    errors.append(("exception", repr(e)))
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.close()

    th = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    t0 = time.time()
    for t in th: t.start()
    for t in th: t.join()
    wall = time.time() - t0
    lat.sort()
    n = len(lat)
    p50, p99 = lat[n // 2], lat[min(n - 1, int(n * 0.99))]
    print(f"load: {clients} clients, {wall:.1f} s, {n} requests, {n / wall:.1f} req/s, p50 {1e3 * p50:.1f} ms, "
          f"p99 {1e3 * p99:.1f} ms, {len(errors)} failed, {batched[0]} answered from a batch of > 1")
    check(not errors, f"load: {len(errors)} failed requests, first {errors[:3]}")
    check(n > 0, "load: no requests completed")

    # malformed barrage: every one answered 4xx, never 5xx or a dropped connection
    rng = random.Random(7)
    good = json.dumps(image_req([b64[0]]))
    bodies = [b"", b"{", b"[" * 5000, b"{\"inputs\":" + b"[" * 100, b"\x00\xff\xfe" * 50, b"null", b"1e999999",
              json.dumps({"inputs": [{"name": "i", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": [1e300] * 784}]}).encode(),
              json.dumps({"inputs": [{"name": "i", "datatype": "FP32", "shape": [-1, 1, 28, 28], "data": []}]}).encode(),
              json.dumps({"inputs": [{"name": "i", "datatype": "FP32", "shape": [999999999, 1, 28, 28], "data": [0]}]}).encode(),
              json.dumps({"inputs": [{"name": "i", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": [[[[[[0]]]]]]}]}).encode(),
              json.dumps({"inputs": [{"name": "i", "datatype": "BYTES", "shape": [1], "data": [base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(200)).decode()]}]}).encode(),
              json.dumps({"inputs": [{"name": "i", "datatype": "BYTES", "shape": [1], "data": [base64.b64encode(b"\xff\xd8\xff" + bytes(300)).decode()]}]}).encode(),
              json.dumps({"id": 5, "inputs": []}).encode()]
    for _ in range(200):  # truncations and byte flips of a good request
        b = bytearray(good.encode())
        if rng.random() < 0.5:
            b = b[:rng.randrange(len(b))]
        else:
            for _ in range(rng.randrange(1, 8)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        bodies.append(bytes(b))
    codes = {}
    bad = []
    for b in bodies:
        try:
            s, j, _ = req(port, "POST", "/v2/models/m1/infer", b, {"Content-Type": "application/json"})
        except Exception as e:
            bad.append(repr(e)); continue
        codes[s] = codes.get(s, 0) + 1
        if s >= 500 or (s != 200 and not (isinstance(j, dict) and "error" in j)):
            bad.append((s, b[:80]))
    print(f"malformed barrage: {len(bodies)} requests, status counts {dict(sorted(codes.items()))}")
    check(not bad, f"barrage: {bad[:5]}")
    s, j, _ = req(port, "GET", "/v2/health/live")
    s2, j2, _ = req(port, "POST", "/v2/models/m1/infer", image_req([b64[0]]))
    check(s == 200 and s2 == 200 and out(j2, "logits")["data"] == expect[0], "the server still answers after the barrage")
    print("after the barrage: live, and infer gives the same logits")

def cmd_busy(port, img):
    b = base64.b64encode(open(img, "rb").read()).decode()
    res = []
    def one():
        s, j, _ = req(port, "POST", "/v2/models/m1/infer", image_req([b]))
        res.append((s, j.get("error", "") if s != 200 else j["parameters"]["batch_size"]))
    th = [threading.Thread(target=one) for _ in range(6)]
    for t in th: t.start(); time.sleep(0.05)
    for t in th: t.join()
    codes = sorted(s for s, _ in res)
    print(f"queue of 2, one HTTP thread, 6 concurrent requests: statuses {codes}, "
          f"batch sizes of the answered {[v for s, v in res if s == 200]}")
    check(codes == [200, 200, 503, 503, 503, 503], f"busy: {res}")
    check(all(v == 2 for s, v in res if s == 200), f"the two queued requests share one batch: {res}")
    check(all("queue is full" in e for s, e in res if s == 503), "503 message")

if __name__ == "__main__":
    cmd, port = sys.argv[1], int(sys.argv[2])
    if cmd == "check":
        cmd_check(port, sys.argv[3], sys.argv[4:])
    elif cmd == "load":
        cmd_load(port, float(sys.argv[3]), int(sys.argv[4]), sys.argv[5:])
    elif cmd == "busy":
        cmd_busy(port, sys.argv[3])
    sys.exit(1 if FAIL else 0)
