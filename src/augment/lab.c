// 8-bit RGB <-> CIELAB the way OpenCV converts linear RGB for fastNlMeansDenoisingColored
// (COLOR_LBGR2Lab / COLOR_Lab2LBGR on 8-bit data): forward in fixed point (12-bit matrix,
// 3-bit gamma table, 15-bit cube-root table; bit-exact), backward in float, truncated to 8 bits
// (within 1 of OpenCV's table-driven integer path).
#include <math.h>

#include "robustcv/augment.h"

#define LAB_SHIFT 12
#define GAMMA_SHIFT 3
#define LAB_SHIFT2 (LAB_SHIFT + GAMMA_SHIFT)
#define CBRT_TAB 3072 // 256 * 3 / 2 * (1 << GAMMA_SHIFT)
#define DESCALE(x, n) (((x) + (1 << ((n) - 1))) >> (n))

static const double rgb2xyz[9] = {0.412453, 0.357580, 0.180423, 0.212671, 0.715160,
                                  0.072169, 0.019334, 0.119193, 0.950227};
static const double xyz2rgb[9] = {3.240479, -1.53715, -0.498535, -0.969256, 1.875991,
                                  0.041556, 0.055648, -0.204043, 1.057311};
static const double white[3] = {0.950456, 1.0, 1.088754};

static inline uint8_t sat8(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

void rcv_rgb_to_lab8(const uint8_t *rgb, uint8_t *lab, int n) {
    int coef[9];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) coef[3 * i + j] = (int)lrint((1 << LAB_SHIFT) * rgb2xyz[3 * i + j] / white[i]);
    static const float cb_scale = 1.0f / (255.0f * (1 << GAMMA_SHIFT));
    // The table is small and the same for every call; a local copy keeps this reentrant.
    uint16_t cbrt_tab[CBRT_TAB];
    for (int i = 0; i < CBRT_TAB; i++) {
        float x = (float)i * cb_scale;
        double f = x < 0.008856f ? x * 7.787f + 0.13793103448275862 : cbrt((double)x);
        cbrt_tab[i] = (uint16_t)lrint((1 << LAB_SHIFT2) * f);
    }
    const int Lscale = (116 * 255 + 50) / 100, Lshift = -((16 * 255 * (1 << LAB_SHIFT2) + 50) / 100);
    for (int p = 0; p < n; p++) {
        int R = rgb[3 * p] << GAMMA_SHIFT, G = rgb[3 * p + 1] << GAMMA_SHIFT, B = rgb[3 * p + 2] << GAMMA_SHIFT;
        int fX = cbrt_tab[DESCALE(R * coef[0] + G * coef[1] + B * coef[2], LAB_SHIFT)];
        int fY = cbrt_tab[DESCALE(R * coef[3] + G * coef[4] + B * coef[5], LAB_SHIFT)];
        int fZ = cbrt_tab[DESCALE(R * coef[6] + G * coef[7] + B * coef[8], LAB_SHIFT)];
        lab[3 * p] = sat8(DESCALE(Lscale * fY + Lshift, LAB_SHIFT2));
        lab[3 * p + 1] = sat8(DESCALE(500 * (fX - fY) + 128 * (1 << LAB_SHIFT2), LAB_SHIFT2));
        lab[3 * p + 2] = sat8(DESCALE(200 * (fY - fZ) + 128 * (1 << LAB_SHIFT2), LAB_SHIFT2));
    }
}

void rcv_lab8_to_rgb(const uint8_t *lab, uint8_t *rgb, int n) {
    float C[9];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) C[3 * j + i] = (float)(xyz2rgb[3 * j + i] * white[i]);
    const float lthresh = 0.008856f * 903.3f, fthresh = 7.787f * 0.008856f + 16.0f / 116.0f;
    for (int p = 0; p < n; p++) {
        float li = lab[3 * p] * (100.f / 255.f), ai = (float)(lab[3 * p + 1] - 128), bi = (float)(lab[3 * p + 2] - 128);
        float y, fy;
        if (li <= lthresh) {
            y = li / 903.3f;
            fy = 7.787f * y + 16.0f / 116.0f;
        } else {
            fy = (li + 16.0f) / 116.0f;
            y = fy * fy * fy;
        }
        float fxz[2] = {ai / 500.0f + fy, fy - bi / 200.0f};
        for (int j = 0; j < 2; j++)
            fxz[j] = fxz[j] <= fthresh ? (fxz[j] - 16.0f / 116.0f) / 7.787f : fxz[j] * fxz[j] * fxz[j];
        float x = fxz[0], z = fxz[1];
        for (int k = 0; k < 3; k++) {
            float v = C[3 * k] * x + C[3 * k + 1] * y + C[3 * k + 2] * z;
            v = v < 0 ? 0 : v > 1 ? 1 : v;
            // OpenCV 4 converts back in fixed point (Lab2RGBinteger), which lands on floor(v * 255)
            // for ~96% of values and within 1 for all; truncation is the closest simple rule.
            rgb[3 * p + k] = sat8((int)(v * 255.f));
        }
    }
}
