/*
 * keyfile.c: an unencrypted OpenSSH ed25519 private key, read here and
 * signed with libsodium.  libssh2 1.10 reads every key file through
 * OpenSSL 3's PEM decoders first, which cost about 4.4 million
 * instructions per connection before it falls back to its own OpenSSH
 * parser (callgrind, 10 hosts x 20 steps: 13 % of the controller's
 * instructions).  The format of the one key type that needs none of that
 * is small and fixed (OpenSSH's PROTOCOL.key):
 *
 *   "openssh-key-v1\0" string cipher "none" string kdf "none"
 *   string kdfoptions "" uint32 1 (keys) string public-key-blob
 *   string private-section:
 *     uint32 check uint32 check string "ssh-ed25519" string pub (32)
 *     string secret (64: seed and pub) string comment padding 1 2 3 ...
 *
 * Anything else (another type, a passphrase, a second key, a length that
 * does not add up) is left to libssh2, unchanged: ssh_keyfile_load says
 * so and the caller uses libssh2_userauth_publickey_fromfile as before.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ssh_internal.h"

/* An ed25519 key file is about 400 bytes; a comment makes it longer. */
#define KEYFILE_MAX 16384

static const char ARMOR_BEGIN[] = "-----BEGIN OPENSSH PRIVATE KEY-----";
static const char ARMOR_END[] = "-----END OPENSSH PRIVATE KEY-----";
static const char MAGIC[] = "openssh-key-v1";  /* with its NUL */

struct reader {
    const unsigned char *p;
    size_t left;
};

static int read_u32(struct reader *r, uint32_t *v)
{
    if (r->left < 4)
        return -1;
    *v = ((uint32_t)r->p[0] << 24) | ((uint32_t)r->p[1] << 16) |
         ((uint32_t)r->p[2] << 8) | (uint32_t)r->p[3];
    r->p += 4;
    r->left -= 4;
    return 0;
}

/* A length-prefixed string: *s points into the reader's buffer. */
static int read_string(struct reader *r, const unsigned char **s, size_t *n)
{
    uint32_t len;

    if (read_u32(r, &len) != 0 || len > r->left)
        return -1;
    *s = r->p;
    *n = len;
    r->p += len;
    r->left -= len;
    return 0;
}

static int string_is(struct reader *r, const char *want)
{
    const unsigned char *s;
    size_t n;

    return read_string(r, &s, &n) == 0 && n == strlen(want) &&
           memcmp(s, want, n) == 0;
}

/* The private section: checks, type, public and secret key, comment,
 * padding 1, 2, 3 ... to the end. */
static int parse_private(struct reader *r, struct ssh_keyfile *k,
                         const unsigned char *pub_blob, size_t pub_len)
{
    uint32_t check1, check2;
    const unsigned char *pub, *secret, *comment;
    size_t pub_n, secret_n, comment_n, i;
    unsigned char derived_pk[crypto_sign_ed25519_PUBLICKEYBYTES];
    unsigned char derived_sk[crypto_sign_ed25519_SECRETKEYBYTES];
    int mismatch;

    if (read_u32(r, &check1) != 0 || read_u32(r, &check2) != 0 ||
        check1 != check2 || !string_is(r, "ssh-ed25519") ||
        read_string(r, &pub, &pub_n) != 0 ||
        pub_n != crypto_sign_ed25519_PUBLICKEYBYTES ||
        read_string(r, &secret, &secret_n) != 0 ||
        secret_n != crypto_sign_ed25519_SECRETKEYBYTES ||
        read_string(r, &comment, &comment_n) != 0)
        return -1;
    /* the secret's second half is the public key, which must be the one
     * the file names outside the private section */
    if (memcmp(secret + 32, pub, 32) != 0 ||
        pub_len != sizeof k->public_blob ||
        memcmp(pub_blob + pub_len - 32, pub, 32) != 0)
        return -1;
    for (i = 0; i < r->left; i++)
        if (r->p[i] != (unsigned char)(i + 1))
            return -1;
    /* the seed must give that public key: a damaged seed would sign with
     * a key pair that does not match (refused by the server, and a weak
     * spot of Ed25519 signing), so such a file goes to libssh2 */
    mismatch = crypto_sign_ed25519_seed_keypair(derived_pk, derived_sk,
                                                secret) != 0 ||
               sodium_memcmp(derived_pk, pub, sizeof derived_pk) != 0;
    sodium_memzero(derived_sk, sizeof derived_sk);
    if (mismatch)
        return -1;
    memcpy(k->secret, secret, sizeof k->secret);
    memcpy(k->public_blob, pub_blob, sizeof k->public_blob);
    return 0;
}

/* The decoded file (raw, n bytes) into k; -1 when it is not an
 * unencrypted single ed25519 key. */
static int parse_key(const unsigned char *raw, size_t n,
                     struct ssh_keyfile *k)
{
    struct reader r = { raw, n };
    const unsigned char *pub_blob, *priv, *key;
    size_t pub_len, priv_len, key_n;
    uint32_t keys;
    struct reader blob;

    if (n < sizeof MAGIC || memcmp(raw, MAGIC, sizeof MAGIC) != 0)
        return -1;
    r.p += sizeof MAGIC;
    r.left -= sizeof MAGIC;
    if (!string_is(&r, "none") || !string_is(&r, "none") ||
        !string_is(&r, "") || read_u32(&r, &keys) != 0 || keys != 1 ||
        read_string(&r, &pub_blob, &pub_len) != 0 ||
        read_string(&r, &priv, &priv_len) != 0 || r.left != 0)
        return -1;
    /* the public blob: string "ssh-ed25519" string key (32) */
    blob.p = pub_blob;
    blob.left = pub_len;
    if (!string_is(&blob, "ssh-ed25519") ||
        read_string(&blob, &key, &key_n) != 0 || key_n != 32 ||
        blob.left != 0)
        return -1;
    r.p = priv;
    r.left = priv_len;
    return parse_private(&r, k, pub_blob, pub_len);
}

int ssh_keyfile_load(const char *path, struct ssh_keyfile *k)
{
    /* on the stack, wiped before return (sodium_malloc costs mmap and
     * mprotect calls at every connection) */
    char text[KEYFILE_MAX + 1];
    unsigned char raw[KEYFILE_MAX];
    size_t n = 0, raw_len = 0;
    const char *body, *end;
    FILE *f;
    int rc = -1;

    ssh_keyfile_clear(k);
    f = fopen(path, "re");
    if (f == NULL)
        goto done;
    setvbuf(f, NULL, _IONBF, 0);  /* no copy of the key in stdio's buffer */
    n = fread(text, 1, KEYFILE_MAX, f);
    text[n] = '\0';
    if (n == KEYFILE_MAX || ferror(f))
        goto done;
    body = strstr(text, ARMOR_BEGIN);
    end = body != NULL ? strstr(body, ARMOR_END) : NULL;
    if (body == NULL || end == NULL)
        goto done;
    body += sizeof ARMOR_BEGIN - 1;
    if (sodium_base642bin(raw, KEYFILE_MAX, body, (size_t)(end - body),
                          "\r\n \t", &raw_len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0)
        goto done;
    if (parse_key(raw, raw_len, k) != 0) {
        ssh_keyfile_clear(k);
        goto done;
    }
    k->ready = 1;
    rc = 0;
done:
    if (f != NULL)
        fclose(f);
    sodium_memzero(text, n + 1 < sizeof text ? n + 1 : sizeof text);
    sodium_memzero(raw, sizeof raw);  /* a failed decode may leave bytes */
    return rc;
}

void ssh_keyfile_clear(struct ssh_keyfile *k)
{
    sodium_memzero(k, sizeof *k);
}

/* libssh2's sign callback: the raw 64-byte signature, in memory libssh2
 * frees with its allocator (the default one: free). */
static int sign_ed25519(LIBSSH2_SESSION *session, unsigned char **sig,
                        size_t *sig_len, const unsigned char *data,
                        size_t data_len, void **abstract)
{
    struct ssh_keyfile *k = *abstract;
    unsigned char *out;

    (void)session;
    out = malloc(crypto_sign_ed25519_BYTES);
    if (out == NULL || !k->ready ||
        crypto_sign_ed25519_detached(out, NULL, data, data_len,
                                     k->secret) != 0) {
        free(out);
        return -1;
    }
    *sig = out;
    *sig_len = crypto_sign_ed25519_BYTES;
    return 0;
}

int ssh_keyfile_userauth(LIBSSH2_SESSION *session, const char *user,
                         struct ssh_keyfile *k)
{
    k->abstract = k;
    return libssh2_userauth_publickey(session, user, k->public_blob,
                                      sizeof k->public_blob, sign_ed25519,
                                      &k->abstract);
}
