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
};

/* The lines of a known_hosts file that name one host, read once per
 * connection: kh_load before the handshake (the key types to ask for are
 * h->types), kh_decide once the server's key is known. */
struct kh_entry {
    char type[128];        /* the key type written on the line */
    unsigned char *blob;   /* the decoded key; owned */
    size_t len;
    int line;              /* 1-based */
    int revoked;           /* an @revoked line */
};

struct kh_host {
    struct kh_entry *entries;  /* owned; in file order */
    size_t count;
    size_t cap;
    char types[256];   /* types of the usable lines, comma-separated */
};

/* Returns -1 on an unreadable file (errno, or *problem for one that is
 * not a regular file or is too large).  A missing file is an empty one.
 * h is always safe to kh_host_free afterwards. */
int kh_load(const char *path, const char *host, int port, struct kh_host *h,
            const char **problem);
/* Which of KH_* the server's key is for the loaded lines; -1 when the
 * key blob names no key type. */
int kh_decide(const struct kh_host *h, const unsigned char *blob,
              size_t bloblen, struct kh_result *res);
void kh_host_free(struct kh_host *h);
/* Appends one line for host:port under the file's lock (flock, so two
 * cutover runs never interleave their lines).  Returns 0, -1 with err
 * set, or KH_APPEND_LOCKED when another program holds the lock now:
 * nothing was written, and the caller tries again later (it must not
 * wait here: the loop serves every host).  recheck (the caller found
 * the file locked before): the host's lines are read again under the
 * lock first, since the program that held it may have written them. */
#define KH_APPEND_LOCKED (-2)
int kh_append(const char *path, const char *host, int port,
              const unsigned char *blob, size_t bloblen, int recheck,
              char *err, size_t errlen);
void kh_fingerprint(const unsigned char *blob, size_t len, char *out,
                    size_t cap);
int kh_blob_type(const unsigned char *blob, size_t len, char *out,
                 size_t cap);

#endif
