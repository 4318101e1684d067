/*
 * vault.c: cutover.core.vault, the cryptography of the secrets vault
 * (libsodium only).  lua/cutover/vault.lua owns the file format.
 *
 * Key derivation: Argon2id (crypto_pwhash, ALG_ARGON2ID13) with
 * OPSLIMIT_MODERATE and MEMLIMIT_MODERATE (3 passes over 256 MiB, about
 * 0.6 s on a current server).  It runs once per command or run, so the
 * operator waits well under a second, while every guess at the
 * passphrase of a stolen vault file costs an attacker the same.  The
 * salt (crypto_pwhash_SALTBYTES, random) is stored in the vault file.
 *
 * Tests: "test", libsodium's minimum cost (1 pass over 8 KiB), for the
 * suite's many vault opens.  Only a process whose main function called
 * cutover_vault_allow_test_kdf (the test programs) may use it; asked for
 * anywhere else, derive raises.  The vault's header records the cost
 * (secrets/vault.lua), and the shipped binary refuses such a vault.
 *
 * Encryption: XChaCha20-Poly1305 (crypto_aead_xchacha20poly1305_ietf)
 * with a fresh random 24-byte nonce on every call, so two encryptions
 * of the same text never look alike and a nonce is never reused under
 * one key.  Optional additional data (the vault's header line) is
 * authenticated with the text, so a changed header is detected.
 *
 * Keys and decrypted plaintexts live in sodium_malloc'd memory (guard
 * pages, locked where the system allows) owned by a userdata with
 * __gc and __close that wipes (sodium_memzero) and frees it.  The
 * userdata is created before the memory is allocated, so a Lua error
 * can never leak it.  Strings handed to or returned to Lua (the
 * passphrase, a decrypted text) are Lua's and cannot be wiped; see
 * docs/security.md.
 *
 * Misuse raises; failures a user can cause (a wrong passphrase, a
 * damaged file, no memory for Argon2id) return nil, message.
 */
#include <string.h>

#include <sodium.h>

#include "cutover.h"

#define VAULT_KEY_MT "cutover.vault.key"
#define VAULT_BUF_MT "cutover.vault.buffer"

#define VAULT_KEY_BYTES crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define VAULT_NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define VAULT_TAG_BYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
#define VAULT_SALT_BYTES crypto_pwhash_SALTBYTES
#define VAULT_OPSLIMIT crypto_pwhash_OPSLIMIT_MODERATE
#define VAULT_MEMLIMIT crypto_pwhash_MEMLIMIT_MODERATE
#define VAULT_TEST_OPSLIMIT crypto_pwhash_OPSLIMIT_MIN
#define VAULT_TEST_MEMLIMIT crypto_pwhash_MEMLIMIT_MIN
/* Cap on what one call encrypts or decrypts. */
#define VAULT_MAX_DATA ((size_t)64 * 1024 * 1024)

static const char vault_damaged[] = "wrong passphrase or damaged data";

/* Set only by cutover_vault_allow_test_kdf (test programs). */
static int vault_test_kdf;

void cutover_vault_allow_test_kdf(void)
{
    vault_test_kdf = 1;
}

/*
 * Secure memory owned by a userdata: data is sodium_malloc'd (or NULL)
 * and belongs to the userdata until vault_release wipes and frees it.
 */
struct vault_secure {
    unsigned char *data;
    size_t len;
};

/* Pushes an empty secure userdata with metatable mt. */
static struct vault_secure *vault_newsecure(lua_State *L, const char *mt)
{
    struct vault_secure *s = lua_newuserdatauv(L, sizeof *s, 0);

    s->data = NULL;
    s->len = 0;
    luaL_setmetatable(L, mt);
    return s;
}

/* Gives s len bytes of secure memory; 0 on success, -1 without memory. */
static int vault_alloc(struct vault_secure *s, size_t len)
{
    s->data = sodium_malloc(len == 0 ? 1 : len);
    if (s->data == NULL)
        return -1;
    s->len = len;
    return 0;
}

/* Wipes and frees what s holds; safe to call twice. */
static void vault_release(struct vault_secure *s)
{
    if (s->data != NULL) {
        sodium_memzero(s->data, s->len);
        sodium_free(s->data);
    }
    s->data = NULL;
    s->len = 0;
}

/* The open key at idx; raises on a closed one. */
static struct vault_secure *vault_checkkey(lua_State *L, int idx)
{
    struct vault_secure *key = luaL_checkudata(L, idx, VAULT_KEY_MT);

    if (key->data == NULL)
        luaL_error(L, "attempt to use a closed vault key");
    return key;
}

/*
 * __gc and __close of keys, and key:close().
 * Params on Lua stack: 1: key.  Returns nothing.
 */
static int vault_key_close(lua_State *L)
{
    vault_release(luaL_checkudata(L, 1, VAULT_KEY_MT));
    return 0;
}

/* __gc and __close of plaintext buffers.  Params: 1: buffer. */
static int vault_buf_gc(lua_State *L)
{
    vault_release(luaL_checkudata(L, 1, VAULT_BUF_MT));
    return 0;
}

/* __tostring of keys: never shows a byte of the key. */
static int vault_key_tostring(lua_State *L)
{
    struct vault_secure *key = luaL_checkudata(L, 1, VAULT_KEY_MT);

    lua_pushstring(L, key->data != NULL ? "vault key" : "vault key (closed)");
    return 1;
}

/*
 * vault.salt() -> salt
 * Params on Lua stack: none.
 * Returns on Lua stack: 1: vault.SALT_BYTES random bytes (binary).
 */
static int vault_salt(lua_State *L)
{
    unsigned char salt[VAULT_SALT_BYTES];

    randombytes_buf(salt, sizeof salt);
    lua_pushlstring(L, (const char *)salt, sizeof salt);
    return 1;
}

/*
 * vault.derive(passphrase, salt [, kdf]) -> key | nil, message
 * Params on Lua stack: 1: passphrase (text, not empty); 2: salt (exactly
 * vault.SALT_BYTES bytes); 3: optional cost, "moderate" (the default) or
 * "test" (raises unless this is a test program: vault.TEST_KDF).
 * Returns on Lua stack: 1: a key userdata (methods encrypt, decrypt,
 * close), or nil and a message when Argon2id cannot get its memory.
 */
static int vault_derive(lua_State *L)
{
    size_t plen;
    size_t slen;
    const char *pass = luaL_checklstring(L, 1, &plen);
    const char *salt = luaL_checklstring(L, 2, &slen);
    static const char *const kdfs[] = {"moderate", "test", NULL};
    int test = luaL_checkoption(L, 3, "moderate", kdfs) == 1;
    struct vault_secure *key;
    const char *msg;

    luaL_argcheck(L, plen > 0, 1, "the passphrase is empty");
    luaL_argcheck(L, slen == VAULT_SALT_BYTES, 2, "a salt of the wrong size");
    /* the security decision is here, not in the Lua that asks */
    luaL_argcheck(L, !test || vault_test_kdf, 3, "the low-cost test key "
                  "derivation is only in test builds");
    key = vault_newsecure(L, VAULT_KEY_MT);                  /* key */
    if (vault_alloc(key, VAULT_KEY_BYTES) != 0) {
        msg = "no secure memory for the vault key";
        goto failed;
    }
    if (crypto_pwhash(key->data, key->len, pass, plen,
                      (const unsigned char *)salt,
                      test ? VAULT_TEST_OPSLIMIT : VAULT_OPSLIMIT,
                      test ? VAULT_TEST_MEMLIMIT : VAULT_MEMLIMIT,
                      crypto_pwhash_ALG_ARGON2ID13) != 0) {
        msg = "key derivation (Argon2id) ran out of memory";
        goto failed;
    }
    return 1;
failed:
    vault_release(key);
    lua_pushnil(L);
    lua_pushstring(L, msg);
    return 2;
}

/*
 * key:encrypt(plaintext [, ad]) -> sealed
 * Params on Lua stack: 1: key; 2: plaintext (at most 64 MiB); 3:
 * optional additional data, authenticated but not part of the result.
 * Returns on Lua stack: 1: nonce .. ciphertext .. tag (binary), a fresh
 * random nonce each call.
 */
static int vault_encrypt(lua_State *L)
{
    struct vault_secure *key = vault_checkkey(L, 1);
    size_t len;
    size_t adlen = 0;
    const char *plain = luaL_checklstring(L, 2, &len);
    const char *ad = luaL_optlstring(L, 3, NULL, &adlen);
    unsigned long long sealed_len = 0;
    unsigned char *out;
    luaL_Buffer b;

    luaL_argcheck(L, len <= VAULT_MAX_DATA, 2, "more than 64 MiB");
    out = (unsigned char *)luaL_buffinitsize(L, &b, VAULT_NONCE_BYTES +
                                             len + VAULT_TAG_BYTES);
    randombytes_buf(out, VAULT_NONCE_BYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(
        out + VAULT_NONCE_BYTES, &sealed_len,
        (const unsigned char *)plain, len,
        (const unsigned char *)ad, adlen, NULL, out, key->data);
    luaL_pushresultsize(&b, VAULT_NONCE_BYTES + (size_t)sealed_len);
    return 1;
}

/*
 * key:decrypt(sealed [, ad]) -> plaintext | nil, message
 * Params on Lua stack: 1: key; 2: what key:encrypt returned; 3: the same
 * additional data as given to encrypt, if any.
 * Returns on Lua stack: 1: the plaintext, or nil and "wrong passphrase
 * or damaged data" when the tag does not verify (a different key, or a
 * changed byte anywhere in sealed or ad).
 */
static int vault_decrypt(lua_State *L)
{
    struct vault_secure *key = vault_checkkey(L, 1);
    size_t len;
    size_t adlen = 0;
    const unsigned char *sealed =
        (const unsigned char *)luaL_checklstring(L, 2, &len);
    const char *ad = luaL_optlstring(L, 3, NULL, &adlen);
    struct vault_secure *plain;
    unsigned long long plain_len = 0;
    const char *msg = vault_damaged;

    luaL_argcheck(L, len <= VAULT_MAX_DATA + VAULT_NONCE_BYTES +
                  VAULT_TAG_BYTES, 2, "more than 64 MiB");
    plain = vault_newsecure(L, VAULT_BUF_MT);                /* buffer */
    if (len < VAULT_NONCE_BYTES + VAULT_TAG_BYTES)
        goto failed;
    if (vault_alloc(plain, len - VAULT_NONCE_BYTES - VAULT_TAG_BYTES) != 0) {
        msg = "no secure memory for the decrypted data";
        goto failed;
    }
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            plain->data, &plain_len, NULL,
            sealed + VAULT_NONCE_BYTES, len - VAULT_NONCE_BYTES,
            (const unsigned char *)ad, adlen, sealed, key->data) != 0)
        goto failed;
    /* The copy Lua gets is Lua's; the buffer is wiped now (or by __gc if
     * lua_pushlstring raises). */
    lua_pushlstring(L, (const char *)plain->data, (size_t)plain_len);
    vault_release(plain);
    return 1;
failed:
    vault_release(plain);
    lua_pushnil(L);
    lua_pushstring(L, msg);
    return 2;
}

/*
 * vault.to_base64(data) -> text
 * Params on Lua stack: 1: bytes.  Returns: standard base64 with padding.
 */
static int vault_to_base64(lua_State *L)
{
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    size_t size;
    char *out;
    luaL_Buffer b;

    luaL_argcheck(L, len <= VAULT_MAX_DATA * 2, 1, "more than 128 MiB");
    size = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
    out = luaL_buffinitsize(L, &b, size);
    sodium_bin2base64(out, size, (const unsigned char *)data, len,
                      sodium_base64_VARIANT_ORIGINAL);
    luaL_pushresultsize(&b, size - 1);   /* without the final NUL */
    return 1;
}

/*
 * vault.from_base64(text) -> data | nil, message
 * Params on Lua stack: 1: standard base64 with padding, nothing else.
 * Returns: the bytes, or nil and "not valid base64".
 */
static int vault_from_base64(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    size_t out_len = 0;
    const char *end = NULL;
    char *out;
    luaL_Buffer b;

    out = luaL_buffinitsize(L, &b, len / 4 * 3 + 3);
    if (sodium_base642bin((unsigned char *)out, len / 4 * 3 + 3, text, len,
                          NULL, &out_len, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != text + len) {
        lua_pushnil(L);
        lua_pushliteral(L, "not valid base64");
        return 2;
    }
    luaL_pushresultsize(&b, out_len);
    return 1;
}

static const luaL_Reg vault_key_methods[] = {
    {"encrypt", vault_encrypt},
    {"decrypt", vault_decrypt},
    {"close", vault_key_close},
    {NULL, NULL}
};

static const luaL_Reg vault_funcs[] = {
    {"salt", vault_salt},
    {"derive", vault_derive},
    {"to_base64", vault_to_base64},
    {"from_base64", vault_from_base64},
    {NULL, NULL}
};

int luaopen_cutover_vault(lua_State *L)
{
    luaL_newmetatable(L, VAULT_KEY_MT);                      /* mt */
    luaL_newlib(L, vault_key_methods);                       /* mt methods */
    lua_setfield(L, -2, "__index");                          /* mt */
    lua_pushcfunction(L, vault_key_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, vault_key_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, vault_key_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);

    luaL_newmetatable(L, VAULT_BUF_MT);                      /* mt */
    lua_pushcfunction(L, vault_buf_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, vault_buf_gc);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);

    luaL_newlib(L, vault_funcs);                             /* vault */
    lua_pushinteger(L, VAULT_SALT_BYTES);
    lua_setfield(L, -2, "SALT_BYTES");
    lua_pushliteral(L, "argon2id13 opslimit=moderate memlimit=moderate, "
                    "xchacha20poly1305-ietf");
    lua_setfield(L, -2, "ALGORITHMS");
    lua_pushboolean(L, vault_test_kdf);
    lua_setfield(L, -2, "TEST_KDF");
    return 1;
}
