/* knownhosts.c: OpenSSH known_hosts lookups and appends (C API). */
#ifndef CUTOVER_KNOWNHOSTS_H
#define CUTOVER_KNOWNHOSTS_H
#include <stddef.h>

enum kh_status {
    KH_UNKNOWN,  /* no line for this host with this key type */
    KH_MATCH,    /* a line holds exactly this key */
    KH_CHANGED,  /* lines of this type hold other keys: refuse loudly */
    KH_REVOKED   /* an @revoked line holds this key */
};

struct kh_result {
    enum kh_status status;
    int line;          /* the deciding line, 1-based; 0 when none */
    char types[256];   /* key types known for the host, comma-separated */
    const char *problem;  /* why the file was refused (-1), or NULL */
};

/* blob NULL: only fill res->types.  Returns -1 on an unreadable file
 * (errno, or res->problem for one that is not a regular file or is too
 * large).  A missing file is an empty one. */
int kh_lookup(const char *path, const char *host, int port,
              const unsigned char *blob, size_t bloblen,
              struct kh_result *res);
int kh_append(const char *path, const char *host, int port,
              const unsigned char *blob, size_t bloblen, char *err,
              size_t errlen);
void kh_fingerprint(const unsigned char *blob, size_t len, char *out,
                    size_t cap);
int kh_blob_type(const unsigned char *blob, size_t len, char *out,
                 size_t cap);

#endif
