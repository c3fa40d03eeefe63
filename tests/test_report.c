// The report: a results.json with every section but one filled (transfer left out), images and a
// training log in a temporary run directory; report.html must hold every section, the hand-computed
// CE/mCE and Table-2 rows, no reference outside itself, and render in headless Chromium with all
// its images decoded (checked from --dump-dom). base64 against RFC 4648's test vectors. Bar charts
// keep their bars at the height the frame's geometry gives when a label is too long to fit.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"
#include "robustcv/fileio.h"
#include "robustcv/image.h"
#include "robustcv/plot.h"
#include "robustcv/report.h"
#include "testutil.h"

static void test_base64(void) {
    const char *in[7] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *want[7] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char *b = rcv_base64((const unsigned char *)in[i], strlen(in[i]));
        CHECK(!strcmp(b, want[i]), "base64(%s) = %s, want %s", in[i], b, want[i]);
        free(b);
    }
}

static int write_text(const char *dir, const char *name, const char *text) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return rcv_file_write_atomic(p, text, strlen(text));
}

static char *slurp(const char *dir, const char *name) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    uint8_t *d;
    size_t n;
    return rcv_file_read(p, &d, &n) ? NULL : (char *)d;
}

// The text between <section id="id"> and its </section>.
static char *section_of(const char *html, const char *id) {
    char key[100];
    snprintf(key, sizeof key, "<section id=\"%s\">", id);
    const char *a = strstr(html, key);
    if (!a) return NULL;
    const char *b = strstr(a, "</section>");
    if (!b) return NULL;
    char *s = malloc((size_t)(b - a) + 1);
    memcpy(s, a, (size_t)(b - a));
    s[b - a] = 0;
    return s;
}

static const char *RESULTS =
    "{\"title\": \"test run\", \"dataset\": \"fashion-mnist\", \"corruption_baseline\": \"base\",\n"
    " \"models\": [\n"
    "  {\"name\": \"base\", \"arch\": \"smallcnn\", \"recipe\": \"standard\", \"checkpoint\": \"a.safetensors\",\n"
    "   \"metrics_jsonl\": \"a/metrics.jsonl\",\n"
    "   \"clean\": {\"top1\": 0.8, \"top5\": 0.99, \"loss\": 0.5},\n"
    "   \"denoised\": {\"top1\": 0.75, \"top5\": 0.98},\n"
    "   \"transforms\": {\"hflip\": 0.79, \"grayscale\": 0.8, \"erase\": 0.6},\n"
    "   \"symmetries\": {\"identity\": 0.8, \"rot90\": 0.3},\n"
    "   \"corruptions\": {\"errors\": {\"gaussian_noise\": [0.4, 0.6], \"blur\": [0.5, 1.0]}},\n"
    "   \"fgsm\": [{\"eps\": 0.01, \"top1\": 0.5}, {\"eps\": 0.03, \"top1\": 0.2}],\n"
    "   \"pgd\": [{\"eps\": 0.03, \"steps\": 10, \"top1\": 0.05}],\n"
    "   \"uap\": {\"eps\": 0.05, \"fooling_rate\": 0.4, \"top1\": 0.55},\n"
    "   \"autoattack\": [{\"norm\": \"Linf\", \"eps\": 0.1, \"images\": 200, \"clean\": 0.81, \"pgd\": 0.31,\n"
    "                   \"autoattack\": 0.125, \"after\": {\"apgd-ce\": 0.2, \"apgd-t\": 0.15, \"fab-t\": 0.15,\n"
    "                   \"square\": 0.125}, \"warnings\": [\"Square lowered the robust accuracy\"]}],\n"
    "   \"calibration\": {\"ece\": 0.031, \"nll\": 0.52},\n"
    "   \"tta\": {\"top1\": 0.82, \"top5\": 0.995}},\n"
    "  {\"name\": \"robust\", \"arch\": \"resnet18\", \"recipe\": \"adversarial\",\n"
    "   \"clean\": {\"top1\": 0.9, \"top5\": 1.0, \"loss\": 0.3},\n"
    "   \"corruptions\": {\"errors\": {\"gaussian_noise\": [0.2, 0.4], \"blur\": [0.5, 0.5]}},\n"
    "   \"fgsm\": [{\"eps\": 0.03, \"top1\": 0.6}]}\n"
    " ],\n"
    " \"ensemble_members\": [0, 1],\n"
    " \"ensembles\": {\"space\": \"logits\", \"vote_ties\": \"lowest\", \"sets\": [\"clean\", \"denoised\"], \"rows\": [\n"
    "   {\"members\": [0], \"average\": {\"clean\": {\"top1\": 0.8, \"top5\": 0.99}, \"denoised\": {\"top1\": 0.75, \"top5\": 0.98}},"
    "    \"vote\": {\"clean\": {\"top1\": 0.8}, \"denoised\": {\"top1\": 0.75}}},\n"
    "   {\"members\": [1], \"average\": {\"clean\": {\"top1\": 0.9, \"top5\": 1.0}}, \"vote\": {\"clean\": {\"top1\": 0.9}}},\n"
    "   {\"members\": [0, 1], \"average\": {\"clean\": {\"top1\": 0.9123, \"top5\": 1.0}, \"denoised\": {\"top1\": 0.8, \"top5\": 0.99}},"
    "    \"vote\": {\"clean\": {\"top1\": 0.85}, \"denoised\": {\"top1\": 0.7}}}]},\n"
    " \"ensemble_autoattack\": [{\"norm\": \"Linf\", \"eps\": 0.1, \"images\": 200, \"clean\": 0.85, \"pgd\": 0.4,\n"
    "                           \"autoattack\": 0.333}],\n"
    " \"cards\": [{\"name\": \"base\", \"architecture\": \"smallcnn\", \"clean_acc\": \"81.00\", \"autoattack_acc\": \"12.50\",\n"
    "             \"threat_model\": \"Linf\", \"eps\": \"0.1\", \"number_forward_passes\": 1},\n"
    "            {\"name\": \"no-aa\", \"architecture\": \"x\", \"clean_acc\": \"99.00\", \"autoattack_acc\": null},\n"
    "            {\"name\": \"robust\", \"architecture\": \"resnet18\", \"recipe\": \"trades --ema 0.999\",\n"
    "             \"clean_acc\": \"90.00\", \"autoattack_acc\": \"47.25\", \"clean_images\": 10000,\n"
    "             \"autoattack_images\": 500,\n"
    "             \"threat_model\": \"Linf\", \"eps\": \"8/255\", \"corruptions_mce\": \"63.33\", \"number_forward_passes\": 1}],\n"
    " \"certified\": [{\"name\": \"noise\", \"sigma\": 0.25, \"n\": 2000, \"alpha\": 0.001, \"images\": 100,\n"
    "                  \"radii\": [0, 0.25, 0.5], \"certified_accuracy\": [0.6, 0.45, 0.2]}],\n"
    " \"cams\": [{\"path\": \"cams/grid.png\", \"caption\": \"Grad-CAM top-3\"}],\n"
    " \"figures\": [{\"path\": \"fgsm.jpg\", \"caption\": \"FGSM example\"}]\n"
    "}\n";

// Rows of the bar colour in column x.
static int bar_rows(const rcv_image *im, int x) {
    int n = 0;
    for (int y = 0; y < im->h; y++) {
        const uint8_t *q = im->pix + ((size_t)y * im->w + x) * 3;
        n += q[0] == 70 && q[1] == 120 && q[2] == 200;
    }
    return n;
}

// 320 px high, bars 0..100: the plot runs from y 34 to h - 14 - L, L the label space (the widest
// label, at most (h - 48) * 2 / 5 = 108 px). A bar of 100 fills it: 320 - 14 - 5 - 34 = 267 rows with
// one-letter labels (5 px), 320 - 14 - 108 - 34 = 164 with the demo's affine spec (293 px of text),
// which is cut in the middle to fit. Before the cap that label left the bars 0 rows.
static void test_bars(void) {
    const char *shrt[] = {"a", "b"}, *lng[] = {"a", "affine:degrees=10:translate=0.1/0.1:scale=0.9/1.1"};
    double v[] = {100, 50};
    rcv_image im;
    rcv_plot_bars(&im, 360, 320, "t", "y", shrt, v, 2, 100, "%.0f");
    int x = 64 + (360 - 14 - 64) / 4; // bar 0's centre: half a slot of two into the plot
    CHECK(bar_rows(&im, x) == 267, "short labels: bar of 100 is %d rows, expected 267", bar_rows(&im, x));
    rcv_image_free(&im);
    rcv_plot_bars(&im, 360, 320, "t", "y", lng, v, 2, 100, "%.0f");
    CHECK(bar_rows(&im, x) == 164, "long label: bar of 100 is %d rows, expected 164", bar_rows(&im, x));
    rcv_image_free(&im);
}

int main(void) {
    test_base64();
    test_bars();
    const char *dir = test_tmpdir("report");
    char p[600];
    // Images: a PNG and a JPEG-magic file read as the figure (the report embeds bytes, the browser decodes).
    rcv_image im;
    rcv_image_alloc(&im, 16, 8, 3);
    for (int i = 0; i < 16 * 8 * 3; i++) im.pix[i] = (uint8_t)(i * 7);
    snprintf(p, sizeof p, "%s/cams", dir);
    test_sh("mkdir -p %s/cams %s/a", dir, dir);
    snprintf(p, sizeof p, "%s/cams/grid.png", dir);
    CHECK(rcv_png_write(p, &im) == 0, "%s", rcv_error());
    snprintf(p, sizeof p, "%s/fgsm.jpg", dir);
    CHECK(rcv_png_write(p, &im) == 0, "%s", rcv_error()); // PNG bytes under a .jpg name: sniffed, not named
    rcv_image_free(&im);
    write_text(dir, "a/metrics.jsonl",
               "{\"epoch\": 1, \"train_loss\": 1.2, \"train_acc\": 0.6, \"test_loss\": 0.9, \"test_top1\": 0.7, \"test_top5\": 0.95}\n"
               "{\"epoch\": 2, \"train_loss\": 0.8, \"train_acc\": 0.75, \"test_loss\": 0.7, \"test_top1\": 0.78, \"test_top5\": 0.97}\n"
               "{\"epoch\": 3, \"train_loss\": 0.6, \"train_acc\": 0.8, \"test_loss\": 0.6, \"test_top1\": 0.8, \"test_top5\": 0.99}\n");
    write_text(dir, "results.json", RESULTS);
    int missing = -1;
    int rc = rcv_report_write(dir, &missing);
    CHECK(rc == 0 && missing == 0, "report: %s (missing %d)", rc ? rcv_error() : "", missing);
    char *html = slurp(dir, "report.html"), *md = slurp(dir, "report.md");
    CHECK(html && md, "report.html and report.md written");
    if (!html || !md) return test_done();

    const char *filled[] = {"models", "training", "denoised", "transforms", "symmetries", "corruptions",
                            "adversarial", "autoattack", "leaderboard", "certified", "uap", "calibration", "tta",
                            "ensembles", "cams", "figures"};
    for (size_t i = 0; i < sizeof filled / sizeof filled[0]; i++) {
        char *s = section_of(html, filled[i]);
        CHECK(s && !strstr(s, "No data"), "section %s present and filled", filled[i]);
        free(s);
    }
    char *tr = section_of(html, "transfer");
    CHECK(tr && strstr(tr, "No data"), "the empty transfer section is present and says so");
    free(tr);
    // Corruptions, hand-computed for model (2) against baseline (1) (clean errors 0.1 and 0.2):
    //   CE gaussian_noise = (0.2 + 0.4) / (0.4 + 0.6) = 60.00%, CE blur = 1.0 / 1.5 = 66.67%, mCE 63.33%
    //   relative: (0.1 + 0.3) / (0.2 + 0.4) = 2/3, (0.4 + 0.4) / (0.3 + 0.8) = 8/11 -> mean 69.70%
    char *co = section_of(html, "corruptions");
    CHECK(co && strstr(co, "60.00%") && strstr(co, "66.67%") && strstr(co, "63.33%") && strstr(co, "69.70%"),
          "CE, mCE and relative mCE in the table");
    // The baseline against itself: CE 100%.
    CHECK(co && strstr(co, "100.00%"), "baseline CE 100%%");
    free(co);
    char *en = section_of(html, "ensembles");
    CHECK(en && strstr(en, "Ensemble (1), (2); Averaging") && strstr(en, "91.23%") &&
              strstr(en, "Ensemble (1), (2); Majority Vote") && strstr(en, "(1) base") && strstr(en, "denoised top-1"),
          "Table 2 rows");
    free(en);
    // AutoAttack beside PGD, the ensemble's row, the warning; the leaderboard sorted by AutoAttack
    // accuracy with the card without it last; the certified curve drawn and tabulated.
    char *aa = section_of(html, "autoattack");
    CHECK(aa && strstr(aa, "31.00%") && strstr(aa, "12.50%") && strstr(aa, "33.30%") &&
              strstr(aa, "ensemble of (1), (2) (attacked as one)") && strstr(aa, "Square lowered"),
          "AutoAttack table, the ensemble's row named by ensemble_members");
    free(aa);
    char *lb = section_of(html, "leaderboard");
    const char *r1 = lb ? strstr(lb, "<td>robust</td>") : NULL, *r2 = lb ? strstr(lb, "<td>base</td>") : NULL,
               *r3 = lb ? strstr(lb, "<td>no-aa</td>") : NULL;
    CHECK(r1 && r2 && r3 && r1 < r2 && r2 < r3 && strstr(lb, "47.25%") && strstr(lb, "Linf 8/255"),
          "leaderboard sorted by AutoAttack accuracy");
    CHECK(lb && strstr(lb, "<td>robust</td><td>resnet18</td><td>trades --ema 0.999</td>") &&
              strstr(lb, "<td>base</td><td>smallcnn</td><td>-</td>"),
          "leaderboard: the card's recipe, or - without one");
    CHECK(lb && strstr(lb, "<td>47.25%</td><td>-</td><td>10000 / 500</td>") && strstr(lb, "<td>-</td><td>Linf 0.1</td>"),
          "leaderboard: the images behind clean / AutoAttack, - when the card has none");
    free(lb);
    char *ce = section_of(html, "certified");
    CHECK(ce && strstr(ce, "r=0.25: 45.0%") && strstr(ce, "<img "), "certified curve and table");
    free(ce);
    char *adv = section_of(html, "adversarial");
    CHECK(adv && strstr(adv, "eps 0.01") && strstr(adv, "eps 0.03, 10 steps") && strstr(adv, "60.00%"), "FGSM/PGD table");
    free(adv);
    // Self-contained: every image is a data URI and nothing names another host.
    int imgs = 0;
    for (const char *q = html; (q = strstr(q, "<img ")); q++) {
        imgs++;
        CHECK(!strncmp(q, "<img src=\"data:image/", 21), "image %d is a data URI", imgs);
    }
    // training 1 + transforms 1 + symmetries 1 + corruptions 2 + certified 1 + cams 1 + figures 1
    CHECK(imgs == 8, "%d images embedded, expected 8", imgs);
    CHECK(!strstr(html, "http://") && !strstr(html, "https://") && !strstr(html, "src=\"/") &&
              strstr(html, "default-src 'none'"),
          "no external references; CSP forbids network loads");
    CHECK(strstr(md, "## Ensembles of every subset (Table 2)") && strstr(md, "| Ensemble (1), (2); Averaging |") &&
              strstr(md, "![Grad-CAM top-3](cams/grid.png)") && strstr(md, "_No data:"),
          "report.md tables and image links");

    // Headless Chromium: the inline script marks how many images decoded.
    if (test_sh("command -v chromium >/dev/null 2>&1") != 0) {
        printf("SKIP Chromium check: `chromium` is not installed (scripts/deps.sh installs it)\n");
    } else {
        rc = test_sh("timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage "
                     "--user-data-dir=%s/chrome --virtual-time-budget=5000 --dump-dom file://%s/report.html "
                     "> %s/dom.html 2>/dev/null",
                     dir, dir, dir);
        char *dom = slurp(dir, "dom.html");
        CHECK(rc == 0 && dom, "chromium --dump-dom exited %d", rc);
        if (dom) {
            const char *a = strstr(dom, "data-images=\""), *b = strstr(dom, "data-images-loaded=\"");
            int total = a ? atoi(a + 13) : -1, loaded = b ? atoi(b + 20) : -1;
            printf("chromium: %d of %d images decoded\n", loaded, total);
            CHECK(total == 8 && loaded == 8, "chromium decoded %d of %d images, expected 8 of 8", loaded, total);
            CHECK(strstr(dom, "id=\"ensembles\"") != NULL, "rendered DOM holds the sections");
            free(dom);
        }
    }
    free(html);
    free(md);

    // Bad input: a type error names the JSON path; the previous report stays.
    write_text(dir, "results.json", "{\"models\": [{\"name\": \"x\", \"clean\": \"high\"}]}");
    CHECK(rcv_report_write(dir, NULL) == -1 && strstr(rcv_error(), "models[0].clean") && strstr(rcv_error(), "object"),
          "type error: %s", rcv_error());
    write_text(dir, "results.json", "{\"models\": 3}");
    CHECK(rcv_report_write(dir, NULL) == -1 && strstr(rcv_error(), "models"), "models not an array: %s", rcv_error());
    write_text(dir, "results.json", "{\"models\": [{\"name\": \"x\"}], \"ensemble_members\": [0, 1]}");
    CHECK(rcv_report_write(dir, NULL) == -1 && strstr(rcv_error(), "ensemble_members[1]: 1, expected a model index in 0..0"),
          "ensemble member out of range: %s", rcv_error());
    write_text(dir, "results.json", "{\"models\": [");
    CHECK(rcv_report_write(dir, NULL) == -1 && strstr(rcv_error(), "results.json"), "truncated JSON: %s", rcv_error());
    html = slurp(dir, "report.html");
    CHECK(html && strstr(html, "Ensemble (1), (2); Averaging"), "a failed run leaves the previous report");
    free(html);
    // No models at all: every section says "No data"; a missing image is shown, not fatal.
    write_text(dir, "results.json", "{\"models\": [], \"cams\": [{\"path\": \"nope.png\"}]}");
    rc = rcv_report_write(dir, &missing);
    CHECK(rc == 0 && missing == 1, "empty run: %s, missing %d", rc ? rcv_error() : "", missing);
    html = slurp(dir, "report.html");
    int nodata = 0;
    for (const char *q = html; q && (q = strstr(q, "No data:")); q++) nodata++;
    CHECK(html && nodata == 17 && strstr(html, "image not found: nope.png"), "%d sections say No data", nodata);
    free(html);
    return test_done();
}
