/*
 * crypto.c: digests and randomness with libsodium.  (The vault and the
 * journal's encrypted columns will live here too.)
 */
#include <sodium.h>

#include "cutover.h"

/* crypto.sha256(data) -> lowercase hex digest */
static int crypto_sha256(lua_State *L)
{
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    unsigned char digest[crypto_hash_sha256_BYTES];
    char hex[crypto_hash_sha256_BYTES * 2 + 1];

    crypto_hash_sha256(digest, (const unsigned char *)data, len);
    sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
    lua_pushstring(L, hex);
    return 1;
}

/* crypto.random_hex(nbytes) -> 2*nbytes hex characters */
static int crypto_random_hex(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    unsigned char raw[64];
    char hex[sizeof raw * 2 + 1];

    luaL_argcheck(L, n > 0 && n <= (lua_Integer)sizeof raw, 1,
                  "between 1 and 64 bytes");
    randombytes_buf(raw, (size_t)n);
    sodium_bin2hex(hex, sizeof hex, raw, (size_t)n);
    lua_pushstring(L, hex);
    return 1;
}

static const luaL_Reg crypto_funcs[] = {
    {"sha256", crypto_sha256},
    {"random_hex", crypto_random_hex},
    {NULL, NULL}
};

int luaopen_cutover_crypto(lua_State *L)
{
    luaL_newlib(L, crypto_funcs);
    return 1;
}
