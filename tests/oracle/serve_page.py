"""The page at / in headless Chromium (Selenium): upload an image through the file input, read
the top-5 and the Grad-CAM overlays from the DOM, attack it, and save a screenshot.

usage: serve_page.py PORT IMAGE SCREENSHOT.png [MODEL]
The top-5 shown must equal what POST /v2/models/MODEL/explain returns for the same image (MODEL: the
first served, default m1); the server serves three models (two and their ensemble)."""
import base64, http.client, json, sys
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

port, image, shot = int(sys.argv[1]), sys.argv[2], sys.argv[3]
model = sys.argv[4] if len(sys.argv) > 4 else "m1"
opts = webdriver.ChromeOptions()
for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,1400"):
    opts.add_argument(a)
opts.binary_location = "/usr/bin/chromium"
drv = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
fails = []
try:
    drv.get(f"http://127.0.0.1:{port}/")
    wait = WebDriverWait(drv, 60)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model option")) == 3)
    drv.find_element(By.ID, "file").send_keys(image)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#top5 li.pred")) == 5 and
               len(d.find_elements(By.CSS_SELECTOR, "img.overlay")) == 5)
    shown = [(int(li.get_attribute("data-cls")), li.find_element(By.CLASS_NAME, "prob").text)
             for li in drv.find_elements(By.CSS_SELECTOR, "#top5 li.pred")]
    srcs = [i.get_attribute("src") for i in drv.find_elements(By.CSS_SELECTOR, "img.overlay")]
    # Each overlay must have loaded as an image (naturalWidth = the model's 28 pixels).
    nat = drv.execute_script("return [...document.querySelectorAll('img.overlay')].map(i => i.naturalWidth)")
    c = http.client.HTTPConnection("127.0.0.1", port)
    body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                        "data": [base64.b64encode(open(image, "rb").read()).decode()]}], "parameters": {"top_k": 5}}
    c.request("POST", f"/v2/models/{model}/explain", json.dumps(body))
    j = json.loads(c.getresponse().read())
    want_cls = next(o for o in j["outputs"] if o["name"] == "classes")["data"]
    want_p = next(o for o in j["outputs"] if o["name"] == "probabilities")["data"]
    want = [(k, f"{100 * p:.2f}%") for k, p in zip(want_cls, want_p)]
    if shown != want:
        fails.append(f"page top-5 {shown} != explain {want}")
    if not all(s.startswith("data:image/png;base64,") for s in srcs) or nat != [28] * 5:
        fails.append(f"overlays not loaded: natural widths {nat}")
    print(f"page: top-5 {shown} (= explain), 5 overlays loaded")
    drv.find_element(By.ID, "eps").clear()
    drv.find_element(By.ID, "eps").send_keys("16")
    drv.find_element(By.ID, "attack").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#adv-top5 li.pred")) == 5)
    verdict = drv.find_element(By.ID, "verdict").text
    adv_nat = drv.execute_script("return [document.getElementById('adv-img').naturalWidth, document.getElementById('pert-img').naturalWidth]")
    if adv_nat != [28, 28] or not verdict:
        fails.append(f"attack result not shown: {adv_nat} {verdict!r}")
    print(f"page: attack shown ({verdict})")
    drv.save_screenshot(shot)
finally:
    drv.quit()
for f in fails:
    print("FAIL:", f)
sys.exit(1 if fails else 0)
