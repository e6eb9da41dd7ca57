/*
 * WeWorkFinanceSdk_C.h -- the C API of WeCom's conversation-archive SDK
 * (libWeWorkFinanceSdk_C.so, SDK version 200215), as documented in Siyu's
 * REFERENCE.md section 11.1. Written for Siyu's tests from that description;
 * the vendor ships its own header with the real library.
 *
 * Return codes of the int functions: 0 = ok, otherwise
 *   10000 parameter error            10006 decryption failed
 *   10001 network error              10007 no private key for this publickey_ver
 *   10002 data parse failure         10008 encrypt_key parse error
 *   10003 system failure             10009 caller IP not allowed
 *   10004 key error (encrypt failed) 10010 data expired
 *   10005 bad sdkfileid              10011 certificate error
 */
#ifndef WEWORK_FINANCE_SDK_C_H
#define WEWORK_FINANCE_SDK_C_H

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque SDK handle: one per (corp, secret); NewSdk, then Init, then use. */
typedef struct WeWorkFinanceSdk_t WeWorkFinanceSdk_t;

/* A buffer the SDK fills and owns; read it with GetContentFromSlice/GetSliceLen. */
typedef struct Slice_t {
    char *buf;
    int len;
} Slice_t;

/* One chunk of a media file (GetMediaData). */
typedef struct MediaData {
    char *outindexbuf;
    int out_len;
    char *data;
    int data_len;
    int is_finish;
} MediaData_t;

WeWorkFinanceSdk_t *NewSdk(void);

/* corpid: the corp id; secret: the conversation-archive (会话存档) secret. 0 = ok. */
int Init(WeWorkFinanceSdk_t *sdk, const char *corpid, const char *secret);

/*
 * Messages with seq > `seq` (start at 0, then pass the largest seq seen), at most
 * `limit` (<= 1000) of them. proxy: e.g. "socks5://10.0.0.1:8081" or NULL;
 * passwd: "user:pass" or NULL; timeout in seconds. On success chatDatas holds
 * {"errcode":0,"errmsg":"ok","chatdata":[{seq,msgid,publickey_ver,
 *   encrypt_random_key,encrypt_chat_msg}, ...]}.
 */
int GetChatData(WeWorkFinanceSdk_t *sdk, unsigned long long seq, unsigned int limit,
                const char *proxy, const char *passwd, int timeout, Slice_t *chatDatas);

/*
 * encrypt_key: the RSA-decrypted encrypt_random_key (PKCS#1 v1.5 with the private key
 * of the item's publickey_ver), as a string; encrypt_msg: the item's encrypt_chat_msg.
 * On success msg holds the message JSON.
 */
int DecryptData(const char *encrypt_key, const char *encrypt_msg, Slice_t *msg);

/*
 * One chunk (<= 512 KB) of a media file: the first call passes indexbuf "", later calls
 * the previous chunk's outindexbuf, until is_finish is 1.
 */
int GetMediaData(WeWorkFinanceSdk_t *sdk, const char *indexbuf, const char *sdkFileid,
                 const char *proxy, const char *passwd, int timeout, MediaData_t *media_data);

void DestroySdk(WeWorkFinanceSdk_t *sdk);

Slice_t *NewSlice(void);
void FreeSlice(Slice_t *slice);
char *GetContentFromSlice(Slice_t *slice);
int GetSliceLen(Slice_t *slice);

MediaData_t *NewMediaData(void);
void FreeMediaData(MediaData_t *media_data);
char *GetOutIndexBuf(MediaData_t *media_data);
char *GetData(MediaData_t *media_data);
int GetIndexLen(MediaData_t *media_data);
int GetDataLen(MediaData_t *media_data);
int IsMediaDataFinish(MediaData_t *media_data);

#ifdef __cplusplus
}
#endif

#endif /* WEWORK_FINANCE_SDK_C_H */
