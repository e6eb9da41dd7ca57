/*
 * A stand-in for libWeWorkFinanceSdk_C.so, for Siyu's tests: it implements the API of
 * WeWorkFinanceSdk_C.h without any network, so the ctypes binding in
 * siyu.wecom.finance_sdk (struct layouts, Slice handling, freeing, return codes,
 * threads) runs against a real compiled library.
 *
 * Behaviour
 *   Init          0 when corpid and secret are non-empty, else 10000. Reads
 *                 SIYU_FAKE_SDK_FAIL="CODE:TIMES": the next TIMES GetChatData calls of
 *                 this handle answer CODE.
 *   GetChatData   chatdata items from the JSON-lines file named by SIYU_FAKE_SDK_CHATDATA
 *                 (one item per line, each with a "seq"): those with seq > `seq`, in seq
 *                 order, at most `limit`; limit 0 or > 1000 -> 10000; unreadable file ->
 *                 10003; no file named -> an empty list. Needs a successful Init (10000).
 *                 SIYU_FAKE_SDK_LATENCY_MS: each call first waits that long, as a call
 *                 over the network to WeCom's servers does (benchmarks).
 *   DecryptData   the stand-in's own scheme (not WeCom's): encrypt_msg is
 *                 base64(plaintext XOR key repeated); empty key -> 10008, bad base64 or a
 *                 result that is not a JSON object (a wrong key) -> 10006.
 *   GetMediaData  not emulated: 10005.
 * SiyuStandinLiveSlices() (not in the header) counts slices not yet freed, for leak checks.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "WeWorkFinanceSdk_C.h"

struct WeWorkFinanceSdk_t {
    int initialized;
    int fail_code;
    int fail_left;
};

static int live_slices = 0;

int SiyuStandinLiveSlices(void) { return __atomic_load_n(&live_slices, __ATOMIC_SEQ_CST); }

WeWorkFinanceSdk_t *NewSdk(void) { return calloc(1, sizeof(WeWorkFinanceSdk_t)); }

void DestroySdk(WeWorkFinanceSdk_t *sdk) { free(sdk); }

int Init(WeWorkFinanceSdk_t *sdk, const char *corpid, const char *secret) {
    if (!sdk || !corpid || !*corpid || !secret || !*secret) return 10000;
    sdk->initialized = 1;
    sdk->fail_code = 0;
    sdk->fail_left = 0;
    const char *fail = getenv("SIYU_FAKE_SDK_FAIL");
    if (fail && *fail) {
        int code = 0, times = 1;
        if (sscanf(fail, "%d:%d", &code, &times) >= 1 && code) {
            sdk->fail_code = code;
            sdk->fail_left = times;
        }
    }
    return 0;
}

Slice_t *NewSlice(void) {
    Slice_t *s = calloc(1, sizeof(Slice_t));
    if (s) __atomic_add_fetch(&live_slices, 1, __ATOMIC_SEQ_CST);
    return s;
}

void FreeSlice(Slice_t *slice) {
    if (!slice) return;
    free(slice->buf);
    free(slice);
    __atomic_sub_fetch(&live_slices, 1, __ATOMIC_SEQ_CST);
}

char *GetContentFromSlice(Slice_t *slice) { return slice ? slice->buf : NULL; }

int GetSliceLen(Slice_t *slice) { return slice ? slice->len : 0; }

static void slice_set(Slice_t *slice, char *buf, int len) {
    free(slice->buf);
    slice->buf = buf;
    slice->len = len;
}

/* ---------------------------------------------------------------- GetChatData */

typedef struct {
    unsigned long long seq;
    char *line;
    size_t len;
} item_t;

static int by_seq(const void *a, const void *b) {
    unsigned long long x = ((const item_t *)a)->seq, y = ((const item_t *)b)->seq;
    return x < y ? -1 : x > y;
}

static int line_seq(const char *line, unsigned long long *out) {
    const char *p = strstr(line, "\"seq\"");
    if (!p) return 0;
    p += 5;
    while (*p && isspace((unsigned char)*p)) p++;
    if (*p != ':') return 0;
    p++;
    while (*p && isspace((unsigned char)*p)) p++;
    if (!isdigit((unsigned char)*p)) return 0;
    *out = strtoull(p, NULL, 10);
    return 1;
}

int GetChatData(WeWorkFinanceSdk_t *sdk, unsigned long long seq, unsigned int limit,
                const char *proxy, const char *passwd, int timeout, Slice_t *chatDatas) {
    (void)proxy;
    (void)passwd;
    (void)timeout;
    if (!sdk || !sdk->initialized || !chatDatas) return 10000;
    if (limit == 0 || limit > 1000) return 10000;
    if (__atomic_load_n(&sdk->fail_left, __ATOMIC_SEQ_CST) > 0 &&
        __atomic_sub_fetch(&sdk->fail_left, 1, __ATOMIC_SEQ_CST) >= 0)
        return sdk->fail_code;

    const char *latency = getenv("SIYU_FAKE_SDK_LATENCY_MS");
    if (latency && *latency) {
        long ms = strtol(latency, NULL, 10);
        struct timespec wait = {ms / 1000, (ms % 1000) * 1000000L};
        if (ms > 0) nanosleep(&wait, NULL);
    }

    const char *answer = getenv("SIYU_FAKE_SDK_ANSWER"); /* the whole answer, verbatim */
    if (answer && *answer) {
        slice_set(chatDatas, strdup(answer), (int)strlen(answer));
        return 0;
    }

    item_t *items = NULL;
    size_t n = 0, cap = 0;
    const char *path = getenv("SIYU_FAKE_SDK_CHATDATA");
    if (path && *path) {
        FILE *f = fopen(path, "r");
        if (!f) return 10003;
        char *line = NULL;
        size_t linecap = 0;
        ssize_t got;
        while ((got = getline(&line, &linecap, f)) > 0) {
            while (got > 0 && isspace((unsigned char)line[got - 1])) line[--got] = 0;
            unsigned long long s;
            if (!got || !line_seq(line, &s) || s <= seq) continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                item_t *grown = realloc(items, cap * sizeof(item_t));
                if (!grown) break;
                items = grown;
            }
            items[n].seq = s;
            items[n].line = strdup(line);
            items[n].len = (size_t)got;
            n++;
        }
        free(line);
        fclose(f);
    }
    qsort(items, n, sizeof(item_t), by_seq);
    if (n > limit) {
        for (size_t i = limit; i < n; i++) free(items[i].line);
        n = limit;
    }
    static const char head[] = "{\"errcode\":0,\"errmsg\":\"ok\",\"chatdata\":[";
    static const char tail[] = "]}";
    size_t total = sizeof(head) - 1 + sizeof(tail) - 1 + 1;
    for (size_t i = 0; i < n; i++) total += items[i].len + 1;
    char *out = malloc(total);
    if (!out) return 10003;
    size_t at = 0;
    memcpy(out, head, sizeof(head) - 1);
    at += sizeof(head) - 1;
    for (size_t i = 0; i < n; i++) {
        if (i) out[at++] = ',';
        memcpy(out + at, items[i].line, items[i].len);
        at += items[i].len;
        free(items[i].line);
    }
    free(items);
    memcpy(out + at, tail, sizeof(tail) - 1);
    at += sizeof(tail) - 1;
    out[at] = 0;
    slice_set(chatDatas, out, (int)at);
    return 0;
}

/* ---------------------------------------------------------------- DecryptData */

static int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Standard base64 with padding; returns the decoded length or -1. */
static long b64_decode(const char *in, unsigned char *out) {
    size_t len = strlen(in);
    if (len % 4) return -1;
    long o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)in[i + k];
            if (c == '=' && i + 4 == len && k >= 2) {
                v[k] = -2;
            } else {
                v[k] = b64_value(c);
                if (v[k] < 0) return -1;
            }
        }
        if (v[2] == -2 && v[3] != -2) return -1;
        out[o++] = (unsigned char)((v[0] << 2) | (v[1] >> 4));
        if (v[2] != -2) out[o++] = (unsigned char)(((v[1] & 15) << 4) | (v[2] >> 2));
        if (v[3] != -2) out[o++] = (unsigned char)(((v[2] & 3) << 6) | v[3]);
    }
    return o;
}

int DecryptData(const char *encrypt_key, const char *encrypt_msg, Slice_t *msg) {
    if (!encrypt_msg || !msg) return 10000;
    if (!encrypt_key || !*encrypt_key) return 10008;
    unsigned char *plain = malloc(strlen(encrypt_msg) / 4 * 3 + 1);
    if (!plain) return 10003;
    long n = b64_decode(encrypt_msg, plain);
    if (n <= 0) {
        free(plain);
        return 10006;
    }
    size_t keylen = strlen(encrypt_key);
    for (long i = 0; i < n; i++) plain[i] ^= (unsigned char)encrypt_key[i % keylen];
    plain[n] = 0;
    if (plain[0] != '{' || plain[n - 1] != '}') {
        free(plain);
        return 10006;
    }
    slice_set(msg, (char *)plain, (int)n);
    return 0;
}

/* ---------------------------------------------------------------- media (not emulated) */

int GetMediaData(WeWorkFinanceSdk_t *sdk, const char *indexbuf, const char *sdkFileid,
                 const char *proxy, const char *passwd, int timeout, MediaData_t *media_data) {
    (void)indexbuf;
    (void)proxy;
    (void)passwd;
    (void)timeout;
    if (!sdk || !sdk->initialized || !sdkFileid || !media_data) return 10000;
    return 10005;
}

MediaData_t *NewMediaData(void) { return calloc(1, sizeof(MediaData_t)); }

void FreeMediaData(MediaData_t *media_data) {
    if (!media_data) return;
    free(media_data->outindexbuf);
    free(media_data->data);
    free(media_data);
}

char *GetOutIndexBuf(MediaData_t *media_data) { return media_data ? media_data->outindexbuf : NULL; }
char *GetData(MediaData_t *media_data) { return media_data ? media_data->data : NULL; }
int GetIndexLen(MediaData_t *media_data) { return media_data ? media_data->out_len : 0; }
int GetDataLen(MediaData_t *media_data) { return media_data ? media_data->data_len : 0; }
int IsMediaDataFinish(MediaData_t *media_data) { return media_data ? media_data->is_finish : 0; }
